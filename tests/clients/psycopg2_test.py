"""psycopg2 against crmdb serve (client-side parameter binding, simple protocol).
Usage: python3 psycopg2_test.py HOST PORT PASSWORD; prints OK."""
import sys
from decimal import Decimal

import psycopg2

host, port, password = sys.argv[1:4]
conn = psycopg2.connect(host=host, port=port, dbname="crm", user="analyst", password=password, sslmode="disable")
assert conn.server_version == 160006, conn.server_version
cur = conn.cursor()
cur.execute("SELECT order_id, amount, status FROM orders WHERE customer_id = %s ORDER BY order_id", (1,))
assert cur.fetchall() == [(10, Decimal("120.50"), "completed"), (11, Decimal("80.00"), "completed")]
cur.execute("SELECT name FROM customers WHERE city = %(city)s", {"city": "Rome"})
assert cur.fetchall() == [("Carol White",)]
cur.execute("SELECT current_user")
assert cur.fetchone() == ("analyst",)
conn.rollback()
conn.close()
print("OK")
