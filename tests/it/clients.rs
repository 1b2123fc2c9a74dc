//! Real drivers against `crmdb serve`: each runs a script from tests/clients/
//! against the shared test server of [`crate::server`], which asserts exact
//! rows and prints OK. The drivers are installed by .ci/install-clients.sh.

use std::process::Command;

use crate::server::{PASSWORD, fixture};

fn clients_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

fn run(program: &str, args: &[&str]) {
    let addr = fixture().addr;
    let port = addr.port().to_string();
    let host = addr.ip().to_string();
    let out = Command::new(program)
        .args(args)
        .arg(&host)
        .arg(&port)
        .arg(PASSWORD)
        .current_dir(clients_dir())
        .output()
        .unwrap_or_else(|e| panic!("{program} could not run ({e}); run .ci/install-clients.sh"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "{program} {args:?} failed:\n{stdout}\n{stderr}"
    );
}

#[test]
fn psycopg3() {
    run("python3", &["psycopg3_test.py"]);
}

#[test]
fn psycopg2() {
    run("python3", &["psycopg2_test.py"]);
}

#[test]
fn asyncpg() {
    run("python3", &["asyncpg_test.py"]);
}

#[test]
fn sqlalchemy_inspector() {
    run("python3", &["sqlalchemy_test.py"]);
}

#[test]
fn pgjdbc() {
    run(
        "java",
        &["-cp", "/usr/share/java/postgresql.jar", "JdbcTest.java"],
    );
}

#[test]
fn node_postgres() {
    run("node", &["node_pg_test.js"]);
}

#[test]
fn bi_tools_startup_queries() {
    run("python3", &["bi_replay.py"]);
}
