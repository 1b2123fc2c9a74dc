//! Security (issue 9, part 6), beyond what tests/it/server.rs already
//! covers (right/wrong password through psql, the role checks of COPY TO a
//! file, DDL, DML and `SET datafusion.*`, masking in plain SELECTs, TLS):
//! the SQLSTATEs of refused logins and other databases, what a refused
//! connection may still do, the SCRAM salt of unknown users, every path by
//! which a viewer could read personal data, DML hidden inside queries, and
//! reading server files through table functions. Each refusal is checked to
//! leave nothing behind (no file, no table, no setting).
//!
//! Decision on databases: crmdb has one database, `crm`. Like PostgreSQL,
//! any other name gets FATAL 3D000 — except the login's own user name,
//! which is what libpq sends when a client gives no dbname at all.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::protocol_fuzz::{
    bind, connect, cstr, execute, message, parse, query as q, startup_to, sync,
};
use super::server::{PASSWORD, fixture, psql_at, query, query_error};

/// The fixture's personal data, as analysts see it.
const RAW: [&str; 8] = [
    "Alice Smith",
    "13812341234",
    "alice@example.com",
    "Bob Jones",
    "13900001111",
    "bob@example.org",
    "Carol White",
    "carol@example.net",
];

fn assert_no_personal_data(what: &str, text: &str) {
    for raw in RAW {
        assert!(!text.contains(raw), "{what} leaked {raw:?}: {text}");
    }
}

fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("crmdb-security-{}-{name}", std::process::id()))
}

/// Backend messages until EOF, ReadyForQuery, a message of a type in
/// `stop`, or 10 s: (type, body) pairs, and whether the server closed the
/// connection.
fn read_messages(stream: &mut TcpStream, stop: &[u8]) -> (Vec<(u8, Vec<u8>)>, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut buf, mut out) = (Vec::new(), Vec::new());
    let mut chunk = [0u8; 4096];
    loop {
        while buf.len() >= 5 {
            let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() < 1 + len {
                break;
            }
            let body = buf[5..1 + len].to_vec();
            out.push((buf[0], body));
            buf.drain(..1 + len);
        }
        if out
            .last()
            .is_some_and(|(t, _)| *t == b'Z' || stop.contains(t))
            || Instant::now() > deadline
        {
            return (out, false);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return (out, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (out, true),
        }
    }
}

/// Severity and SQLSTATE of an ErrorResponse body.
fn error_fields(body: &[u8]) -> (String, String) {
    let (mut severity, mut code) = (String::new(), String::new());
    for field in body.split(|b| *b == 0) {
        match field.first() {
            Some(b'S') => severity = String::from_utf8_lossy(&field[1..]).into_owned(),
            Some(b'C') => code = String::from_utf8_lossy(&field[1..]).into_owned(),
            _ => {}
        }
    }
    (severity, code)
}

#[test]
fn logins_are_refused_with_their_sqlstate_and_viewers_read_masked_over_extended_protocol() {
    let addr = fixture().addr;
    let out = Command::new("python3")
        .arg("security.py")
        .arg(addr.ip().to_string())
        .arg(addr.port().to_string())
        .arg(PASSWORD)
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients"))
        .output()
        .expect("python3 with asyncpg and psycopg (.ci/install-clients.sh)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let masked = query(
        "viewer",
        "SELECT name, phone, email FROM customers WHERE customer_id = 1",
    );
    assert_no_personal_data("the masked row", &masked);
    let copied = masked.replace('|', "\t");
    let expected = format!(
        r#"right password: ok analyst@crm
wrong password: 28P01 password authentication failed for user "analyst"
unknown user: 28P01 password authentication failed for user "mallory"
no password: 28P01 password authentication failed for user "analyst"
empty password: 28P01 password authentication failed for user "analyst"
database postgres: 3D000 database "postgres" does not exist (the database is "crm")
database template1: 3D000 database "template1" does not exist (the database is "crm")
database of the user's name: ok viewer@crm
unknown user, other database: 3D000 database "postgres" does not exist (the database is "crm")
extended text: {masked}
extended binary: {masked}
filter on the real email: 0
copy: {copied}
OK"#
    );
    assert_eq!(stdout.trim_end(), expected, "stderr: {stderr}");
    // a FATAL refusal is the last message: no ReadyForQuery after it
    // (asyncpg printed "cannot process message 'Z'" when one came)
    assert!(!stderr.contains("unexpected state"), "{stderr}");
}

