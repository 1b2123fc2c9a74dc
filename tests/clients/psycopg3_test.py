"""psycopg 3 against crmdb serve: server-side parameters, binary results,
prepared statements (run past prepare_threshold), cancel(), statement_timeout,
COPY … TO STDOUT.

Usage: python3 psycopg3_test.py HOST PORT PASSWORD
Expects the test store of tests/it/server.rs (3 customers, 4 orders).
Prints OK on success; any failed assertion exits non-zero.
"""
import datetime as dt
import sys
import threading
import time
from decimal import Decimal

import psycopg
from psycopg import errors

host, port, password = sys.argv[1], sys.argv[2], sys.argv[3]
dsn = f"host={host} port={port} dbname=crm user=analyst password={password} sslmode=disable"

with psycopg.connect(dsn) as conn:
    assert conn.info.server_version == 160006, conn.info.server_version
    assert conn.info.parameter_status("server_version").startswith("16.6 (crmdb"), conn.info.parameter_status("server_version")

    cur = conn.cursor()
    cur.execute("SELECT order_id, amount FROM orders WHERE customer_id = %s ORDER BY order_id", [1])
    rows = cur.fetchall()
    assert rows == [(10, Decimal("120.50")), (11, Decimal("80.00"))], rows

    # binary results
    bcur = conn.cursor(binary=True)
    bcur.execute("SELECT order_id, amount, order_ts FROM orders WHERE order_id = %s", [12])
    rows = bcur.fetchall()
    assert rows == [(12, Decimal("42.25"), dt.datetime(2024, 5, 3, 11, 15, tzinfo=dt.timezone.utc))], rows

    # the same statement 7 times: from the 6th run psycopg uses a named prepared statement
    since = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
    for i in range(7):
        cur.execute(
            "SELECT order_id, status FROM orders WHERE order_ts >= %s AND channel <> %s ORDER BY order_id",
            [since, "none"],
        )
        rows = cur.fetchall()
        assert rows == [(11, "completed"), (12, "returned"), (13, "completed")], (i, rows)

    cur.execute("SELECT current_user, version()")
    user, version = cur.fetchone()
    assert user == "analyst", user
    assert version.startswith("PostgreSQL 16.6 (crmdb"), version

    # statement_timeout bounds execution
    cur.execute("SET statement_timeout = '1s'")
    t0 = time.time()
    try:
        cur.execute("SELECT sum(x) FROM generate_series(1, 100000000000) AS t(x)")
        raise AssertionError("the slow query was not stopped")
    except errors.QueryCanceled as e:
        assert "statement timeout" in str(e), str(e)
    assert time.time() - t0 < 8, time.time() - t0
    conn.rollback()  # as with PostgreSQL, the error aborted the implicit transaction
    cur.execute("SET statement_timeout = 0")
    cur.execute("SELECT count(*) FROM customers")
    assert cur.fetchone() == (3,)

# cancel(): a running query stops promptly and the connection is usable again
with psycopg.connect(dsn) as conn:
    def cancel_later():
        time.sleep(1.0)
        conn.cancel_safe()

    t = threading.Thread(target=cancel_later)
    t.start()
    t0 = time.time()
    try:
        conn.execute("SELECT sum(x) FROM generate_series(1, 100000000000) AS t(x)")
        raise AssertionError("the query was not cancelled")
    except errors.QueryCanceled as e:
        assert "user request" in str(e), str(e)
    t.join()
    took = time.time() - t0
    assert took < 8, took
    conn.rollback()
    assert conn.execute("SELECT 1 + 1").fetchone() == (2,)

# COPY … TO STDOUT: text rows, and CSV with a header
with psycopg.connect(dsn, autocommit=True) as conn:
    cur = conn.cursor()
    with cur.copy("COPY (SELECT order_id, discount FROM orders ORDER BY order_id) TO STDOUT") as copy:
        rows = [tuple(r) for r in copy.rows()]
    assert rows == [("10", "0.00"), ("11", "5.00"), ("12", None), ("13", None)], rows
    data = bytearray()
    with cur.copy("COPY (SELECT customer_id, city FROM customers ORDER BY 1) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
        for block in copy:
            data += block
    assert data.decode() == "customer_id,city\n1,Berlin\n2,Paris\n3,Rome\n", data.decode()

print("OK")
