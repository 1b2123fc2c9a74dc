"""SQLAlchemy 2 (psycopg 3 dialect) against crmdb serve: connect (version
parse), the inspector as Superset uses it (schemas, tables, views, columns,
primary keys, foreign keys, indexes) and table reflection.
Usage: python3 sqlalchemy_test.py HOST PORT PASSWORD; prints OK.
Expects the test store of tests/it/server.rs (3 customers, 4 orders)."""
import sys

from sqlalchemy import MetaData, Table, create_engine, inspect, select, text

host, port, password = sys.argv[1:4]
engine = create_engine(f"postgresql+psycopg://analyst:{password}@{host}:{port}/crm?sslmode=disable")
with engine.connect() as conn:
    assert conn.dialect.server_version_info[:2] == (16, 6), conn.dialect.server_version_info
    assert conn.execute(text("SELECT count(*) FROM orders WHERE status = :s"), {"s": "completed"}).scalar() == 3

insp = inspect(engine)
assert insp.default_schema_name == "public", insp.default_schema_name
assert insp.get_schema_names() == ["information_schema", "public"], insp.get_schema_names()

tables = sorted(insp.get_table_names(schema="public"))
assert tables == [
    "customer_snapshots", "customers", "export_runs", "interactions",
    "order_items", "orders", "promotion_exposures", "promotions",
], tables
views = sorted(insp.get_view_names(schema="public"))
assert views == [
    "cohort_retention", "customer_metrics", "kpi_monthly",
    "promotion_effectiveness", "segment_summary", "segment_transitions",
], views
assert insp.has_table("orders", schema="public") and not insp.has_table("nope", schema="public")


def columns(table):
    return [
        (c["name"], c["type"].compile(dialect=engine.dialect), c["nullable"], c["default"])
        for c in insp.get_columns(table, schema="public")
    ]


got = columns("orders")
assert got == [
    ("order_id", "BIGINT", False, None),
    ("customer_id", "BIGINT", False, None),
    ("order_ts", "TIMESTAMP WITH TIME ZONE", False, None),
    ("channel", "TEXT", True, None),
    ("store_id", "TEXT", True, None),
    ("amount", "NUMERIC(18, 2)", False, None),
    ("discount", "NUMERIC(18, 2)", True, None),
    ("promotion_id", "BIGINT", True, None),
    ("status", "TEXT", False, None),
], got
got = columns("customers")
assert [c[0] for c in got] == [
    "customer_id", "name", "phone", "email", "gender", "birth_date", "city",
    "signup_at", "signup_channel", "member_tier", "marketing_consent", "updated_at",
], got
assert got[5] == ("birth_date", "DATE", True, None) and got[10] == ("marketing_consent", "BOOLEAN", False, None), got
# a view's columns, nullable as PostgreSQL reports them
got = columns("segment_summary")
assert got and all(c[2] is True for c in got), got

pk = insp.get_pk_constraint("orders", schema="public")
assert pk == {"constrained_columns": ["order_id"], "name": "orders_pkey", "comment": None,
              "dialect_options": {"postgresql_include": []}}, pk
pk = insp.get_pk_constraint("order_items", schema="public")
assert pk == {"constrained_columns": ["order_id", "line_no"], "name": "order_items_pkey", "comment": None,
              "dialect_options": {"postgresql_include": []}}, pk
pk = insp.get_pk_constraint("customer_metrics", schema="public")
assert pk == {"name": None, "constrained_columns": []}, pk  # SQLAlchemy's answer for no key, as on PostgreSQL
assert insp.get_foreign_keys("orders", schema="public") == [], insp.get_foreign_keys("orders", schema="public")
assert insp.get_indexes("orders", schema="public") == [], insp.get_indexes("orders", schema="public")
assert insp.get_unique_constraints("orders", schema="public") == []
assert insp.get_table_comment("orders", schema="public") == {"text": None}

# reflection, as Superset does when a dataset is added
orders = Table("orders", MetaData(), schema="public", autoload_with=engine)
assert [c.name for c in orders.primary_key.columns] == ["order_id"], orders.primary_key
with engine.connect() as conn:
    rows = conn.execute(
        select(orders.c.order_id, orders.c.amount).where(orders.c.customer_id == 1).order_by(orders.c.order_id)
    ).all()
assert [(r[0], str(r[1])) for r in rows] == [(10, "120.50"), (11, "80.00")], rows
print("OK")
