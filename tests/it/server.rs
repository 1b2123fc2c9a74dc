//! `crmdb serve` through psql: authentication, version strings, roles,
//! per-connection settings, statement timeout, connection limit, TLS checks.
//!
//! One small store (3 customers, 4 orders) and one server on an ephemeral
//! port are shared by all tests; they live on a runtime of their own so they
//! outlive each test's runtime.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crmdb::config::Config;
use crmdb::engine::Engine;
use crmdb::ingest::{IngestOptions, ingest_bytes};
use crmdb::server::auth::Secret;
use crmdb::server::config::{Role, ServerConfig, UserEntry};
use crmdb::server::{RunningServer, Server};
use crmdb::store::Store;

/// Password of the test users admin, analyst, viewer.
pub const PASSWORD: &str = "pw-for-tests";

const CUSTOMERS: &str = "customer_id,name,phone,email,gender,birth_date,city,signup_at,signup_channel,member_tier,marketing_consent,updated_at
1,Alice Smith,13812341234,alice@example.com,F,1990-01-02,Berlin,2024-01-01T10:00:00Z,web,gold,true,2024-01-01T10:00:00Z
2,Bob Jones,13900001111,bob@example.org,M,1985-05-06,Paris,2024-02-01T11:00:00Z,app,silver,false,2024-02-01T11:00:00Z
3,Carol White,,carol@example.net,F,,Rome,2024-03-01T12:00:00Z,store,,true,2024-03-01T12:00:00Z
";

const ORDERS: &str =
    "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status
10,1,2024-04-01T09:30:00Z,web,s1,120.50,0.00,,completed
11,1,2024-05-02T10:00:00Z,app,s1,80.00,5.00,,completed
12,2,2024-05-03T11:15:00Z,store,s2,42.25,,,returned
13,3,2024-06-04T12:45:00Z,web,s3,10.00,,,completed
";

pub struct Fixture {
    pub runtime: tokio::runtime::Handle,
    pub engine: Engine,
    pub addr: SocketAddr,
    servers: std::sync::Mutex<Vec<RunningServer>>,
}

impl Fixture {
    /// Start one more server over the same engine.
    pub fn start(&self, config: ServerConfig) -> crmdb::Result<SocketAddr> {
        let engine = self.engine.clone();
        let server = self.runtime.block_on(async move {
            // block_on from outside the runtime: the server task is spawned on it
            tokio::spawn(async move { Server::start(engine, config).await })
                .await
                .unwrap()
        })?;
        let addr = server.local_addr();
        self.servers.lock().unwrap().push(server);
        Ok(addr)
    }
}

pub fn users() -> Vec<UserEntry> {
    [Role::Admin, Role::Analyst, Role::Viewer]
        .into_iter()
        .map(|role| UserEntry {
            name: role.as_str().into(),
            role,
            secret: Secret::derive(PASSWORD).to_string(),
        })
        .collect()
}

pub fn config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".into(),
        users: users(),
        ..ServerConfig::default()
    }
}

/// The shared store and server.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                // as crmdb's own runtime (src/main.rs)
                .thread_stack_size(crmdb::server::rewrite::PLANNER_STACK_BYTES)
                .enable_all()
                .build()
                .unwrap();
            let handle = runtime.handle().clone();
            runtime.block_on(async move {
                let dir = tempfile::tempdir().unwrap();
                let store = Store::init(&dir.path().join("data")).await.unwrap();
                let opts = IngestOptions::default();
                ingest_bytes(&store, "customers", CUSTOMERS.as_bytes(), &opts)
                    .await
                    .unwrap();
                ingest_bytes(&store, "orders", ORDERS.as_bytes(), &opts)
                    .await
                    .unwrap();
                let engine = Engine::open(store, Arc::new(Config::default()))
                    .await
                    .unwrap();
                let server = Server::start(engine.clone(), config()).await.unwrap();
                tx.send((handle, engine, server)).unwrap();
                // keep the store and the runtime alive for the whole test run
                let _dir = dir;
                std::future::pending::<()>().await;
            });
        });
        let (runtime, engine, server) = rx.recv().unwrap();
        Fixture {
            runtime,
            engine,
            addr: server.local_addr(),
            servers: std::sync::Mutex::new(vec![server]),
        }
    })
}

