#!/usr/bin/env python3
"""crmdb against DuckDB and PostgreSQL on the same CRM workload (issue 8).

    python3 benches/run.py [--customers 1000000] [--crmdb target/release/crmdb]

Generates the data with `crmdb generate`, loads it into a crmdb store (and
measures ingest from Parquet and CSV), COPY-loads it into a throwaway
PostgreSQL cluster, points DuckDB at the Delta tables' Parquet files, runs
the fixed workload of benches/workload.py on every engine (1 warm-up + 5
timed runs, median), checks every engine's answers against crmdb's, and
writes benches/results/<date>-<N>.md (and .json) with the machine, the
versions, the medians and the ratios. See README.md, "Benchmarks".
"""

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import workload as W  # noqa: E402

TABLES = ["customers", "orders", "order_items", "interactions", "promotions", "promotion_exposures"]
KEYS = {
    "customers": ["customer_id"],
    "orders": ["order_id"],
    "order_items": ["order_id", "line_no"],
    "interactions": ["interaction_id"],
    "promotions": ["promotion_id"],
    "promotion_exposures": ["promotion_id", "customer_id"],
}
# secondary indexes a PostgreSQL DBA would add for customer lookups
PG_INDEXES = {"orders": ["customer_id"], "interactions": ["customer_id"]}
QUERY_TITLES = {
    "q1_rfm_segments": "1 RFM scores + segment counts",
    "q2_cohort_retention": "2 cohort retention (12 months)",
    "q3_promotion_effectiveness": "3 promotion effectiveness",
    "q5_lifecycle_by_channel": "5 lifecycle stage × signup channel",
    "q6_repurchase_aov_monthly": "6 monthly repurchase rate + AOV by channel",
    "q7_customer_metrics": "7 full customer_metrics (fit included)",
    "q7_cached": "7b customer_metrics (fits cached)",
    "q8_export_segment": "8 export one segment to Parquet",
}
ENGINES = ["crmdb", "port", "duckdb", "postgres"]
ENGINE_TITLES = {
    "crmdb": "crmdb (in-process)",
    "port": "crmdb (Postgres port)",
    "duckdb": "DuckDB",
    "postgres": "PostgreSQL",
}

PROBLEMS = []  # loud: every result mismatch and engine failure


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def problem(msg):
    PROBLEMS.append(msg)
    print(f"\n!!! {msg}\n", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes


def run_measured(cmd, stdout=None, stdin=None, env=None, check=True):
    """Run cmd to completion; (returncode, stderr text, peak RSS bytes).
    stdout goes to the given path (or /dev/null)."""
    with tempfile.TemporaryFile() as err, open(stdout or os.devnull, "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=stdin, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}):\n{text[-4000:]}")
    return p.returncode, text, usage.ru_maxrss * 1024


class Crmdb:
    def __init__(self, exe, data):
        self.exe = str(exe)
        self.data = Path(data)
        self.peak_rss = {}  # what → bytes

    def cmd(self, *args):
        return [self.exe, "--data", str(self.data), *map(str, args)]

    def note_rss(self, what, rss):
        self.peak_rss[what] = max(self.peak_rss.get(what, 0), rss)

    def script(self, sql_text, what, stdout=None):
        """Run a SQL script in one `crmdb sql --timing` process: list of
        (rows, seconds) per statement."""
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(sql_text)
        try:
            _, err, rss = run_measured(
                self.cmd("sql", "--timing", "--format", "csv", "-f", f.name), stdout=stdout
            )
        finally:
            os.unlink(f.name)
        self.note_rss(what, rss)
        times = [
            (int(m.group(1)), float(m.group(2)))
            for m in re.finditer(r"^-- statement \d+: (\d+) rows in ([0-9.]+) s$", err, re.M)
        ]
        return times

    def query_csv(self, sql, what="query"):
        """One statement's result as (header, rows of strings)."""
        with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as f:
            path = f.name
        try:
            self.script(sql + ";\n", what, stdout=path)
            return read_csv(path)
        finally:
            os.unlink(path)


def read_csv(path):
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return (rows[0] if rows else []), rows[1:]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- values


TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}(:?\d{2})?)?$")
NUM_RE = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$|^-?(inf|NaN)$")


def norm(v):
    """A value from any engine in one comparable form."""
    import decimal

    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        return float(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=dt.timezone.utc)
        return round(v.timestamp(), 6)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, str):
        if v == "":
            return None
        if v in ("true", "false"):
            return v == "true"
        if NUM_RE.match(v):
            return float(v)
        if TS_RE.match(v):
            s = v.replace(" ", "T").replace("Z", "+00:00")
            if not re.search(r"[+-]\d{2}(:?\d{2})?$", s):
                s += "+00:00"
            elif re.search(r"[+-]\d{2}$", s):
                s += ":00"
            return round(dt.datetime.fromisoformat(s).timestamp(), 6)
        return v
    return str(v)


def sort_key(row):
    return tuple((0, "") if v is None else (1, v) if isinstance(v, str) else (2, float(v)) for v in row)


