"""SQLAlchemy 2 (psycopg 3 dialect) against crmdb serve: connect (version
parse) and the inspector. Usage: python3 sqlalchemy_test.py HOST PORT PASSWORD; prints OK."""
import sys

from sqlalchemy import create_engine, inspect, text

host, port, password = sys.argv[1:4]
engine = create_engine(f"postgresql+psycopg://analyst:{password}@{host}:{port}/crm?sslmode=disable")
with engine.connect() as conn:
    assert conn.dialect.server_version_info[:2] == (16, 6), conn.dialect.server_version_info
    assert conn.execute(text("SELECT count(*) FROM orders WHERE status = :s"), {"s": "completed"}).scalar() == 3
insp = inspect(engine)
assert "public" in insp.get_schema_names(), insp.get_schema_names()
tables = insp.get_table_names(schema="public")
for t in ["customers", "orders", "order_items", "interactions", "promotions", "promotion_exposures"]:
    assert t in tables, tables
cols = {c["name"]: c for c in insp.get_columns("orders", schema="public")}
assert list(cols)[:3] == ["order_id", "customer_id", "order_ts"], list(cols)
assert str(cols["amount"]["type"]) == "NUMERIC(18, 2)", cols["amount"]["type"]
assert cols["order_id"]["nullable"] is False and cols["channel"]["nullable"] is True
insp.get_view_names(schema="public")
insp.get_pk_constraint("orders", schema="public")
insp.get_foreign_keys("orders", schema="public")
insp.get_indexes("orders", schema="public")
print("OK")
