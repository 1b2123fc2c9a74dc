"""Concurrency soak against crmdb serve (driven by tests/it/soak.rs).

Usage: python3 soak.py HOST PORT PASSWORD SECS CLIENTS BASE_ORDERS BATCH CUSTOMERS FIRST_ID

CLIENTS threads, each with its own connection, run for SECS seconds:
- 1 loader (admin, psycopg 3): COPY orders FROM STDIN, BATCH new orders per load;
- dashboards (analyst and viewer, psycopg 3, extended protocol): the views;
- point lookups (analyst and viewer, psycopg 3, parameters, prepared after 5 runs);
- psql meta-commands (analyst, psycopg2, simple protocol, in transactions):
  the catalog SQL psql 15 sends for \\dt, \\dv, \\d orders, \\l, \\dn.
Every reader also counts orders between its queries: the count must be
BASE_ORDERS + k * BATCH (whole loads only) and never decrease for that client.
Any exception is an unexpected error. Prints one line `SOAK <json>` with the
counts, per-kind latencies (p50/p99 ms), errors and violations.
"""
import json
import random
import sys
import threading
import time
import traceback

import psycopg
import psycopg2

host, port, password = sys.argv[1:4]
secs, clients, base, batch, customers, first_id = (int(a) for a in sys.argv[4:10])

DASHBOARDS = [
    ("segment_summary", "SELECT rfm_segment, value_class, customers, revenue FROM segment_summary ORDER BY rfm_segment, value_class"),
    ("kpi_monthly", "SELECT month, channel, active_customers, repurchase_rate, aov FROM kpi_monthly WHERE month >= TIMESTAMP '2026-01-01' ORDER BY month, channel"),
    ("cohort_retention", "SELECT cohort_month, months_since, retention_rate FROM cohort_retention WHERE months_since <= 6 ORDER BY 1, 2"),
    ("customer_metrics", "SELECT rfm_segment, count(*), CAST(avg(clv_12m) AS DOUBLE) FROM customer_metrics GROUP BY rfm_segment ORDER BY 1"),
    ("promotion_effectiveness", "SELECT promotion_id, treated_customers, uplift FROM promotion_effectiveness ORDER BY promotion_id LIMIT 20"),
]

# What psql 15 sends (psql -E) for \dt, \dv, \d orders (all but its
# publication and partition queries), \l and \dn. Queries of \d orders after
# the third may rightly return no rows (no policies, statistics, parents).
META = [
    ("\\dt", """SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"""),
    ("\\dv", """SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"""),
    ("\\d orders", """SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(orders)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;"""),
    ("\\d orders", """SELECT c.relchecks, c.relkind, c.relhasindex, c.relhasrules, c.relhastriggers, c.relrowsecurity, c.relforcerowsecurity, false AS relhasoids, c.relispartition, '', c.reltablespace, CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, c.relpersistence, c.relreplident, am.amname
FROM pg_catalog.pg_class c
 LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid)
WHERE c.oid = '%(oid)s';"""),
    ("\\d orders", """SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = '%(oid)s' AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;"""),
    ("\\d orders", """SELECT pol.polname, pol.polpermissive,
  CASE WHEN pol.polroles = '{0}' THEN NULL ELSE pg_catalog.array_to_string(array(select rolname from pg_catalog.pg_roles where oid = any (pol.polroles) order by 1),',') END,
  pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
  pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid),
  CASE pol.polcmd
    WHEN 'r' THEN 'SELECT'
    WHEN 'a' THEN 'INSERT'
    WHEN 'w' THEN 'UPDATE'
    WHEN 'd' THEN 'DELETE'
    END AS cmd
FROM pg_catalog.pg_policy pol
WHERE pol.polrelid = '%(oid)s' ORDER BY 1;"""),
    ("\\d orders", """SELECT oid, stxrelid::pg_catalog.regclass, stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, stxname,
pg_catalog.pg_get_statisticsobjdef_columns(oid) AS columns,
  'd' = any(stxkind) AS ndist_enabled,
  'f' = any(stxkind) AS deps_enabled,
  'm' = any(stxkind) AS mcv_enabled,
stxstattarget
FROM pg_catalog.pg_statistic_ext
WHERE stxrelid = '%(oid)s'
ORDER BY nsp, stxname;"""),
    ("\\d orders", """SELECT c.oid::pg_catalog.regclass
FROM pg_catalog.pg_class c, pg_catalog.pg_inherits i
WHERE c.oid = i.inhparent AND i.inhrelid = '%(oid)s'
  AND c.relkind != 'p' AND c.relkind != 'I'
ORDER BY inhseqno;"""),
    ("\\l", """SELECT d.datname as "Name",
       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
       pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
       d.datcollate as "Collate",
       d.datctype as "Ctype",
       d.daticulocale as "ICU Locale",
       CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "Locale Provider",
       pg_catalog.array_to_string(d.datacl, E'\\n') AS "Access privileges"
FROM pg_catalog.pg_database d
ORDER BY 1;"""),
    ("\\dn", """SELECT n.nspname AS "Name",
  pg_catalog.pg_get_userbyid(n.nspowner) AS "Owner"
FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1;"""),
]