def close(a, b):
    if a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    if abs(a - b) <= 1e-6 * max(1.0, abs(a), abs(b)):
        return True
    # money rounded to cents by different rules (half-even vs half-up)
    cents = round(a, 2) == a and round(b, 2) == b
    return cents and abs(a - b) <= 0.010001


def compare(name, engine, want, got, limit=5):
    """Compare two result sets (lists of tuples) as multisets with numeric
    tolerance. Returns a short status; mismatches are reported loudly."""
    want = sorted((tuple(map(norm, r)) for r in want), key=sort_key)
    got = sorted((tuple(map(norm, r)) for r in got), key=sort_key)
    if len(want) != len(got):
        problem(f"{name}: {engine} returned {len(got)} rows, crmdb {len(want)}")
        return f"MISMATCH ({len(got)} vs {len(want)} rows)"
    bad = []
    for i, (a, b) in enumerate(zip(want, got)):
        if len(a) != len(b) or not all(close(x, y) for x, y in zip(a, b)):
            bad.append((i, a, b))
    if bad:
        lines = "\n".join(f"  crmdb: {a}\n  {engine}: {b}" for _, a, b in bad[:limit])
        problem(f"{name}: {engine} differs from crmdb in {len(bad)} of {len(want)} rows:\n{lines}")
        return f"MISMATCH ({len(bad)} rows)"
    return f"ok ({len(want)} rows)"


# ---------------------------------------------------------------- PostgreSQL


class Postgres:
    SETTINGS = {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "wal_level": "minimal",
        "max_wal_senders": "0",
        "max_wal_size": "8GB",
        "work_mem": "256MB",
        "maintenance_work_mem": "1GB",
        "max_parallel_workers_per_gather": str(os.cpu_count() or 2),
        "timezone": "UTC",
    }

    def __init__(self, workdir, quick):
        self.bindir = self.find_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="pg-", dir=workdir))
        self.port = free_port()
        self.settings = dict(self.SETTINGS, shared_buffers="128MB" if quick else "2GB")
        self.as_user = []
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root needs the 'postgres' user (Debian's postgresql package)")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.dir, 0o700)

    @staticmethod
    def find_bindir():
        cands = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
        if cands:
            return cands[-1].parent
        exe = shutil.which("initdb")
        if exe:
            return Path(exe).resolve().parent
        raise RuntimeError("PostgreSQL server not found (apt-get install postgresql)")

    def start(self):
        data = self.dir / "data"
        subprocess.run(
            self.as_user + [str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                            "-E", "UTF8", "--locale=C", "--no-sync"],
            check=True, stdout=subprocess.DEVNULL)
        opts = f"-p {self.port} -k {self.dir} " + " ".join(f"-c {k}={v}" for k, v in self.settings.items())
        subprocess.run(
            self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"),
                            "-o", opts, "-w", "-t", "120", "start"],
            check=True, stdout=subprocess.DEVNULL)
        self.version = self.connect().execute("SHOW server_version").fetchone()[0]

    def stop(self):
        subprocess.run(
            self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True)


# ---------------------------------------------------------------- helpers


def median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * p
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "cpu": cpu,
            "load_at_start": [round(x, 2) for x in os.getloadavg()],
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def delta_files(table_dir):
    """The Parquet files of a Delta table's current version (adds minus removes,
    from the JSON commits after the last checkpoint)."""
    import duckdb

    log_dir = Path(table_dir) / "_delta_log"
    active = set()
    start = -1
    last_cp = log_dir / "_last_checkpoint"
    if last_cp.exists():
        cp = json.loads(last_cp.read_text())
        start = int(cp["version"])
        parts = sorted(log_dir.glob(f"{start:020d}.checkpoint*.parquet"))
        con = duckdb.connect()
        for p in parts:
            for (path,) in con.execute(f"SELECT add.path FROM read_parquet('{p}') WHERE add IS NOT NULL").fetchall():
                active.add(path)
    commits = sorted(log_dir.glob("*.json"), key=lambda p: int(p.stem))
    from urllib.parse import unquote

    for c in commits:
        if int(c.stem) <= start:
            continue
        for line in c.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                active.add(action["add"]["path"])
            elif "remove" in action:
                active.discard(action["remove"]["path"])
    return sorted(str(Path(table_dir) / unquote(p)) for p in active)


def fmt_s(x):
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.2f}"
    if x >= 0.01:
        return f"{x:.3f}"
    return f"{x * 1000:.2f} ms"


def fmt_t(x):
    """A duration with its unit."""
    s = fmt_s(x)
    return s if s.endswith("ms") or s == "—" else s + " s"


def fmt_rate(x):
    return "—" if not x else f"{x / 1e6:.2f} M/s" if x >= 1e6 else f"{x / 1e3:.0f} k/s"


def fmt_bytes(b):
    return "—" if not b else f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"


