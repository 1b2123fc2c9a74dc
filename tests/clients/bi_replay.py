"""The startup and introspection queries of Metabase, Grafana, DBeaver and
Superset, replayed through psycopg 3 (which sends every query with the
extended protocol: Parse/Bind/Describe/Execute), asserting on the rows.

The queries are as those tools send them (Metabase 0.55, Grafana's
PostgreSQL data source, DBeaver 25.1 over pgjdbc, Superset's PostgreSQL
engine spec); datafusion-postgres' own tests hold the captured Metabase,
Grafana and DBeaver traffic they come from.

Usage: python3 bi_replay.py HOST PORT PASSWORD
Expects the test store of tests/it/server.rs (3 customers, 4 orders).
Prints OK on success; any failed assertion exits non-zero.
"""
import datetime as dt
import sys

import psycopg

host, port, password = sys.argv[1], sys.argv[2], sys.argv[3]
dsn = f"host={host} port={port} dbname=crm user=analyst password={password} sslmode=disable"

TABLES = {"customers", "orders", "order_items", "interactions", "promotions", "promotion_exposures"}
VIEWS = {"customer_metrics", "segment_summary", "cohort_retention", "promotion_effectiveness",
         "kpi_monthly", "segment_transitions"}


def run(conn, sql, params=None):
    with conn.cursor() as cur:
        try:
            cur.execute(sql, params)
        except psycopg.Error as e:
            raise AssertionError(f"failed: {sql[:200]!r}: {e}") from e
        return cur.fetchall() if cur.description is not None else None