/// Result of a psql run.
pub struct Psql {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run psql (unaligned, tuples only, verbose errors) as `user`.
pub fn psql_at(addr: SocketAddr, user: &str, password: &str, args: &[&str]) -> Psql {
    let out = Command::new("psql")
        .arg("-X")
        .arg("-A")
        .arg("-t")
        .arg("-q")
        .arg("-v")
        .arg("ON_ERROR_STOP=1")
        .arg("-v")
        .arg("VERBOSITY=verbose")
        .arg(format!(
            "host={} port={} user={user} dbname=crm sslmode=disable connect_timeout=10",
            addr.ip(),
            addr.port()
        ))
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("psql must be installed (apt-get install postgresql-client)");
    Psql {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn psql(user: &str, sql: &str) -> Psql {
    psql_at(fixture().addr, user, PASSWORD, &["-c", sql])
}

/// Run `sql` as `user`, expect success, return stdout trimmed.
pub fn query(user: &str, sql: &str) -> String {
    let r = psql(user, sql);
    assert!(r.ok, "psql failed for {sql:?}: {}", r.stderr);
    r.stdout.trim_end().to_string()
}

/// Run `sql` as `user`, expect an error with SQLSTATE `code`; return stderr.
pub fn query_error(user: &str, sql: &str, code: &str) -> String {
    let r = psql(user, sql);
    assert!(
        !r.ok,
        "expected {code} for {sql:?}, got rows {:?}",
        r.stdout
    );
    assert!(
        r.stderr.contains(&format!("ERROR:  {code}:")),
        "expected SQLSTATE {code} for {sql:?}, got: {}",
        r.stderr
    );
    r.stderr
}

#[test]
fn version_strings_say_postgresql_16_and_crmdb() {
    let v = query("analyst", "SELECT version()");
    assert!(v.starts_with("PostgreSQL 16.6 (crmdb 0.1.0) on "), "{v}");
    assert_eq!(
        query(
            "analyst",
            "SELECT pg_catalog.version() LIKE 'PostgreSQL 16.6 %'"
        ),
        "t"
    );
    assert_eq!(
        query("analyst", "SHOW server_version"),
        "16.6 (crmdb 0.1.0)"
    );
    assert_eq!(query("analyst", "SHOW server_version_num"), "160006");
    // the startup ParameterStatus, as psql saw it
    let r = psql_at(
        fixture().addr,
        "analyst",
        PASSWORD,
        &["-c", "\\echo :SERVER_VERSION_NAME :SERVER_VERSION_NUM"],
    );
    assert_eq!(r.stdout.trim(), "16.6 (crmdb 0.1.0) 160006", "{}", r.stderr);
}

#[test]
fn logins_need_the_right_password() {
    assert_eq!(query("analyst", "SELECT 1"), "1");
    let wrong = psql_at(
        fixture().addr,
        "analyst",
        "not-the-password",
        &["-c", "SELECT 1"],
    );
    assert!(!wrong.ok);
    assert!(
        wrong
            .stderr
            .contains("password authentication failed for user \"analyst\""),
        "{}",
        wrong.stderr
    );
    let unknown = psql_at(fixture().addr, "mallory", PASSWORD, &["-c", "SELECT 1"]);
    assert!(!unknown.ok);
    assert!(
        unknown
            .stderr
            .contains("password authentication failed for user \"mallory\""),
        "{}",
        unknown.stderr
    );
    let no_password = psql_at(fixture().addr, "analyst", "", &["-w", "-c", "SELECT 1"]);
    assert!(!no_password.ok, "{}", no_password.stdout);
    // the server is still fine
    assert_eq!(query("admin", "SELECT 2"), "2");
}

#[test]
fn current_user_is_the_logged_in_user() {
    assert_eq!(query("analyst", "SELECT current_user"), "analyst");
    assert_eq!(query("admin", "SELECT session_user"), "admin");
    assert_eq!(query("admin", "SELECT current_database()"), "crm");
}

#[test]
fn roles_limit_what_users_may_do() {
    let file = std::env::temp_dir().join(format!("crmdb-copy-{}.csv", std::process::id()));
    let copy = format!("COPY (SELECT 42) TO '{}'", file.display());
    for user in ["analyst", "viewer"] {
        let e = query_error(user, &copy, "42501");
        assert!(e.contains(&format!("role {user} may not run COPY")), "{e}");
        query_error(user, "DROP TABLE orders", "42501");
        query_error(user, "INSERT INTO orders SELECT * FROM orders", "42501");
        query_error(user, "CREATE TABLE t AS SELECT 1 AS x", "42501");
        query_error(
            user,
            "CREATE EXTERNAL TABLE secrets (line VARCHAR) STORED AS PARQUET LOCATION '/etc/passwd'",
            "42501",
        );
        query_error(user, "SET datafusion.execution.batch_size = 17", "42501");
        query_error(user, "SET datafusion.runtime.memory_limit = '1G'", "42501");
    }
    assert!(
        !file.exists(),
        "COPY TO a server file must not run for non-admins"
    );
    // nothing happened
    assert_eq!(query("analyst", "SELECT count(*) FROM orders"), "4");
    // reading is allowed
    assert_eq!(
        query(
            "analyst",
            "SELECT order_id, amount FROM orders WHERE customer_id = 1 ORDER BY order_id"
        ),
        "10|120.50\n11|80.00"
    );
}

#[test]
fn settings_are_per_connection_and_unknown_ones_are_rejected() {
    query_error("analyst", "SET no_such_setting = 5", "42704");
    query_error("analyst", "SHOW no_such_setting", "42704");
    // admin changes a DataFusion option in its session ...
    let r = query(
        "admin",
        "SET datafusion.execution.batch_size = 17; SELECT current_setting('datafusion.execution.batch_size')",
    );
    assert_eq!(r, "17");
    // ... which another connection does not see
    assert_eq!(
        query(
            "admin",
            "SELECT current_setting('datafusion.execution.batch_size')"
        ),
        "8192"
    );
    assert_eq!(
        query(
            "analyst",
            "SET search_path = public; SELECT current_setting('search_path')"
        ),
        "public"
    );
    assert_eq!(
        query("analyst", "SELECT current_setting('search_path')"),
        "\"$user\", public"
    );
    assert_eq!(
        query(
            "analyst",
            "SET application_name = 'grafana'; SHOW application_name"
        ),
        "grafana"
    );
    assert_eq!(
        query("analyst", "SHOW transaction isolation level"),
        "read committed"
    );
}

#[test]
fn savepoints_are_accepted() {
    let r = query(
        "analyst",
        "BEGIN; SAVEPOINT a; SELECT 1; RELEASE SAVEPOINT a; SAVEPOINT b; ROLLBACK TO SAVEPOINT b; COMMIT",
    );
    assert_eq!(r, "1");
}

/// A query that runs for minutes unless stopped.
pub const SLOW: &str = "SELECT sum(x) FROM generate_series(1, 100000000000) AS t(x)";

#[test]
fn statement_timeout_stops_a_running_query() {
    let started = Instant::now();
    let e = query_error(
        "analyst",
        &format!("SET statement_timeout = '1s'; {SLOW}"),
        "57014",
    );
    assert!(
        e.contains("canceling statement due to statement timeout"),
        "{e}"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "the timeout took {took:?}");
    // the server and other sessions are fine
    assert_eq!(query("analyst", "SELECT count(*) FROM customers"), "3");
}

/// One connection asking the same question about other customers: the
/// statement's shape is planned once (crmdb::plans) and every answer is the
/// one a fresh plan gives; a `SET` in between is honoured.
#[test]
fn repeated_statement_shapes_answer_every_value() {
    let lookup = |id: &str| {
        format!(
            "SELECT c.name, o.orders, o.revenue FROM customers c \
             LEFT JOIN (SELECT customer_id, count(*) FILTER (WHERE status = 'completed') AS orders, \
             sum(amount) FILTER (WHERE status = 'completed') AS revenue \
             FROM orders WHERE customer_id = {id} GROUP BY customer_id) o ON o.customer_id = c.customer_id \
             WHERE c.customer_id = {id}"
        )
    };
    let buyers = "SELECT count(*) FROM customer_metrics WHERE orders > 0";
    let statements = [
        lookup("1"),
        lookup("2"),
        lookup("3"),
        lookup("4"),
        lookup("1"),
        "SELECT order_id FROM orders WHERE amount >= 80 ORDER BY order_id".to_string(),
        "SELECT order_id FROM orders WHERE amount >= 42.25 ORDER BY order_id".to_string(),
        buyers.to_string(),
        "SET crm.as_of = '2000-01-01'".to_string(),
        buyers.to_string(),
    ];
    let mut args = Vec::new();
    for s in &statements {
        args.push("-c");
        args.push(s.as_str());
    }
    let r = psql_at(fixture().addr, "analyst", PASSWORD, &args);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "Alice Smith|2|200.50\n\
         Bob Jones|0|\n\
         Carol White|1|10.00\n\
         Alice Smith|2|200.50\n\
         10\n11\n\
         10\n11\n12\n\
         2\n\
         0\n"
    );
}

#[test]
fn failing_queries_do_not_hurt_the_server() {
    query_error("analyst", "SELECT * FROM no_such_table", "42P01");
    query_error("analyst", "SELEC 1", "42601");
    assert_eq!(query("analyst", "SELECT count(*) FROM orders"), "4");
}

#[test]
fn too_many_connections_get_53300() {
    let f = fixture();
    let addr = f
        .start(ServerConfig {
            max_connections: 1,
            ..config()
        })
        .unwrap();
    // hold the only slot with a sleeping psql
    let mut holder = Command::new("psql")
        .arg("-X")
        .arg(format!(
            "host={} port={} user=analyst dbname=crm sslmode=disable",
            addr.ip(),
            addr.port()
        ))
        .arg("-c")
        .arg("SET statement_timeout = '3s'")
        .arg("-c")
        .arg(SLOW)
        .env("PGPASSWORD", PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until the holder is connected
    std::thread::sleep(Duration::from_millis(700));
    let r = psql_at(addr, "analyst", PASSWORD, &["-c", "SELECT 1"]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(!r.ok);
    assert!(
        r.stderr.contains("sorry, too many clients already"),
        "{}",
        r.stderr
    );
}

/// With `max_active_statements = 1`, a statement reading a table waits
/// while another holds the slot (and its statement_timeout ends the wait);
/// catalog queries and constant SELECTs are answered meanwhile; once the
/// slot is free the waiting kind runs again.
#[test]
fn statements_beyond_max_active_statements_wait_their_turn() {
    let f = fixture();
    let addr = f
        .start(ServerConfig {
            max_active_statements: 1,
            ..config()
        })
        .unwrap();
    let holder = std::thread::spawn(move || {
        let r = psql_at(
            addr,
            "analyst",
            PASSWORD,
            &[
                "-c",
                "SET statement_timeout = '8s'",
                "-c",
                "SELECT x * 7 % 1000003 AS p FROM generate_series(1, 1000000000) t(x) \
                 WHERE x > (SELECT count(*) FROM orders) ORDER BY p DESC LIMIT 1",
            ],
        );
        (r, Instant::now())
    });
    // (well after the holder has its slot, even on a loaded machine)
    std::thread::sleep(Duration::from_millis(2000));
    let waiting = psql_at(
        addr,
        "analyst",
        PASSWORD,
        &[
            "-c",
            "SET statement_timeout = '1s'",
            "-c",
            "SELECT count(*) FROM orders",
        ],
    );
    let meta = psql_at(
        addr,
        "analyst",
        PASSWORD,
        &[
            "-c",
            "SELECT count(*) FROM pg_catalog.pg_namespace WHERE nspname = 'public'",
            "-c",
            "SELECT 1 + 1",
        ],
    );
    let meta_at = Instant::now();
    let (held, held_until) = holder.join().unwrap();
    assert!(!held.ok && held.stderr.contains("57014"), "{}", held.stderr);
    assert!(
        !waiting.ok && waiting.stderr.contains("57014"),
        "a second table read did not wait for the slot: {} {}",
        waiting.stdout,
        waiting.stderr
    );
    assert!(meta.ok, "{}", meta.stderr);
    assert_eq!(meta.stdout, "1\n2\n");
    assert!(
        meta_at < held_until,
        "the catalog query waited for the slot"
    );
    let after = psql_at(
        addr,
        "analyst",
        PASSWORD,
        &["-c", "SELECT count(*) FROM orders"],
    );
    assert_eq!(after.stdout, "4\n", "{}", after.stderr);
}

#[test]
fn unsafe_configurations_refuse_to_start() {
    let f = fixture();
    let e = f
        .start(ServerConfig {
            tls_cert: Some("/nonexistent/server.crt".into()),
            tls_key: Some("/nonexistent/server.key".into()),
            ..config()
        })
        .unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
    let e = f
        .start(ServerConfig {
            listen: "0.0.0.0:0".into(),
            auth: crmdb::server::config::AuthMode::Trust,
            ..config()
        })
        .unwrap_err();
    assert!(e.to_string().contains("without authentication"), "{e}");
    let e = f
        .start(ServerConfig {
            require_tls: true,
            ..config()
        })
        .unwrap_err();
    assert!(e.to_string().contains("require_tls"), "{e}");
    let e = f
        .start(ServerConfig {
            users: vec![],
            ..config()
        })
        .unwrap_err();
    assert!(e.to_string().contains("no users configured"), "{e}");
}

#[test]
fn viewer_sees_personal_data_masked() {
    let raw = query(
        "analyst",
        "SELECT name, phone, email FROM customers WHERE customer_id = 1",
    );
    assert_eq!(raw, "Alice Smith|13812341234|alice@example.com");
    let masked = query(
        "viewer",
        "SELECT name, phone, email, city FROM customers WHERE customer_id = 1",
    );
    let cols: Vec<&str> = masked.split('|').collect();
    assert_eq!(cols.len(), 4, "{masked}");
    assert_ne!(cols[0], "Alice Smith");
    assert_ne!(cols[1], "13812341234");
    assert_ne!(cols[2], "alice@example.com");
    assert!(cols[1].contains('*') && cols[2].contains('*'), "{masked}");
    assert_eq!(cols[3], "Berlin");
    query_error("viewer", "INSERT INTO orders SELECT * FROM orders", "42501");
    query_error(
        "viewer",
        "SET datafusion.execution.batch_size = 17",
        "42501",
    );
    // qualified names are masked too, and joins work
    let masked2 = query(
        "viewer",
        "SELECT c.email FROM crm.public.customers c JOIN orders o USING (customer_id) WHERE o.order_id = 10",
    );
    assert_eq!(masked2, cols[2]);
}

#[test]
fn require_tls_refuses_plaintext_clients_and_serves_tls_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl must be installed (apt-get install openssl)");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let addr = fixture()
        .start(ServerConfig {
            require_tls: true,
            tls_cert: Some(crt),
            tls_key: Some(key),
            ..config()
        })
        .unwrap();
    // a plaintext client is refused before it can log in
    let plain = psql_at(addr, "analyst", PASSWORD, &["-c", "SELECT 1"]);
    assert!(!plain.ok);
    assert!(plain.stderr.contains("requires TLS"), "{}", plain.stderr);
    // the same client over TLS gets its answer (sslmode=require fails
    // unless the server negotiates TLS)
    let tls = Command::new("psql")
        .args(["-X", "-A", "-t", "-c", "SELECT 41 + 1"])
        .arg(format!(
            "host={} port={} user=analyst dbname=crm sslmode=require connect_timeout=10",
            addr.ip(),
            addr.port()
        ))
        .env("PGPASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        tls.status.success(),
        "{}",
        String::from_utf8_lossy(&tls.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&tls.stdout).trim(), "42");
}

#[test]
fn a_too_deep_expression_is_refused_and_the_server_keeps_serving() {
    // 1 + 1 + … with 20,000 terms: a tree 20,000 deep, which used to
    // overflow the planner's stack and abort the whole server
    let chain = vec!["1"; 20_000].join(" + ");
    let e = query_error("analyst", &format!("SELECT {chain}"), "54001");
    assert!(e.contains("statement too complex: 19999 operators"), "{e}");
    // the same through the extended protocol (psql's \bind)
    let r = psql_at(
        fixture().addr,
        "analyst",
        PASSWORD,
        &["-c", &format!("SELECT {chain} + $1 \\bind 1 \\g")],
    );
    assert!(!r.ok && r.stderr.contains("54001"), "{}", r.stderr);
    // a long generated filter below the limit still runs
    let filter = (100..1000)
        .map(|i| format!("order_id = {i}"))
        .collect::<Vec<_>>()
        .join(" OR ");
    assert_eq!(
        query(
            "analyst",
            &format!("SELECT count(*) FROM orders WHERE {filter} OR order_id = 10")
        ),
        "1"
    );
    assert_eq!(query("analyst", "SELECT 41 + 1"), "42");
}

#[test]
fn abusive_statements_get_errors_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, sql: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, sql).unwrap();
        path
    };
    let run_file = |path: &std::path::Path| {
        psql_at(
            fixture().addr,
            "analyst",
            PASSWORD,
            &["-f", &path.display().to_string()],
        )
    };
    // a 20 MB string literal (the issue says 100 MB; any size past the
    // 16 MiB limit is the same path): refused before parsing (54001)
    let big = file(
        "big.sql",
        format!("SELECT length('{}');", "x".repeat(20_000_000)),
    );
    let r = run_file(&big);
    assert!(!r.ok && r.stderr.contains("54001"), "{}", r.stderr);
    assert!(r.stderr.contains("statement too large"), "{}", r.stderr);
    // 3,000 nested parentheses: the parser's recursion limit (42601)
    let deep = file(
        "deep.sql",
        format!("SELECT {}1{};", "(".repeat(3_000), ")".repeat(3_000)),
    );
    let r = run_file(&deep);
    assert!(
        !r.ok && r.stderr.contains("recursion limit exceeded"),
        "{}",
        r.stderr
    );
    // 10,000 columns are answered
    let wide = file(
        "wide.sql",
        format!(
            "SELECT {};",
            (0..10_000)
                .map(|i| format!("{i} AS c{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let r = run_file(&wide);
    assert!(r.ok, "{}", r.stderr);
    assert!(
        r.stdout.trim_end().ends_with("|9998|9999"),
        "{}",
        &r.stdout[r.stdout.len().saturating_sub(80)..]
    );
    // a huge sort stops at the statement timeout. (A cross join whose
    // every input batch multiplies into millions of rows stops only between
    // input batches: DataFusion yields at its sources, not inside the join.)
    // Another session is answered while the sort runs.
    let sort = std::thread::spawn(|| {
        let r = psql_at(
            fixture().addr,
            "analyst",
            PASSWORD,
            &[
                "-c",
                "SET statement_timeout = '4s'",
                "-c",
                "SELECT x * 7 % 1000003 AS p FROM generate_series(1, 1000000000) t(x) ORDER BY p DESC LIMIT 1",
            ],
        );
        (r, std::time::Instant::now())
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(query("analyst", "SELECT count(*) FROM orders"), "4");
    let answered_at = std::time::Instant::now();
    let (r, sort_ended_at) = sort.join().unwrap();
    assert!(!r.ok && r.stderr.contains("57014"), "{}", r.stderr);
    assert!(
        answered_at < sort_ended_at,
        "the other session was answered only after the sort ended"
    );
    assert_eq!(query("analyst", "SELECT count(*) FROM orders"), "4");
}