#[test]
fn a_refused_connection_runs_nothing_it_sends_afterwards() {
    let addr = fixture().addr;
    let file = scratch_file("after-refusal.csv");
    let copy = format!("COPY (SELECT 1 AS x) TO '{}'", file.display());
    let sasl_garbage = {
        let mut b = cstr("SCRAM-SHA-256");
        b.extend_from_slice(&5i32.to_be_bytes());
        b.extend_from_slice(b"junk!");
        message(b'p', &b)
    };
    for (user, database, password, code) in [
        ("analyst", "postgres", None, "3D000"),
        ("mallory", "crm", Some(&sasl_garbage), "28P01"),
        ("admin", "crm", Some(&sasl_garbage), "28P01"),
    ] {
        let mut s = connect(addr);
        s.write_all(&startup_to(user, database)).unwrap();
        if let Some(p) = password {
            let (got, _) = read_messages(&mut s, b"R");
            assert_eq!(got.first().map(|m| m.0), Some(b'R'), "{got:?}");
            s.write_all(p).unwrap();
        }
        // then a COPY to a server file, in both protocols, as if logged in
        let mut after = q(&copy);
        after.extend(parse("", &copy, &[]));
        after.extend(bind("", "", &[]));
        after.extend(execute("", 0));
        after.extend(sync());
        let _ = s.write_all(&after);
        let (got, closed) = read_messages(&mut s, b"");
        let errors: Vec<(String, String)> = got
            .iter()
            .filter(|(t, _)| *t == b'E')
            .map(|(_, b)| error_fields(b))
            .collect();
        assert_eq!(
            errors,
            [("FATAL".to_string(), code.to_string())],
            "{user}@{database}: {got:?}"
        );
        assert_eq!(got.len(), 1, "only the FATAL error: {got:?}");
        assert!(closed, "{user}@{database}: the connection stayed open");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !file.exists(),
            "{user}@{database}: a refused connection wrote {}",
            file.display()
        );
    }
    assert_eq!(query("admin", "SELECT 1"), "1");
}

/// The salt of the server-first SCRAM message for `user`.
fn scram_salt(user: &str) -> String {
    let mut s = connect(fixture().addr);
    s.write_all(&startup_to(user, "crm")).unwrap();
    let (got, _) = read_messages(&mut s, b"R");
    assert_eq!(got.first().map(|m| m.0), Some(b'R'), "{got:?}");
    let first = b"n,,n=,r=0123456789abcdefghijklmn";
    let mut b = cstr("SCRAM-SHA-256");
    b.extend_from_slice(&(first.len() as i32).to_be_bytes());
    b.extend_from_slice(first);
    s.write_all(&message(b'p', &b)).unwrap();
    let (got, _) = read_messages(&mut s, b"RE");
    let (_, body) = got
        .iter()
        .find(|(t, _)| *t == b'R')
        .unwrap_or_else(|| panic!("no SASLContinue for {user}: {got:?}"));
    // AuthenticationSASLContinue: int32 11, then r=…,s=<salt>,i=4096
    assert_eq!(body[..4], 11i32.to_be_bytes());
    let text = String::from_utf8_lossy(&body[4..]).into_owned();
    assert!(text.ends_with(",i=4096"), "{text}");
    text.split(',')
        .find_map(|f| f.strip_prefix("s="))
        .unwrap()
        .to_string()
}

