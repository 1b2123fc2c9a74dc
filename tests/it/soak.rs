//! Concurrency soak (issue 9, part 2): a real `crmdb serve` child over a
//! generated store, 32 concurrent clients from tests/clients/soak.py for
//! `CRMDB_SOAK_SECS` seconds (default 20): dashboards on the views, customer
//! point lookups, the catalog SQL of psql's meta-commands, and one admin
//! loading whole order batches with `COPY orders FROM STDIN`.
//!
//! Asserted: no unexpected error; every reader's orders count is the base
//! plus whole loads and never goes down; the server's RSS (VmRSS, sampled
//! every 100 ms) stays under the configured memory limit plus view cache plus
//! [`RSS_MARGIN_MB`]; the server is alive afterwards with exactly the loaded
//! rows and printed no panic. Reported (not asserted): queries run,
//! p50/p99 latency per kind, peak RSS.
//!
//! Knobs: `CRMDB_SOAK_SECS` (20), `CRMDB_SOAK_CLIENTS` (32),
//! `CRMDB_SOAK_CUSTOMERS` (2000), `CRMDB_SOAK_BATCH` (500 orders per load).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::server::{PASSWORD, psql_at};

/// `[engine] memory_limit` of the soak server.
pub const MEMORY_LIMIT_MB: u64 = 256;
/// `[engine] view_cache` of the soak server (kept outside the memory limit).
pub const VIEW_CACHE_MB: u64 = 64;
/// What the process may hold beyond both: the binary, Delta snapshots of six
/// tables, 32 sessions with their pg_catalog, allocator slack.
pub const RSS_MARGIN_MB: u64 = 512;

/// The `crmdb` binary the child servers run: `CRMDB_TEST_BIN` when set (a
/// release build, for the long settings), else the one cargo built.
pub fn crmdb_bin() -> PathBuf {
    std::env::var_os("CRMDB_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_crmdb")))
}

pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}")),
        Err(_) => default,
    }
}

/// crmdb.toml for a child server: port 0, the three test users, limits.
pub fn config_toml() -> String {
    let mut toml = format!(
        r#"[engine]
memory_limit = "{MEMORY_LIMIT_MB}MB"
view_cache = "{VIEW_CACHE_MB}MB"

[crm]
as_of = "2026-06-30"

[server]
listen = "127.0.0.1:0"
max_connections = 64
statement_timeout = "120s"
"#
    );
    for role in ["admin", "analyst", "viewer"] {
        toml.push_str(&format!(
            "\n[[server.users]]\nname = \"{role}\"\nrole = \"{role}\"\nsecret = \"{}\"\n",
            crmdb::server::auth::Secret::derive(PASSWORD)
        ));
    }
    toml
}

/// A `crmdb serve` child process; killed when dropped.
pub struct ChildServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// Everything the server wrote to stderr.
    pub stderr: PathBuf,
}