# ---------------------------------------------------------------- the run


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--crmdb", default=str(ROOT / "target/release/crmdb"), help="crmdb binary")
    ap.add_argument("--workdir", default=None, help="generated data, stores and the PostgreSQL cluster "
                    "(default: a new directory under $TMPDIR, removed at the end unless --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", default=str(HERE / "results"), help="where the report goes")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query (after 1 warm-up)")
    ap.add_argument("--lookups", type=int, default=200, help="random customers for the point lookup")
    ap.add_argument("--stream-rows", type=int, default=1_000_000)
    ap.add_argument("--engines", default=",".join(ENGINES), help="subset of " + ",".join(ENGINES))
    ap.add_argument("--memory-limit", default=None, help="crmdb [engine] memory_limit, e.g. 1GB")
    ap.add_argument("--view-cache", default=None,
                    help='crmdb [engine] view_cache, e.g. "0" to compute every view every time')
    ap.add_argument("--csv-ingest-tables", default="orders",
                    help="tables also ingested from CSV into a scratch store to measure CSV ingest")
    ap.add_argument("--quick", action="store_true",
                    help="1 timed run, 20 lookups, small PostgreSQL buffers (CI: keeps the harness working)")
    args = ap.parse_args()
    # a killed run still stops its PostgreSQL cluster and crmdb server (finally: below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.runs, args.lookups = 1, min(args.lookups, 20)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    for e in engines:
        if e not in ENGINES:
            ap.error(f"--engines: unknown engine {e!r}")
    if "crmdb" not in engines:
        engines.insert(0, "crmdb")  # the reference for the checks and ratios
    exe = Path(args.crmdb).resolve()
    if not exe.exists():
        ap.error(f"--crmdb {exe}: no such file (cargo build --release, or pass target/debug/crmdb)")

    own_workdir = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="crmdb-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)
    report = {
        "date": dt.date.today().isoformat(), "customers": args.customers, "seed": args.seed,
        "runs": args.runs, "machine": machine(), "crmdb_binary": str(exe), "engines": engines,
        "memory_limit": args.memory_limit, "view_cache": args.view_cache, "quick": args.quick,
    }
    pg = None
    server = None
    try:
        report["versions"] = versions(exe)
        pq_dir, csv_dir = generate(exe, args, workdir, report)
        crm = load_crmdb(exe, args, workdir, pq_dir, csv_dir, report)
        n_orders = report["ingest"]["parquet"]["orders"]["rows"]
        if "postgres" in engines:
            pg = Postgres(workdir, args.quick)
            pg.start()
            report["versions"]["postgresql"] = pg.version
            report["postgres_settings"] = pg.settings
            load_postgres(pg, crm, csv_dir, report)
        duck = None
        if "duckdb" in engines:
            duck = open_duckdb(crm, report)
        fit = crmdb_fit(crm)
        report["bgnbd_fit"] = fit
        if "port" in engines:
            server = start_server(crm)
        export_dir = workdir / "exports"
        export_dir.mkdir(exist_ok=True)
        os.chmod(export_dir, 0o777)  # PostgreSQL's server process writes its COPY there
        results = run_workload(args, crm, server, duck, pg, fit, export_dir, report)
        report["queries"] = results
        report["lookup"] = run_lookups(args, crm, server, duck, pg, report)
        report["stream"] = run_stream(args, server, pg, min(args.stream_rows, n_orders))
    finally:
        if server is not None:
            stop_server(server, crm)
        if pg is not None:
            pg.stop()
        if "crm" in locals():
            report["peak_rss"] = crm.peak_rss
        if own_workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["problems"] = PROBLEMS
    report["load_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(args, report)
    if PROBLEMS:
        print(f"\n{len(PROBLEMS)} problem(s):", file=sys.stderr)
        for p in PROBLEMS:
            print(" - " + p.splitlines()[0], file=sys.stderr)
        sys.exit(1)


def versions(exe):
    import duckdb
    import psycopg

    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    rev = git.stdout.strip()
    # the checkout this harness runs from; say so when it has uncommitted changes
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True)
    if rev and status.stdout.strip():
        rev += "-dirty"
    return {"crmdb": out, "git": rev, "duckdb": duckdb.__version__, "psycopg": psycopg.__version__}


def generate(exe, args, workdir, report):
    base = workdir / f"gen-{args.customers}-{args.seed}"
    out = {}
    for fmt in ("parquet", "csv"):
        d = base / fmt
        done = d / ".complete"
        if not done.exists():
            shutil.rmtree(d, ignore_errors=True)
            log(f"generating {args.customers} customers as {fmt}")
            t = time.perf_counter()
            subprocess.run([str(exe), "generate", "--customers", str(args.customers), "--seed", str(args.seed),
                            "--out", str(d), "--format", fmt], check=True, stdout=subprocess.DEVNULL)
            report.setdefault("generate_seconds", {})[fmt] = time.perf_counter() - t
            done.touch()
        for p in [base, d]:
            os.chmod(p, 0o755)
        out[fmt] = d
    return out["parquet"], out["csv"]


INGEST_RE = re.compile(r"^(\d+) rows in ([0-9.]+) s", re.M)


def ingest(crm, table, path, what):
    t = time.perf_counter()
    _, err, rss = run_measured(crm.cmd("ingest", table, path))
    wall = time.perf_counter() - t
    crm.note_rss(what, rss)
    m = INGEST_RE.search(err)
    rows, secs = (int(m.group(1)), float(m.group(2))) if m else (0, wall)
    return {"rows": rows, "seconds": secs, "wall_seconds": wall, "rows_per_s": rows / secs if secs else None,
            "peak_rss": rss}