lock = threading.Lock()
latencies = {}  # kind -> [seconds]
errors = []  # (client, kind, message)
violations = []  # (client, message)
loads = [0]
deadline = time.monotonic() + secs


def record(kind, seconds):
    with lock:
        latencies.setdefault(kind, []).append(seconds)


def error(client, kind, exc):
    with lock:
        errors.append((client, kind, "".join(traceback.format_exception_only(type(exc), exc)).strip()))


def violation(client, message):
    with lock:
        violations.append((client, message))


def timed(kind, fn):
    started = time.monotonic()
    result = fn()
    record(kind, time.monotonic() - started)
    return result


def connect3(user):
    return psycopg.connect(host=host, port=port, dbname="crm", user=user, password=password,
                           sslmode="disable", autocommit=True, connect_timeout=30)


class Counter:
    """Checks one client's view of the orders count."""

    def __init__(self, client):
        self.client = client
        self.last = None

    def check(self, n):
        if n < base or (n - base) % batch != 0:
            violation(self.client, f"orders count {n} is not {base} + k * {batch}")
        if self.last is not None and n < self.last:
            violation(self.client, f"orders count went down from {self.last} to {n}")
        self.last = n


def count3(cur, counter):
    cur.execute("SELECT count(*), count(DISTINCT order_id) FROM orders")
    n, distinct = cur.fetchone()
    if n != distinct:
        violation(counter.client, f"{n} orders but {distinct} distinct order ids")
    counter.check(n)


