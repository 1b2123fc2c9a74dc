#!/usr/bin/env bash
# Installs what the client tests of crmdb serve need (tests/it/clients.rs,
# tests/it/server.rs): psql, Python drivers, Java + pgjdbc, node-postgres.
# Idempotent: safe to run again; each step is skipped when already present.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"

need_apt=()
command -v psql >/dev/null || need_apt+=(postgresql-client)
# tests/it/server.rs makes a throwaway TLS certificate with it
command -v openssl >/dev/null || need_apt+=(openssl)
command -v java >/dev/null || need_apt+=(default-jre-headless)
command -v javac >/dev/null || need_apt+=(default-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || need_apt+=(libpostgresql-jdbc-java)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v python3 >/dev/null || need_apt+=(python3 python3-pip)
# benches/run.py starts a throwaway PostgreSQL server (initdb/pg_ctl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
if [ "${#need_apt[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

python3 - <<'PY' || python3 -m pip install -q "psycopg[binary]>=3.2" "psycopg2-binary>=2.9" "asyncpg>=0.29" "sqlalchemy>=2.0"
import psycopg, psycopg2, asyncpg, sqlalchemy
PY

python3 -c "import duckdb, psycopg, pytz" 2>/dev/null || python3 -m pip install -q -r "$here/benches/requirements.txt"

if [ ! -d "$here/tests/clients/node_modules/pg" ]; then
  (cd "$here/tests/clients" && npm install --no-audit --no-fund --silent pg@8)
fi
echo "client test dependencies ready"