# ---------------------------------------------------------------- Metabase
with psycopg.connect(dsn, autocommit=True) as conn:
    run(conn, "SET extra_float_digits = 2")
    run(conn, "SET application_name = 'Metabase v0.55.1 [f8f63fdf-d8f8-4573-86ea-4fe4a9548041]'")
    assert run(conn, "SHOW TRANSACTION ISOLATION LEVEL") == [("read committed",)]
    run(conn, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ UNCOMMITTED")
    schemas = run(conn, """SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace  WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_'  OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_'  OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_'))  ORDER BY "TABLE_SCHEM\"""")
    assert ("public", "crm") in schemas, schemas
    privileges = run(conn, """with table_privileges as (
         select
           NULL as role,
           t.schemaname as schema,
           t.objectname as table,
           pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update,
           pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select,
           pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert,
           pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete
         from (
           select schemaname, tablename as objectname from pg_catalog.pg_tables
           union
           select schemaname, viewname as objectname from pg_catalog.pg_views
           union
           select schemaname, matviewname as objectname from pg_catalog.pg_matviews
         ) t
         where t.schemaname !~ '^pg_'
           and t.schemaname <> 'information_schema'
           and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage')
        )
        select t.*
        from table_privileges t""")
    names = {r[2] for r in privileges if r[1] == "public"}
    assert TABLES | VIEWS <= names, names
    assert all(r[4] for r in privileges if r[2] in TABLES), privileges  # select allowed
    listed = run(conn, """SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = '0') AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('public')) ORDER BY "type" ASC, "schema" ASC, "name" ASC""")
    kinds = {r[1]: r[2] for r in listed}
    assert all(kinds.get(t) == "TABLE" for t in TABLES), kinds
    assert all(kinds.get(v) == "VIEW" for v in VIEWS), kinds
    run(conn, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
    assert len(run(conn, "show timezone")) == 1
    # a Metabase question: orders per channel, with a bound parameter
    rows = run(conn, 'SELECT "channel", count(*) AS "count" FROM "public"."orders" WHERE "status" = %s GROUP BY "channel" ORDER BY "channel" ASC', ["completed"])
    assert rows == [("app", 1), ("web", 2)], rows

# ---------------------------------------------------------------- Grafana
SEARCH_PATH_SCHEMAS = """SELECT
                CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
              FROM
                generate_series(
                  array_lower(string_to_array(current_setting('search_path'),','),1),
                  array_upper(string_to_array(current_setting('search_path'),','),1)
                ) as i,
                string_to_array(current_setting('search_path'),',') s"""
with psycopg.connect(dsn, autocommit=True) as conn:
    tables = run(conn, f"""SELECT
        CASE WHEN
              quote_ident(table_schema) IN ({SEARCH_PATH_SCHEMAS})
          THEN quote_ident(table_name)
          ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
        END AS "table"
        FROM information_schema.tables
        WHERE quote_ident(table_schema) NOT IN ('information_schema',
                                 'pg_catalog',
                                 '_timescaledb_cache',
                                 '_timescaledb_catalog',
                                 '_timescaledb_internal',
                                 '_timescaledb_config',
                                 'timescaledb_information',
                                 'timescaledb_experimental')
        ORDER BY CASE WHEN
              quote_ident(table_schema) IN ({SEARCH_PATH_SCHEMAS}) THEN 0 ELSE 1 END, 1""")
    names = {r[0] for r in tables}
    # public is on the search path, so names come unqualified
    assert TABLES | VIEWS <= names, names
    columns = run(conn, f"""SELECT quote_ident(column_name) AS "column", data_type AS "type"
        FROM information_schema.columns
        WHERE
          CASE WHEN array_length(parse_ident('public.orders'),1) = 2
            THEN quote_ident(table_schema) = (parse_ident('public.orders'))[1]
              AND quote_ident(table_name) = (parse_ident('public.orders'))[2]
            ELSE quote_ident(table_name) = 'public.orders'
              AND
              quote_ident(table_schema) IN ({SEARCH_PATH_SCHEMAS})
          END""")
    cols = dict(columns)
    assert cols == {"order_id": "bigint", "customer_id": "bigint", "order_ts": "timestamp with time zone",
                    "channel": "text", "store_id": "text", "amount": "numeric", "discount": "numeric",
                    "promotion_id": "bigint", "status": "text"}, cols
    positions = run(conn, "SELECT column_name, ordinal_position FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'orders' ORDER BY ordinal_position LIMIT 2")
    assert positions == [("order_id", 1), ("customer_id", 2)], positions
    # a time-series panel: $__timeGroup by day, time range as bound timestamps
    rows = run(conn, """SELECT date_trunc('day', order_ts) AS "time", sum(amount) AS "revenue"
        FROM orders WHERE order_ts BETWEEN %s AND %s GROUP BY 1 ORDER BY 1""",
               [dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc), dt.datetime(2024, 5, 31, tzinfo=dt.timezone.utc)])
    assert [(r[0].date().isoformat(), str(r[1])) for r in rows] == [("2024-05-02", "80.00"), ("2024-05-03", "42.25")], rows

# ---------------------------------------------------------------- DBeaver
with psycopg.connect(dsn, autocommit=True) as conn:
    run(conn, "SET extra_float_digits = 3")
    run(conn, "SET application_name = 'DBeaver 25.1.5 - Main <postgres>'")
    assert run(conn, "SELECT current_schema(),session_user") == [("public", "analyst")]
    namespaces = run(conn, "SELECT n.oid,n.*,d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=n.oid AND d.objsubid=0 AND d.classoid='pg_namespace'::regclass ORDER BY nspname")
    assert "public" in {r[2] for r in namespaces}, namespaces
    run(conn, "SELECT n.nspname = ANY(current_schemas(true)), n.nspname, t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 1034")
    assert run(conn, "SHOW search_path") == [('"$user", public',)]
    run(conn, "SELECT db.oid,db.* FROM pg_catalog.pg_database db WHERE datname='postgres'")
    run(conn, "SELECT * FROM pg_catalog.pg_settings where name='standard_conforming_strings'")
    assert run(conn, "SELECT version()")[0][0].startswith("PostgreSQL 16.6 (crmdb")
    assert run(conn, "SELECT * FROM pg_catalog.pg_enum WHERE 1<>1 LIMIT 1") == []
    assert run(conn, "SELECT reltype FROM pg_catalog.pg_class WHERE 1<>1 LIMIT 1") == []
    classes = run(conn, """SELECT c.oid,c.relname,d.description,pg_catalog.pg_get_expr(c.relpartbound, c.oid) as partition_expr,  pg_catalog.pg_get_partkeydef(c.oid) as partition_key
    FROM pg_catalog.pg_class c
    LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_class'::regclass
    WHERE c.relnamespace=(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = 'public') AND c.relkind not in ('i','I','c')""")
    assert TABLES | VIEWS <= {r[1] for r in classes}, classes
    oid = {r[1]: r[0] for r in classes}["orders"]
    indexes = run(conn, f"""SELECT i.*,i.indkey as keys,c.relname,c.relnamespace,c.relam,c.reltablespace,tc.relname as tabrelname,dsc.description,pg_catalog.pg_get_expr(i.indpred, i.indrelid) as pred_expr,pg_catalog.pg_get_expr(i.indexprs, i.indrelid, true) as expr,pg_catalog.pg_relation_size(i.indexrelid) as index_rel_size,pg_catalog.pg_stat_get_numscans(i.indexrelid) as index_num_scans FROM pg_catalog.pg_index i
    INNER JOIN pg_catalog.pg_class c ON c.oid=i.indexrelid
    INNER JOIN pg_catalog.pg_class tc ON tc.oid=i.indrelid
    LEFT OUTER JOIN pg_catalog.pg_description dsc ON i.indexrelid=dsc.objoid
    WHERE  i.indrelid={oid} ORDER BY tabrelname, c.relname""")
    assert [r for r in indexes if "orders_pkey" in r], indexes
    constraints = run(conn, f"""SELECT c.oid,c.conname,c.contype,t.relname as tabrelname,rt.relnamespace as refnamespace,d.description
    FROM pg_catalog.pg_constraint c
    INNER JOIN pg_catalog.pg_class t ON t.oid=c.conrelid
    LEFT OUTER JOIN pg_catalog.pg_class rt ON rt.oid=c.confrelid
    LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid=c.oid AND d.objsubid=0 AND d.classoid='pg_constraint'::regclass
    WHERE c.conrelid={oid}
    ORDER BY c.oid""")
    assert [(r[1], r[2], r[3]) for r in constraints] == [("orders_pkey", "p", "orders")], constraints

# ---------------------------------------------------------------- Superset
with psycopg.connect(dsn, autocommit=True) as conn:
    run(conn, "set search_path = public")
    dbs = run(conn, "SELECT datname FROM pg_database WHERE datistemplate = false")
    assert "crm" in {r[0] for r in dbs}, dbs
    plan = run(conn, "EXPLAIN SELECT count(*) FROM orders")
    assert plan and all(len(r) >= 1 for r in plan), plan
    # the time filter of a chart: TO_TIMESTAMP with a PostgreSQL format
    rows = run(conn, """SELECT channel AS channel, sum(amount) AS "SUM(amount)"
        FROM public.orders
        WHERE order_ts >= TO_TIMESTAMP('2024-05-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')
          AND order_ts < TO_TIMESTAMP('2024-07-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')
        GROUP BY channel ORDER BY "SUM(amount)" DESC LIMIT 10000""")
    assert [(r[0], str(r[1])) for r in rows] == [("app", "80.00"), ("store", "42.25"), ("web", "10.00")], rows
    # month buckets as Superset's time grain P1M renders them
    rows = run(conn, "SELECT to_char(DATE_TRUNC('month', order_ts), 'YYYY-MM') AS m, count(*) FROM orders GROUP BY 1 ORDER BY 1")
    assert rows == [("2024-04", 1), ("2024-05", 2), ("2024-06", 1)], rows

print("OK")
