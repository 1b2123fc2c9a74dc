"""asyncpg against crmdb serve: extended protocol, binary, prepared statements
with parameters including LIMIT $1. Usage: python3 asyncpg_test.py HOST PORT PASSWORD; prints OK."""
import asyncio
import datetime as dt
import sys
from decimal import Decimal

import asyncpg

host, port, password = sys.argv[1:4]


async def main():
    conn = await asyncpg.connect(host=host, port=int(port), user="analyst", password=password, database="crm", ssl=False)
    v = conn.get_server_version()
    assert (v.major, v.micro) == (16, 6), v  # asyncpg reads 16.6 as 16.0.6 (PostgreSQL >= 10)
    rows = await conn.fetch("SELECT order_id, amount FROM orders WHERE customer_id = $1 ORDER BY order_id", 1)
    assert [tuple(r) for r in rows] == [(10, Decimal("120.50")), (11, Decimal("80.00"))], rows
    # a prepared LIMIT $1 / OFFSET $2 with ints (described as bigint, as PostgreSQL does)
    limited = await conn.prepare("SELECT order_id FROM orders ORDER BY order_id LIMIT $1 OFFSET $2")
    assert [r[0] for r in await limited.fetch(2, 1)] == [11, 12]
    assert [r[0] for r in await limited.fetch(1, 0)] == [10]
    rows = await conn.fetch("SELECT order_id FROM orders WHERE customer_id = $1 ORDER BY order_id LIMIT $2", 1, 1)
    assert [r[0] for r in rows] == [10], rows
    stmt = await conn.prepare("SELECT order_id, order_ts FROM orders WHERE order_ts >= $1 ORDER BY order_id")
    since = dt.datetime(2024, 6, 1, tzinfo=dt.timezone.utc)
    for _ in range(7):
        rows = await stmt.fetch(since)
        assert [tuple(r) for r in rows] == [(13, dt.datetime(2024, 6, 4, 12, 45, tzinfo=dt.timezone.utc))], rows
    assert await conn.fetchval("SELECT count(*) FROM customers WHERE name LIKE $1", "%o%") == 2
    await conn.close()
    print("OK")


asyncio.run(main())
