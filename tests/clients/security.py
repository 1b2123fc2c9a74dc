"""Logins and the viewer's extended-protocol reads against crmdb serve
(driven by tests/it/security.rs, which checks every printed line).

Usage: python3 security.py HOST PORT PASSWORD

asyncpg reports the SQLSTATE of a refused login (libpq-based clients only
show the message); psycopg 3 reads as viewer through prepared statements
in binary and text."""
import asyncio
import sys

import asyncpg
import psycopg

host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]


async def login(user, pw, database):
    try:
        conn = await asyncpg.connect(host=host, port=port, user=user, password=pw,
                                     database=database, ssl=False, timeout=30)
    except asyncpg.PostgresError as e:
        return f"{e.sqlstate} {e}"
    try:
        return "ok " + await conn.fetchval("SELECT current_user || '@' || current_database()")
    finally:
        await conn.close()


async def logins():
    for label, user, pw, database in [
        ("right password", "analyst", password, "crm"),
        ("wrong password", "analyst", "not-the-password", "crm"),
        ("unknown user", "mallory", password, "crm"),
        ("no password", "analyst", None, "crm"),
        ("empty password", "analyst", "", "crm"),
        ("database postgres", "analyst", password, "postgres"),
        ("database template1", "admin", password, "template1"),
        ("database of the user's name", "viewer", password, "viewer"),
        ("unknown user, other database", "mallory", "x", "postgres"),
    ]:
        print(f"{label}: {await login(user, pw, database)}")


def viewer_reads():
    conn = psycopg.connect(host=host, port=port, dbname="crm", user="viewer", password=password,
                           sslmode="disable", autocommit=True)
    sql = "SELECT name, phone, email FROM customers WHERE customer_id = %s"
    for binary in (False, True):
        cur = conn.cursor(binary=binary)
        for _ in range(6):  # past psycopg's prepare threshold: named statements
            cur.execute(sql, (1,))
            row = cur.fetchone()
        print(f"extended {'binary' if binary else 'text'}: {'|'.join(row)}")
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM customers WHERE email = %s", ("alice@example.com",))
    print(f"filter on the real email: {cur.fetchone()[0]}")
    with cur.copy("COPY (SELECT name, phone, email FROM customers WHERE customer_id = 1) TO STDOUT") as copy:
        data = b"".join(bytes(b) for b in copy)
    print(f"copy: {data.decode().strip()}")
    conn.close()


asyncio.run(logins())
viewer_reads()
print("OK")
