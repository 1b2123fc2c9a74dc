#!/usr/bin/env bash
# The single-command figures of the issues' closing notes, on a release build:
# generator time and size, ingest rows/s (Parquet, and CSV for orders), the
# BTYD/CLV path step by step (btyd.sql), the CRM functions against plain SQL
# on 10 M rows (functions.sql), exporting 1 M customer_metrics rows as
# Parquet and CSV, and every view through psql from a fresh server.
#
#   bash benches/figures.sh [CRMDB_BINARY] [WORK_DIR] [CUSTOMERS]
#
# Defaults: target/release/crmdb, a new temporary directory, 1000000.
# Each command's wall time and peak RSS come from /usr/bin/time (%e s, %M KB);
# psql's \timing gives each view's time. Needs psql (postgresql-client).
set -uo pipefail
cd "$(dirname "$0")/.."
B=$(realpath "${1:-target/release/crmdb}")
W=${2:-$(mktemp -d)}
N=${3:-1000000}
T=(/usr/bin/time -f "%C|%es|%MKB")
mkdir -p "$W"
echo "== machine"; nproc; free -g | head -2; "$B" --version 2>/dev/null || true
echo "== generate ($N customers, seed 42)"
rm -rf "$W/gen-pq" "$W/gen-csv" "$W/store" "$W/scratch" "$W/fstore" "$W/exports"
"${T[@]}" "$B" generate --customers "$N" --seed 42 --out "$W/gen-pq" --format parquet
du -sb "$W/gen-pq"
"${T[@]}" "$B" generate --customers "$N" --seed 42 --out "$W/gen-csv" --format csv
du -sb "$W/gen-csv"
echo "== ingest Parquet"
"$B" --data "$W/store" init
cat > "$W/store/crmdb.toml" <<TOML
[engine]
view_cache = "0"          # measure computation, not the cache

[crm]
as_of = "2026-06-30"      # the end of the generated history

[server]
listen = "127.0.0.1:55500"
auth = "trust"

[[export]]
name = "customers_parquet"
query = "SELECT * FROM customer_metrics"
path = "$W/exports/{name}.parquet"

[[export]]
name = "customers_csv"
query = "SELECT * FROM customer_metrics"
path = "$W/exports/{name}.csv"
TOML
for t in customers orders order_items interactions promotions promotion_exposures; do
  "${T[@]}" "$B" --data "$W/store" ingest "$t" "$W/gen-pq/$t.parquet"
done
du -sb "$W/store"
echo "== ingest CSV (orders, into a scratch store)"
"$B" --data "$W/scratch" init
"${T[@]}" "$B" --data "$W/scratch" ingest orders "$W/gen-csv/orders.csv"
rm -rf "$W/scratch" "$W/gen-csv"
echo "== btyd.sql (summary, fits, CLV)"
"${T[@]}" "$B" --data "$W/store" sql --timing -f benches/btyd.sql
echo "== functions.sql (10 M rows in memory; NTILE's sort needs more than the default 4GB)"
"$B" --data "$W/fstore" init
printf '[engine]\nmemory_limit = "12GB"\n' > "$W/fstore/crmdb.toml"
"${T[@]}" "$B" --data "$W/fstore" sql --timing -f benches/functions.sql
rm -rf "$W/fstore"
echo "== export 1 M customer_metrics rows"
mkdir -p "$W/exports"
"${T[@]}" "$B" --data "$W/store" export run customers_parquet
"${T[@]}" "$B" --data "$W/store" export run customers_csv
ls -l "$W/exports"
echo "== every view through psql, fresh server, view cache off"
"$B" --data "$W/store" serve > "$W/serve.log" 2>&1 &
SP=$!
sleep 5
cat > "$W/views.sql" <<SQL
\timing on
\o /dev/null
SELECT * FROM customer_metrics;
SELECT * FROM segment_summary;
SELECT * FROM cohort_retention;
SELECT * FROM promotion_effectiveness;
SELECT * FROM kpi_monthly;
SELECT * FROM segment_transitions;
SQL
"${T[@]}" psql -X -h 127.0.0.1 -p 55500 -U analyst crm -f "$W/views.sql"
grep VmHWM "/proc/$SP/status"
kill "$SP"
echo "== done; the work directory is $W"