def load_crmdb(exe, args, workdir, pq_dir, csv_dir, report):
    data = workdir / "crmdb-store"
    shutil.rmtree(data, ignore_errors=True)
    crm = Crmdb(exe, data)
    subprocess.run(crm.cmd("init"), check=True, stdout=subprocess.DEVNULL)
    toml = f'[crm]\nas_of = "{W.AS_OF.isoformat()}"\n\n[server]\nauth = "trust"\n'
    engine = ""
    if args.memory_limit:
        engine += f'memory_limit = "{args.memory_limit}"\n'
    if args.view_cache is not None:
        engine += f'view_cache = "{args.view_cache}"\n'
    if engine:
        toml = f"[engine]\n{engine}\n" + toml
    (data / "crmdb.toml").write_text(toml)
    # an admin for COPY ... TO a file through the port (trust: no password asked)
    subprocess.run(crm.cmd("user", "add", "bench", "--role", "admin", "--password-stdin"),
                   input=b"bench-password\n", check=True, stdout=subprocess.DEVNULL)
    report["ingest"] = {"parquet": {}, "csv": {}}
    for t in TABLES:
        r = ingest(crm, t, pq_dir / f"{t}.parquet", "ingest")
        report["ingest"]["parquet"][t] = r
        log(f"crmdb ingest {t} (Parquet): {r['rows']} rows in {r['seconds']:.2f} s ({fmt_rate(r['rows_per_s'])})")
    scratch = Crmdb(exe, workdir / "crmdb-csv-scratch")
    shutil.rmtree(scratch.data, ignore_errors=True)
    subprocess.run(scratch.cmd("init"), check=True, stdout=subprocess.DEVNULL)
    for t in [t.strip() for t in args.csv_ingest_tables.split(",") if t.strip()]:
        r = ingest(scratch, t, csv_dir / f"{t}.csv", "ingest")
        report["ingest"]["csv"][t] = r
        log(f"crmdb ingest {t} (CSV): {r['rows']} rows in {r['seconds']:.2f} s ({fmt_rate(r['rows_per_s'])})")
    crm.note_rss("ingest", scratch.peak_rss.get("ingest", 0))
    shutil.rmtree(scratch.data, ignore_errors=True)
    report["store_bytes"] = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    return crm


def pg_type(arrow):
    a = arrow.lower()
    if a.startswith("int64"):
        return "bigint"
    if a.startswith("int32"):
        return "integer"
    if a.startswith("decimal128"):
        m = re.search(r"\((\d+),\s*(\d+)\)", a)
        return f"numeric({m.group(1)},{m.group(2)})"
    if a.startswith("float64"):
        return "double precision"
    if a.startswith("boolean"):
        return "boolean"
    if a.startswith("date32"):
        return "date"
    if a.startswith("timestamp"):
        return "timestamptz"
    if a.startswith("utf8") or a.startswith("largeutf8"):
        return "text"
    raise RuntimeError(f"no PostgreSQL type for Arrow type {arrow}")