def loader(client):
    conn = connect3("admin")
    cur = conn.cursor()
    rng = random.Random(7)
    k = 0
    while time.monotonic() < deadline:
        lines = ["order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status"]
        for i in range(batch):
            oid = first_id + k * batch + i
            cid = rng.randint(1, customers)
            day = rng.randint(1, 28)
            lines.append(f"{oid},{cid},2026-06-{day:02d}T12:00:00Z,{rng.choice(['web', 'app', 'store'])},s{rng.randint(1, 9)},"
                         f"{rng.randint(100, 99999) / 100:.2f},0.00,,completed")
        data = ("\n".join(lines) + "\n").encode()

        def load():
            with cur.copy("COPY orders FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
                copy.write(data)
        try:
            timed("copy_load", load)
            k += 1
            with lock:
                loads[0] = k
        except Exception as e:  # noqa: BLE001
            error(client, "copy_load", e)
            return
        time.sleep(0.5)
    conn.close()


def dashboard(client, user):
    conn = connect3(user)
    cur = conn.cursor()
    counter = Counter(client)
    i = client
    while time.monotonic() < deadline:
        kind, sql = DASHBOARDS[i % len(DASHBOARDS)]
        i += 1
        try:
            rows = timed(kind, lambda: (cur.execute(sql), cur.fetchall())[1])
            if not rows:
                violation(client, f"{kind}: no rows")
            timed("count", lambda: count3(cur, counter))
        except Exception as e:  # noqa: BLE001
            error(client, kind, e)
            return
    conn.close()


def lookup(client, user):
    conn = connect3(user)
    cur = conn.cursor()
    counter = Counter(client)
    rng = random.Random(client)
    while time.monotonic() < deadline:
        cid = rng.randint(1, customers)
        try:
            def customer():
                cur.execute("SELECT customer_id, name, phone, email, city FROM customers WHERE customer_id = %s", (cid,))
                return cur.fetchall()
            rows = timed("point_customer", customer)
            if len(rows) != 1 or rows[0][0] != cid:
                violation(client, f"customer {cid}: {rows!r}")
            elif user == "viewer" and rows[0][3] is not None and "*" not in rows[0][3]:
                violation(client, f"viewer saw an unmasked email {rows[0][3]!r}")

            def orders():
                cur.execute("SELECT order_id, order_ts, amount, status FROM orders WHERE customer_id = %s ORDER BY order_ts DESC, order_id LIMIT 5", (cid,))
                return cur.fetchall()
            timed("point_orders", orders)
            timed("count", lambda: count3(cur, counter))
        except Exception as e:  # noqa: BLE001
            error(client, "point", e)
            return
    conn.close()


def meta(client):
    # psycopg2: the simple protocol, every statement in a transaction (BEGIN ... ROLLBACK)
    conn = psycopg2.connect(host=host, port=port, dbname="crm", user="analyst", password=password,
                            sslmode="disable", connect_timeout=30)
    cur = conn.cursor()
    counter = Counter(client)
    oid = None
    while time.monotonic() < deadline:
        try:
            for command, sql in META:
                if "%(oid)s" in sql:
                    if oid is None:
                        continue
                    sql = sql.replace("%(oid)s", str(oid))
                rows = timed("meta " + command, lambda: (cur.execute(sql), cur.fetchall())[1])
                if not rows and "pol.polname" not in sql and "stxrelid" not in sql and "inhseqno" not in sql:
                    violation(client, f"{command}: no rows")
                elif command == "\\d orders" and "OPERATOR" in sql:
                    oid = rows[0][0]
            conn.rollback()

            def count2():
                cur.execute("SELECT count(*) FROM orders")
                counter.check(cur.fetchone()[0])
            timed("count", count2)
            conn.rollback()
        except Exception as e:  # noqa: BLE001
            error(client, "meta", e)
            return
    conn.close()


def run(client, fn, *args):
    try:
        fn(client, *args)
    except Exception as e:  # noqa: BLE001  (connecting failed)
        error(client, fn.__name__, e)


threads = []
for c in range(clients):
    if c == 0:
        t = threading.Thread(target=run, args=(c, loader))
    elif c % 3 == 1:
        t = threading.Thread(target=run, args=(c, dashboard, "viewer" if c % 4 == 1 else "analyst"))
    elif c % 3 == 2:
        t = threading.Thread(target=run, args=(c, lookup, "viewer" if c % 5 == 2 else "analyst"))
    else:
        t = threading.Thread(target=run, args=(c, meta))
    threads.append(t)
started = time.monotonic()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.monotonic() - started


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


report = {
    "seconds": round(elapsed, 1),
    "clients": clients,
    "loads": loads[0],
    "queries": sum(len(v) for v in latencies.values()),
    "kinds": {k: {"n": len(v), "p50_ms": round(pct(v, 0.50), 1), "p99_ms": round(pct(v, 0.99), 1),
                  "max_ms": round(max(v) * 1000, 1)} for k, v in sorted(latencies.items())},
    "errors": len(errors),
    "first_errors": errors[:10],
    "violations": len(violations),
    "first_violations": violations[:10],
}
print("SOAK " + json.dumps(report))