#[test]
fn unknown_users_get_a_stable_salt_like_real_ones() {
    // a salt that changed between attempts would tell unknown names apart
    assert_eq!(scram_salt("analyst"), scram_salt("analyst"));
    let mallory = scram_salt("mallory");
    assert_eq!(mallory, scram_salt("mallory"));
    assert_ne!(mallory, scram_salt("eve"));
    assert_ne!(mallory, scram_salt("analyst"));
}

#[test]
fn viewer_reads_no_personal_data_through_any_relation_or_path() {
    // every table and view of the database, as a query and as a table COPY
    let relations = query(
        "viewer",
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
    );
    let relations: Vec<&str> = relations.lines().collect();
    for r in [
        "customers",
        "orders",
        "customer_metrics",
        "segment_summary",
        "cohort_retention",
        "kpi_monthly",
        "promotion_effectiveness",
        "segment_transitions",
        "customer_snapshots",
        "export_runs",
    ] {
        assert!(relations.contains(&r), "{r} missing from {relations:?}");
    }
    for r in &relations {
        let select = query("viewer", &format!("COPY (SELECT * FROM {r}) TO STDOUT"));
        assert_no_personal_data(r, &select);
        let table = query("viewer", &format!("COPY {r} TO STDOUT WITH (FORMAT csv)"));
        assert_no_personal_data(r, &table);
    }
    assert_eq!(
        query("viewer", "SELECT count(*) FROM customer_metrics"),
        "3"
    );
    // the same columns through every shape of query
    for sql in [
        "SELECT * FROM customers",
        "SELECT * FROM crm.public.customers",
        "SELECT * FROM public.customers",
        "WITH c AS (SELECT * FROM customers) SELECT name, phone, email FROM c",
        "SELECT t.* FROM (SELECT name, phone, email FROM customers) t",
        "SELECT name FROM customers UNION ALL SELECT email FROM customers UNION ALL SELECT phone FROM customers",
        "SELECT string_agg(name || phone || email, ',') FROM customers",
        "SELECT min(email), max(email), min(name), max(phone) FROM customers",
        "SELECT c.name, c.email FROM orders o JOIN customers c ON c.customer_id = o.customer_id",
        "SELECT upper(email), reverse(name), substr(phone, 1, 20) FROM customers",
        "COPY customers (name, phone, email) TO STDOUT WITH (FORMAT csv, HEADER)",
        "BEGIN; DECLARE c CURSOR FOR SELECT name, phone, email FROM customers; FETCH 10 FROM c; COMMIT",
    ] {
        let out = query("viewer", sql);
        assert!(!out.is_empty(), "{sql}: no rows");
        assert_no_personal_data(sql, &out);
    }
    // filters run on the masked values: no oracle for guessing them
    for sql in [
        "SELECT count(*) FROM customers WHERE email = 'alice@example.com'",
        "SELECT count(*) FROM customers WHERE name LIKE 'Alice%'",
        "SELECT count(*) FROM customers WHERE phone = '13812341234'",
        "SELECT count(*) FROM customers WHERE email IN ('alice@example.com', 'bob@example.org')",
        "SELECT count(*) FROM customers c JOIN (SELECT 'Bob Jones' AS n) x ON c.name = x.n",
    ] {
        assert_eq!(query("viewer", sql), "0", "{sql}");
    }
    // nor do error messages quote the real values
    let e = query_error(
        "viewer",
        "SELECT CAST(email AS BIGINT) FROM customers WHERE customer_id = 1",
        "22P02",
    );
    assert!(e.contains("Cannot cast string"), "{e}");
    assert_no_personal_data("a cast error", &e);
    // exports: viewers cannot write files (neither query nor table COPY)
    let csv = scratch_file("viewer.csv");
    let parquet = scratch_file("viewer.parquet");
    query_error(
        "viewer",
        &format!("COPY customers TO '{}'", csv.display()),
        "42501",
    );
    query_error(
        "viewer",
        &format!(
            "COPY (SELECT name, phone, email FROM customers) TO '{}'",
            parquet.display()
        ),
        "42501",
    );
    assert!(!csv.exists() && !parquet.exists());
}