def load_postgres(pg, crm, csv_dir, report):
    """Tables from crmdb's own information_schema; server-side COPY from the CSV files."""
    _, cols = crm.query_csv(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position")
    con = pg.connect()
    loads = {}
    for t in TABLES:
        defs = [f"{c} {pg_type(ty)}{' NOT NULL' if nul == 'NO' else ''}" for tn, c, ty, nul in cols if tn == t]
        names = [c for tn, c, _, _ in cols if tn == t]
        t0 = time.perf_counter()
        with con.transaction():
            con.execute(f"DROP TABLE IF EXISTS {t}")
            con.execute(f"CREATE TABLE {t} ({', '.join(defs)})")
            cur = con.execute(f"COPY {t} ({', '.join(names)}) FROM '{csv_dir / (t + '.csv')}' (FORMAT csv, HEADER true)")
            rows = cur.rowcount
        copy_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        con.execute(f"ALTER TABLE {t} ADD PRIMARY KEY ({', '.join(KEYS[t])})")
        for col in PG_INDEXES.get(t, []):
            con.execute(f"CREATE INDEX ON {t} ({col})")
        index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        con.execute(f"ANALYZE {t}")
        analyze_s = time.perf_counter() - t0
        loads[t] = {"rows": rows, "copy_seconds": copy_s, "rows_per_s": rows / copy_s if copy_s else None,
                    "index_seconds": index_s, "analyze_seconds": analyze_s}
        log(f"PostgreSQL COPY {t}: {rows} rows in {copy_s:.2f} s ({fmt_rate(loads[t]['rows_per_s'])}), "
            f"keys+indexes {index_s:.2f} s, ANALYZE {analyze_s:.2f} s")
    con.execute("VACUUM (FREEZE)")  # set hint bits and the visibility map once, as a settled database has
    con.close()
    report["postgres_load"] = loads


def open_duckdb(crm, report):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    files = {}
    for t in TABLES:
        fs = delta_files(crm.data / t)
        files[t] = len(fs)
        lst = ", ".join(f"'{f}'" for f in fs)
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet([{lst}])")
    report["duckdb_source"] = "the Parquet files of the crmdb store's Delta tables (current version)"
    report["duckdb_files"] = files
    report["duckdb_settings"] = {k: v for k, v in con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'memory_limit')").fetchall()}
    return con


def crmdb_fit(crm):
    header, rows = crm.query_csv(W.crmdb_fit_query(), "fit")
    if not rows:
        raise RuntimeError("crmdb: the BG/NBD fit returned nothing")
    return {k: float(v) for k, v in zip(header, rows[0])}


def start_server(crm):
    import psycopg

    port = free_port()
    err = tempfile.TemporaryFile()
    p = subprocess.Popen(crm.cmd("serve", "--listen", f"127.0.0.1:{port}"), stdout=subprocess.PIPE, stderr=err)
    line = p.stdout.readline().decode()
    if "listening on" not in line:
        err.seek(0)
        raise RuntimeError(f"crmdb serve did not start: {line}{err.read().decode()[-2000:]}")
    addr = line.split("listening on", 1)[1].split()[0]
    host, port = addr.rsplit(":", 1)
    server = {"proc": p, "host": host, "port": int(port), "err": err}

    def connect(user="analyst"):
        return psycopg.connect(host=host, port=int(port), user=user, dbname="crm", autocommit=True)

    server["connect"] = connect
    return server


def stop_server(server, crm):
    p = server["proc"]
    p.send_signal(signal.SIGINT)
    try:
        for _ in range(100):
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                crm.note_rss("server", usage.ru_maxrss * 1024)
                p.returncode = os.waitstatus_to_exitcode(status)
                return
            time.sleep(0.1)
        p.kill()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        crm.note_rss("server", usage.ru_maxrss * 1024)
    except ChildProcessError:
        pass


def timed(fn, runs):
    """1 warm-up + runs timed calls of fn(); (median seconds, all times, last result)."""
    result = fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return median(times), times, result


def run_workload(args, crm, server, duck, pg, fit, export_dir, report):
    cq = W.crmdb_queries()
    results = {}
    reps = args.runs + 1
    port = server["connect"]() if server else None
    pgc = pg.connect() if pg else None
    duck_q = W.plain_queries(W.DUCK, fit) if duck else {}
    pg_q = W.plain_queries(W.PG, fit) if pg else {}
    for name in ["q1_rfm_segments", "q2_cohort_retention", "q3_promotion_effectiveness",
                 "q5_lifecycle_by_channel", "q6_repurchase_aov_monthly", "q7_customer_metrics",
                 "q8_export_segment"]:
        r = results[name] = {"times": {}, "median": {}, "check": {}, "rows": None}
        log(f"{QUERY_TITLES[name]}")
        try:
            if name == "q7_customer_metrics":
                want = crmdb_q7(crm, args, r, results)
            elif name == "q8_export_segment":
                want = crmdb_q8(crm, args, r, export_dir)
            else:
                want = crmdb_q(crm, cq[name], name, reps, r)
        except Exception as e:  # a failing crmdb query is reported, the run goes on
            problem(f"{name}: crmdb failed: {e}")
            continue
        for engine, fn in [("port", lambda: port_q(port, server, name, cq, export_dir, r, args, want)),
                           ("duckdb", lambda: duck_run(duck, name, duck_q, fit, export_dir, r, args, want)),
                           ("postgres", lambda: pg_run(pgc, name, pg_q, fit, export_dir, r, args, want))]:
            if engine == "port" and not port or engine == "duckdb" and not duck or engine == "postgres" and not pgc:
                continue
            try:
                fn()
            except Exception as e:
                problem(f"{name}: {engine} failed: {type(e).__name__}: {e}")
        log("  " + ", ".join(f"{e} {fmt_s(s)}" for e, s in r["median"].items()))
    return results


def crmdb_q(crm, sql, name, reps, r):
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as f:
        out = f.name
    try:
        times = crm.script((sql + ";\n") * reps, name, stdout=out)
        header, rows = read_csv(out)
    finally:
        os.unlink(out)
    n = times[0][0]  # the output holds reps copies, each after a header line
    secs = [s for _, s in times[1:]]
    r["first"] = {"crmdb": times[0][1]}  # the warm-up: views computed, not yet materialised
    r["times"]["crmdb"] = secs
    r["median"]["crmdb"] = median(secs)
    r["rows"] = n
    return [tuple(x) for x in rows[:n]]


def crmdb_q7(crm, args, r, results):
    """Each timed run in a fresh process, so that the BG/NBD and Gamma-Gamma
    fits are part of it (a process caches them); the cached case separately."""
    sql = W.crmdb_queries()["q7_customer_metrics"] + ";\n"
    secs = []
    for i in range(args.runs + 1):
        (rows, s), = crm.script(sql, "q7_customer_metrics")
        if i:
            secs.append(s)
    r["times"]["crmdb"] = secs
    r["median"]["crmdb"] = median(secs)
    r["rows"] = rows
    times = crm.script(sql * (args.runs + 1), "q7_customer_metrics")
    cached = [s for _, s in times[1:]]
    results["q7_cached"] = {"times": {"crmdb": cached}, "median": {"crmdb": median(cached)}, "check": {},
                            "rows": rows}
    _, want = crm.query_csv(W.CRMDB_Q7_CHECK, "q7_check")
    return [tuple(x) for x in want]


def crmdb_q8(crm, args, r, export_dir):
    path = export_dir / "crmdb.parquet"
    times = crm.script((W.crmdb_export(path) + ";\n") * (args.runs + 1), "q8_export_segment")
    secs = [s for _, s in times[1:]]
    r["times"]["crmdb"] = secs
    r["median"]["crmdb"] = median(secs)
    return read_parquet_rows(path)


def read_parquet_rows(path):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()


def read_csv_rows(path):
    _, rows = read_csv(path)
    return [tuple(x) for x in rows]


def port_q(port, server, name, cq, export_dir, r, args, want):
    if name == "q8_export_segment":
        path = export_dir / "port.parquet"
        admin = server["connect"]("bench")
        sql = W.crmdb_export(path).replace(" STORED AS PARQUET", " WITH (FORMAT parquet)")
        med, times, _ = timed(lambda: admin.execute(sql), args.runs)
        admin.close()
        got = read_parquet_rows(path)
    elif name == "q7_customer_metrics":
        # every row through the driver, converted one at a time and dropped
        med, times, _ = timed(lambda: sum(1 for _ in port.execute(cq[name])), args.runs)
        got = port.execute(W.CRMDB_Q7_CHECK).fetchall()
    else:
        med, times, got = timed(lambda: port.execute(cq[name]).fetchall(), args.runs)
    r["times"]["port"], r["median"]["port"] = times, med
    r["check"]["port"] = compare(name, "crmdb over the Postgres port", want, got)


def duck_run(duck, name, qs, fit, export_dir, r, args, want):
    if name == "q8_export_segment":
        path = export_dir / "duckdb.parquet"
        sql = f"COPY ({W.plain_export_select(W.DUCK, fit)}) TO '{path}' (FORMAT parquet)"
        med, times, _ = timed(lambda: duck.execute(sql), args.runs)
        got = read_parquet_rows(path)
    elif name == "q7_customer_metrics":
        # into a temporary table: computed in full, not converted to Python objects
        sql = f"CREATE OR REPLACE TEMP TABLE q7 AS {qs[name]}"
        med, times, _ = timed(lambda: duck.execute(sql), args.runs)
        duck.execute("DROP TABLE q7")
        got = duck.execute(W.plain_q7_check(W.DUCK, fit)).fetchall()
    else:
        med, times, got = timed(lambda: duck.execute(qs[name]).fetchall(), args.runs)
    r["times"]["duckdb"], r["median"]["duckdb"] = times, med
    r["check"]["duckdb"] = compare(name, "DuckDB", want, got)


def pg_run(pgc, name, qs, fit, export_dir, r, args, want):
    if name == "q8_export_segment":
        # PostgreSQL has no Parquet writer: CSV, written by the server
        path = export_dir / "postgres.csv"
        sql = f"COPY ({W.plain_export_select(W.PG, fit)}) TO '{path}' (FORMAT csv, HEADER true)"
        med, times, _ = timed(lambda: pgc.execute(sql), args.runs)
        got = read_csv_rows(path)
    elif name == "q7_customer_metrics":
        # server-side time: 1 M rows are computed but not sent
        sql = f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {qs[name]}"

        def run():
            plan = pgc.execute(sql).fetchone()[0][0]
            return plan["Planning Time"] / 1000 + plan["Execution Time"] / 1000

        run()
        times = [run() for _ in range(args.runs)]
        med = median(times)
        got = pgc.execute(W.plain_q7_check(W.PG, fit)).fetchall()
    else:
        med, times, got = timed(lambda: pgc.execute(qs[name]).fetchall(), args.runs)
    r["times"]["postgres"], r["median"]["postgres"] = times, med
    r["check"]["postgres"] = compare(name, "PostgreSQL", want, got)


def run_lookups(args, crm, server, duck, pg, report):
    rng = random.Random(args.seed)
    ids = [rng.randint(1, args.customers) for _ in range(args.lookups)]
    warm = [rng.randint(1, args.customers) for _ in range(5)]
    out = {"customers": len(ids)}
    log(f"customer 360 lookups of {len(ids)} random customers")
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as f:
        path = f.name
    try:
        times = crm.script("".join(W.lookup(i) + ";\n" for i in warm + ids), "lookup", stdout=path)
        _, rows = read_csv(path)
    finally:
        os.unlink(path)
    lat = [s for _, s in times[len(warm):]]
    want = {}
    for row in rows:
        if row and row[0] != "customer_id":
            want[int(row[0])] = tuple(row)
    out["crmdb"] = {"p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "times": lat}

    def measure(engine, execute):
        for i in warm:
            execute(W.lookup(i))
        lat, bad = [], 0
        for i in ids:
            t = time.perf_counter()
            got = execute(W.lookup(i))
            lat.append(time.perf_counter() - t)
            exp = [want[i]] if i in want else []
            if compare(f"lookup of customer {i}", engine, exp, got).startswith("MISMATCH"):
                bad += 1
        out[engine] = {"p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "times": lat,
                       "mismatches": bad}

    if server:
        c = server["connect"]()
        measure("port", lambda q: c.execute(q).fetchall())
        c.close()
    if duck:
        measure("duckdb", lambda q: duck.execute(q).fetchall())
    if pg:
        c = pg.connect()
        measure("postgres", lambda q: c.execute(q).fetchall())
        c.close()
    log("  " + ", ".join(f"{e} p50 {fmt_s(v['p50'])} p99 {fmt_s(v['p99'])}"
                         for e, v in out.items() if isinstance(v, dict)))
    return out


def run_stream(args, server, pg, rows):
    """rows result rows fetched by psycopg (text protocol, client-side cursor)."""
    out = {"rows": rows}
    sql = W.stream(rows)
    runs = 1 if args.quick else 3
    for engine, connect in [("port", server and server["connect"]), ("postgres", pg and pg.connect)]:
        if not connect:
            continue
        c = connect()
        med, times, res = timed(lambda: c.execute(sql).fetchall(), runs)
        c.close()
        if len(res) != rows:
            problem(f"streaming: {engine} returned {len(res)} rows, expected {rows}")
        out[engine] = {"seconds": med, "rows_per_s": rows / med if med else None, "times": times}
        log(f"streaming {rows} rows to psycopg from {engine}: {fmt_s(med)} ({fmt_rate(rows / med)})")
    return out


# ---------------------------------------------------------------- the report


def write_report(args, rep):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{rep['date']}-{rep['customers']}" + ("-quick" if rep["quick"] else "")
    if rep.get("memory_limit"):
        stem += f"-mem{rep['memory_limit']}"
    if rep.get("view_cache") is not None:
        stem += f"-viewcache{rep['view_cache']}"
    (out / f"{stem}.json").write_text(json.dumps(rep, indent=1, default=str))
    m = rep["machine"]
    v = rep.get("versions", {})
    L = [f"# crmdb benchmark, {rep['customers']:,} customers ({rep['date']})", ""]
    L.append(f"`python3 benches/run.py --customers {rep['customers']}"
             + (" --quick" if rep["quick"] else "")
             + (f" --memory-limit {rep['memory_limit']}" if rep.get("memory_limit") else "")
             + (f" --view-cache {rep['view_cache']}" if rep.get("view_cache") is not None else "")
             + f"` — {rep['runs']} timed run{'s' if rep['runs'] != 1 else ''} after 1 warm-up, median.")
    L.append("")
    L.append(f"- Machine: {m['nproc']} cores, {m['memory_gib']} GiB, {m['cpu']}, {m['os']}; load average "
             f"{m['load_at_start']} at the start, {rep.get('load_at_end')} at the end (other work on the "
             f"machine slows every engine alike)")
    L.append(f"- crmdb: {v.get('crmdb')} (git {v.get('git')}), `{rep['crmdb_binary']}`"
             + (f", memory_limit {rep['memory_limit']}" if rep.get("memory_limit") else ""))
    ds = ", ".join(f"{k} {x}" for k, x in sorted(rep.get("duckdb_settings", {}).items()))
    L.append(f"- DuckDB {v.get('duckdb')} (Python, in-process; {ds}), reading "
             f"{rep.get('duckdb_source', '—')}")
    if "postgresql" in v:
        s = rep["postgres_settings"]
        L.append(f"- PostgreSQL {v['postgresql']} (throwaway cluster: shared_buffers {s['shared_buffers']}, "
                 f"work_mem {s['work_mem']}, max_parallel_workers_per_gather "
                 f"{s['max_parallel_workers_per_gather']}, fsync off), CSV COPY-loaded, primary keys, "
                 f"indexes on orders/interactions(customer_id), ANALYZE, VACUUM FREEZE")
    L.append(f"- psycopg {v.get('psycopg')}, Python {m['python']}")
    if "ingest" in rep:
        o = rep["ingest"]["parquet"].get("orders", {})
        L.append(f"- Data: `crmdb generate --customers {rep['customers']} --seed {rep['seed']}`: "
                 + ", ".join(f"{t} {r['rows']:,}" for t, r in rep["ingest"]["parquet"].items())
                 + f" rows; crmdb store {fmt_bytes(rep.get('store_bytes'))}")
    L.append("")
    if rep.get("problems"):
        L.append(f"**{len(rep['problems'])} problem(s)** (result mismatches or failures):")
        L.append("")
        for p in rep["problems"]:
            L.append("    " + p.replace("\n", "\n    "))
        L.append("")
    qs = rep.get("queries", {})
    if qs:
        L.append("## Workload (median seconds)")
        L.append("")
        L.append("| query | crmdb | crmdb 1st run | crmdb port | DuckDB | PostgreSQL | crmdb ÷ DuckDB (≤ 1) | crmdb ÷ PostgreSQL (≤ 0.2) | check (port / DuckDB / PostgreSQL) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        order = ["q1_rfm_segments", "q2_cohort_retention", "q3_promotion_effectiveness",
                 "q5_lifecycle_by_channel", "q6_repurchase_aov_monthly", "q7_customer_metrics", "q7_cached",
                 "q8_export_segment"]
        for name in order:
            if name not in qs:
                continue
            r = qs[name]
            md = r["median"]
            c = md.get("crmdb")

            def ratio(e):
                return f"{c / md[e]:.2f}" if c and md.get(e) else "—"

            checks = " / ".join(r["check"].get(e, "—") for e in ("port", "duckdb", "postgres"))
            first = r.get("first", {}).get("crmdb")
            L.append(f"| {QUERY_TITLES[name]} | {fmt_s(c)} | {fmt_s(first)} | {fmt_s(md.get('port'))} | {fmt_s(md.get('duckdb'))} | "
                     f"{fmt_s(md.get('postgres'))} | {ratio('duckdb')} | {ratio('postgres')} | {checks} |")
        L.append("")
        L.append("crmdb in-process: `crmdb sql --timing` (planning + execution into memory, no process start, "
                 "all runs in one process, so the fits — and, unless `--view-cache 0`, the views' results — are "
                 "cached after the warm-up; '1st run' is that warm-up, computed from the tables), except 7: each run in "
                 "a fresh process so that the BG/NBD and Gamma-Gamma fits are included (7b: same process). "
                 "crmdb port: psycopg, wall time including fetching every row (7: 1 M rows through the "
                 "driver). DuckDB: wall time of execute + fetchall (7: `CREATE TEMP TABLE AS`). "
                 "PostgreSQL: psycopg wall time (7: planning + execution time of `EXPLAIN (ANALYZE, TIMING "
                 "OFF)`, no transfer). 8: crmdb and DuckDB write Parquet, PostgreSQL a server-side CSV "
                 f"(segment '{W.EXPORT_SEGMENT}'). Plain SQL (DuckDB, PostgreSQL) computes every column of "
                 "customer_metrics except expected_purchases_90d and clv_12m (no BG/NBD or Gamma-Gamma fit "
                 "in SQL); p_alive uses crmdb's fitted parameters; 7 is checked on grouped sums of every "
                 "other column.")
        L.append("")
    lk = rep.get("lookup")
    if lk:
        L.append(f"## Customer 360 point lookup ({lk['customers']} random customers)")
        L.append("")
        L.append("| engine | p50 | p99 | mismatches |")
        L.append("|---|---:|---:|---:|")
        for e in ENGINES:
            if e in lk:
                L.append(f"| {ENGINE_TITLES[e]} | {fmt_t(lk[e]['p50'])} | {fmt_t(lk[e]['p99'])} | "
                         f"{lk[e].get('mismatches', '—')} |")
        L.append("")
    st = rep.get("stream")
    if st and len(st) > 1:
        L.append(f"## Streaming {st['rows']:,} rows to psycopg")
        L.append("")
        L.append("| engine | time | rows/s |")
        L.append("|---|---:|---:|")
        for e in ("port", "postgres"):
            if e in st:
                L.append(f"| {ENGINE_TITLES[e]} | {fmt_t(st[e]['seconds'])} | {fmt_rate(st[e]['rows_per_s'])} |")
        L.append("")
    ing = rep.get("ingest")
    if ing:
        L.append("## Ingest")
        L.append("")
        L.append("| table | rows | crmdb Parquet | crmdb CSV | PostgreSQL COPY (CSV) | PostgreSQL keys + ANALYZE |")
        L.append("|---|---:|---:|---:|---:|---:|")
        pgl = rep.get("postgres_load", {})
        for t in TABLES:
            p = ing["parquet"].get(t, {})
            c = ing["csv"].get(t)
            g = pgl.get(t)
            L.append(f"| {t} | {p.get('rows', 0):,} | {fmt_rate(p.get('rows_per_s'))} ({fmt_t(p.get('seconds'))}) | "
                     + (f"{fmt_rate(c['rows_per_s'])} ({fmt_t(c['seconds'])})" if c else "—") + " | "
                     + (f"{fmt_rate(g['rows_per_s'])} ({fmt_t(g['copy_seconds'])})" if g else "—") + " | "
                     + (f"{fmt_t(g['index_seconds'] + g['analyze_seconds'])}" if g else "—") + " |")
        L.append("")
        L.append("crmdb rows/s as `crmdb ingest` reports them (the load itself, one atomic Delta commit).")
        L.append("")
    rss = rep.get("peak_rss")
    if rss:
        L.append("## Peak RSS of the crmdb processes")
        L.append("")
        L.append("| process | peak RSS |")
        L.append("|---|---:|")
        for k, b in rss.items():
            L.append(f"| {k} | {fmt_bytes(b)} |")
        L.append(f"| **maximum** | **{fmt_bytes(max(rss.values()))}** |")
        L.append("")
    L.append("Raw timings: the .json file next to this one.")
    (out / f"{stem}.md").write_text("\n".join(L) + "\n")
    log(f"report written to {out / (stem + '.md')}")


if __name__ == "__main__":
    main()
