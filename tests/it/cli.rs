//! The `crmdb` binary as a user runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn crmdb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crmdb"))
}

pub fn run(data: &Path, args: &[&str]) -> Output {
    crmdb().arg("--data").arg(data).args(args).output().unwrap()
}

/// A fresh store in `dir` (`crmdb init`), its path.
pub fn init(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    let out = run(&data, &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    data
}

pub fn sample(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/sample_data")).join(name)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn demo_counts_the_sample_orders() {
    let out = crmdb()
        .args([
            "sql",
            "--demo",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM orders",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read_to_string(sample("orders.csv"))
        .unwrap()
        .lines()
        .count()
        - 1;
    assert_eq!(stdout(&out), format!("n\n{expected}\n"));
}

#[test]
fn a_bad_query_fails_with_the_engine_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let out = run(&data, &["sql", "SELECT no_such_column FROM orders"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no_such_column"), "{err}");
    // a 20,000-term chain is refused with a message, not a stack overflow
    let chain = vec!["1"; 20_000].join("+");
    let out = run(&data, &["sql", &format!("SELECT {chain}")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("statement too complex: 19999 operators"),
        "{err}"
    );
    // a syntax error reads as the parser wrote it, once
    let out = run(&data, &["sql", "SELEC 1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: sql parser error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1\n"
    );
}

/// `crmdb sql … | head -1`: when the reader goes away the command stops
/// with status 141 (as if killed by SIGPIPE) and says nothing, in every
/// output format, instead of panicking or printing an I/O error.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    for format in ["table", "csv", "json"] {
        let mut child = crmdb()
            .arg("--data")
            .arg(&data)
            .args(["sql", "--format", format])
            .arg("SELECT * FROM generate_series(1, 2000000)")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // read the first bytes only (JSON is one line of about 30 MB)
        let mut first = [0u8; 64];
        let n = child.stdout.take().unwrap().read(&mut first).unwrap();
        assert!(n > 0, "{format}: no output");
        // the reader is dropped here: stdout is closed
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(141), "{format}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
}

#[test]
fn sql_output_formats() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let q = "SELECT 1 AS a, 'x' AS b";
    assert_eq!(
        stdout(&run(&data, &["sql", "--format", "csv", q])),
        "a,b\n1,x\n"
    );
    assert_eq!(
        stdout(&run(&data, &["sql", "--format", "json", q])),
        "[{\"a\":1,\"b\":\"x\"}]\n"
    );
    assert_eq!(
        stdout(&run(&data, &["sql", q])),
        "+---+---+\n| a | b |\n+---+---+\n| 1 | x |\n+---+---+\n"
    );
}

#[test]
fn opening_a_missing_store_says_how_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&dir.path().join("nope"), &["sql", "SELECT 1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("crmdb init"));
}

#[test]
fn sql_timing_reports_each_statement_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let out = run(
        &data,
        &[
            "sql",
            "--timing",
            "--format",
            "csv",
            "SELECT 1 AS a; SELECT b FROM (VALUES (2), (3)) AS t(b) ORDER BY b",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout(&out), "a\n1\nb\n2\n3\n");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    for (line, prefix) in lines
        .iter()
        .zip(["-- statement 1: 1 rows in ", "-- statement 2: 2 rows in "])
    {
        let secs = line
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(" s"))
            .unwrap_or_else(|| panic!("unexpected timing line {line:?}"));
        assert!(secs.parse::<f64>().unwrap() >= 0.0, "{line}");
    }
}

/// The files in `dir` whose extension is `ext`, sorted by path.
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}