#[test]
fn dml_hidden_inside_queries_and_settings_by_another_name_are_refused() {
    for user in ["analyst", "viewer"] {
        for sql in [
            "WITH x AS (SELECT 1) INSERT INTO orders SELECT * FROM orders",
            "WITH x AS (SELECT 1) UPDATE orders SET amount = 0",
            "WITH x AS (SELECT 1) DELETE FROM orders",
            "COPY (DELETE FROM orders) TO STDOUT",
            "EXPLAIN WITH x AS (SELECT 1) INSERT INTO orders SELECT * FROM orders",
        ] {
            let e = query_error(user, sql, "42501");
            assert!(
                e.contains("INSERT, UPDATE, DELETE or MERGE inside a query"),
                "{e}"
            );
        }
        // a refused statement after an allowed one in the same message
        query_error(
            user,
            "SELECT 1; CREATE TABLE sneaky AS SELECT 1 AS x",
            "42501",
        );
        query_error(user, "CREATE VIEW sneaky_view AS SELECT 1 AS x", "42501");
        query_error(user, "DROP VIEW customer_metrics", "42501");
        query_error(
            user,
            "EXPLAIN ANALYZE CREATE TABLE sneaky AS SELECT 1",
            "42501",
        );
        let file = scratch_file(&format!("explain-{user}.csv"));
        query_error(
            user,
            &format!("EXPLAIN COPY (SELECT 1) TO '{}'", file.display()),
            "42501",
        );
        assert!(!file.exists());
        for sql in [
            "SET LOCAL datafusion.execution.batch_size = 3",
            "SET SESSION datafusion.execution.batch_size = 3",
            "SET datafusion.catalog.information_schema TO false",
            "RESET datafusion.execution.batch_size",
        ] {
            query_error(user, sql, "42501");
        }
        query_error(user, "SET \"datafusion.execution.batch_size\" = 3", "42704");
        // DataFusion's parser does not know STORED AS CSV: refused before the gate
        query_error(
            user,
            "CREATE EXTERNAL TABLE sneaky_csv (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
            "42601",
        );
    }
    // nothing was created, loaded or changed
    assert_eq!(
        query(
            "admin",
            "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'sneaky%'"
        ),
        "0"
    );
    assert_eq!(query("analyst", "SELECT count(*) FROM orders"), "4");
    assert_eq!(
        query(
            "analyst",
            "SELECT current_setting('datafusion.execution.batch_size')"
        ),
        "8192"
    );
    assert_eq!(
        query("analyst", "SELECT count(*) FROM customer_metrics"),
        "3"
    );
}

#[test]
fn server_files_cannot_be_read_through_table_functions() {
    for user in ["admin", "analyst", "viewer"] {
        for sql in [
            "SELECT * FROM read_parquet('/etc/passwd')",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM read_json('/etc/passwd')",
            "SELECT * FROM parquet_metadata('/etc/passwd')",
            "SELECT * FROM pg_read_file('/etc/passwd')",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_read_binary_file('/etc/passwd')",
            "SELECT pg_ls_dir('/')",
            "SELECT lo_import('/etc/passwd')",
        ] {
            let e = query_error(user, sql, "42883");
            assert!(!e.contains("root:"), "{e}");
        }
        // URL tables are off: a path is just an unknown table name
        for sql in [
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM \"/etc/passwd\"",
            "SELECT * FROM 'file:///etc/passwd'",
        ] {
            let e = query_error(user, sql, "42P01");
            assert!(!e.contains("root:"), "{e}");
        }
    }
    // the table functions that do exist generate values, they read nothing
    assert_eq!(
        query("viewer", "SELECT count(*) FROM generate_series(1, 3)"),
        "3"
    );
    let r = psql_at(
        fixture().addr,
        "viewer",
        PASSWORD,
        &["-c", "SELECT * FROM range(2)"],
    );
    assert!(
        r.ok && r.stdout.trim() == "0\n1",
        "{} {}",
        r.stdout,
        r.stderr
    );
}