impl ChildServer {
    /// Start `crmdb serve` on `data` with `config`; its address comes from
    /// the first line it prints ("crmdb is listening on 127.0.0.1:PORT …").
    pub fn start(data: &Path, config: &Path) -> ChildServer {
        let stderr = data.with_extension("stderr.log");
        let mut child = Command::new(crmdb_bin())
            .arg("--data")
            .arg(data)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no address in {line:?}; stderr: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                )
            });
        // keep reading so a later line never blocks the server
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        ChildServer {
            child,
            addr,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics if the server has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "crmdb serve exited ({status}); stderr:\n{}",
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
    }

    /// What the server wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `sql` as admin; stdout trimmed (panics on failure).
    pub fn query(&self, sql: &str) -> String {
        let r = psql_at(self.addr, "admin", PASSWORD, &["-c", sql]);
        assert!(r.ok, "{sql}: {}", r.stderr);
        r.stdout.trim().to_string()
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A generated store (`crmdb generate --customers N --load DIR`) and its
/// crmdb.toml, in `dir`.
pub fn generated_store(dir: &Path, customers: u64) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    let out = Command::new(crmdb_bin())
        .arg("generate")
        .arg("--customers")
        .arg(customers.to_string())
        .arg("--seed")
        .arg("42")
        .arg("--out")
        .arg(dir.join("generated"))
        .arg("--load")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = dir.join("crmdb.toml");
    std::fs::write(&config, config_toml()).unwrap();
    (data, config)
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples the peak RSS of a process every 100 ms until dropped.
pub struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(rss_kib(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    p.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Peak RSS so far, in MiB.
    pub fn peak_mib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) / 1024
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn thirty_two_clients_read_and_load_concurrently() {
    let secs = env_u64("CRMDB_SOAK_SECS", 20);
    let clients = env_u64("CRMDB_SOAK_CLIENTS", 32);
    let customers = env_u64("CRMDB_SOAK_CUSTOMERS", 2000);
    let batch = env_u64("CRMDB_SOAK_BATCH", 500);

    let tmp = tempfile::tempdir().unwrap();
    let (data, config) = generated_store(tmp.path(), customers);
    let mut server = ChildServer::start(&data, &config);
    let base: u64 = server.query("SELECT count(*) FROM orders").parse().unwrap();
    let max_id: u64 = server
        .query("SELECT max(order_id) FROM orders")
        .parse()
        .unwrap();
    let first_id = max_id + 1_000_000;
    let idle_mib = rss_kib(server.pid()).unwrap_or(0) / 1024;
    let rss = RssSampler::start(server.pid());

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/soak.py");
    let mut python = Command::new("python3")
        .arg(&script)
        .arg(server.addr.ip().to_string())
        .arg(server.addr.port().to_string())
        .arg(PASSWORD)
        .args([secs, clients, base, batch, customers, first_id].map(|n| n.to_string()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 could not run ({e}); run .ci/install-clients.sh"));
    // a watchdog, so a hung server fails the test instead of hanging it
    let (mut stdout, mut stderr) = (python.stdout.take().unwrap(), python.stderr.take().unwrap());
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let limit = Instant::now() + Duration::from_secs(secs + 300);
    let status = loop {
        if let Some(status) = python.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > limit {
            let _ = python.kill();
            panic!("soak.py did not finish within {secs} s + 300 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let peak_mib = rss.peak_mib();
    drop(rss);
    assert!(status.success(), "soak.py failed:\n{stdout}\n{stderr}");
    let report: serde_json::Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SOAK "))
        .map(|j| serde_json::from_str(j).unwrap())
        .unwrap_or_else(|| panic!("no SOAK line in:\n{stdout}\n{stderr}"));

    println!(
        "soak: {} s, {} clients, {} queries, {} loads of {batch} orders, {} errors, {} violations",
        report["seconds"],
        report["clients"],
        report["queries"],
        report["loads"],
        report["errors"],
        report["violations"]
    );
    if let Some(kinds) = report["kinds"].as_object() {
        for (kind, k) in kinds {
            println!(
                "  {kind:<26} n={:<7} p50={:>8} ms  p99={:>8} ms  max={:>8} ms",
                k["n"], k["p50_ms"], k["p99_ms"], k["max_ms"]
            );
        }
    }
    println!(
        "  server RSS: {idle_mib} MiB idle, peak {peak_mib} MiB (memory_limit {MEMORY_LIMIT_MB} MiB + view_cache {VIEW_CACHE_MB} MiB + margin {RSS_MARGIN_MB} MiB = {} MiB allowed)",
        MEMORY_LIMIT_MB + VIEW_CACHE_MB + RSS_MARGIN_MB
    );

    assert_eq!(
        report["errors"], 0,
        "unexpected errors: {}",
        report["first_errors"]
    );
    assert_eq!(
        report["violations"], 0,
        "inconsistent reads: {}",
        report["first_violations"]
    );
    let loads = report["loads"].as_u64().unwrap();
    assert!(loads >= 1, "the loader committed nothing");
    server.assert_alive();
    assert_eq!(
        server.query("SELECT count(*) FROM orders"),
        (base + loads * batch).to_string()
    );
    assert!(
        peak_mib < MEMORY_LIMIT_MB + VIEW_CACHE_MB + RSS_MARGIN_MB,
        "peak RSS {peak_mib} MiB"
    );
    let log = server.stderr_text();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
}
