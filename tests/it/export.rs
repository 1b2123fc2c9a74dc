//! Export jobs: schedules under a test clock, atomic writes (failing query,
//! killed process), retention, masking and pseudonymisation, catch-up, the
//! `export_runs` table, the CLI, and COPY TO through the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use crmdb::config::Config;
use crmdb::engine::Engine;
use crmdb::export::{Clock, Exporter, ManualClock, RunStatus, Scheduler, Trigger, jobs};
use crmdb::ingest::{IngestOptions, ingest_files};
use crmdb::store::Store;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;

use crate::cli::{crmdb, run, sample};

/// A store with the sample customers loaded.
async fn customers_store(dir: &Path) -> Store {
    let store = Store::init(&dir.join("data")).await.unwrap();
    ingest_files(
        &store,
        "customers",
        &[sample("customers.csv")],
        &IngestOptions::default(),
        &indicatif::ProgressBar::hidden(),
    )
    .await
    .unwrap();
    store
}

fn config(text: &str) -> Arc<Config> {
    let config: Config = toml::from_str(text).unwrap();
    config.validate().unwrap();
    Arc::new(config)
}

fn utc(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 1, h, m, s).unwrap()
}

/// Non-hidden file names in a directory, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Hidden file names (temporary files) in a directory, sorted.
fn hidden(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// Rows of a CSV file (header first), parsed.
fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// The sample customers as (column → value) maps, read straight from the
/// CSV file (independently of crmdb).
fn sample_customers() -> Vec<BTreeMap<String, String>> {
    let mut rows = csv_rows(&sample("customers.csv"));
    let header = rows.remove(0);
    rows.into_iter()
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}

/// `[customer_id, city]` of the consenting customers, by id: what the
/// "consented" job must write.
fn consented_id_city() -> Vec<Vec<String>> {
    let mut rows: Vec<(i64, Vec<String>)> = sample_customers()
        .into_iter()
        .filter(|c| c["marketing_consent"] == "true")
        .map(|c| {
            (
                c["customer_id"].parse().unwrap(),
                vec![c["customer_id"].clone(), c["city"].clone()],
            )
        })
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    rows.into_iter().map(|(_, r)| r).collect()
}

async fn sql(engine: &Engine, query: &str) -> Vec<RecordBatch> {
    engine
        .session()
        .sql(query)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

fn i64_at(batches: &[RecordBatch], col: usize) -> i64 {
    batches[0].column(col).as_primitive::<Int64Type>().value(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_every_minute_job_under_a_test_clock_writes_each_file_with_exact_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let store = customers_store(tmp.path()).await;
    let engine = Engine::open(
        store.clone(),
        config(
            r#"
[[export]]
name = "consented"
query = "SELECT customer_id, city FROM customers WHERE marketing_consent ORDER BY customer_id"
path = "exports/{name}/{timestamp}.csv"
schedule = "* * * * *"
timezone = "Europe/Berlin"

[[export]]
name = "everyone"
query = "SELECT customer_id, name FROM customers"
path = "exports/{name}-{date}-{timestamp}.parquet"
schedule = "*/2 * * * *"
"#,
        ),
    )
    .await
    .unwrap();
    let clock = Arc::new(ManualClock::new(utc(10, 0, 30)));
    let scheduler = Scheduler::new(
        Exporter::new(engine.clone(), clock.clone()),
        jobs(engine.config()).unwrap(),
    );
    let records = scheduler.run_until(Some(utc(10, 5, 0))).await;

    let expected = consented_id_city();
    let n = expected.len() as u64;
    // every minute from 10:01 to 10:05 UTC, named in Berlin time (UTC+2)
    let dir = store.path().join("exports/consented");
    assert_eq!(
        files(&dir),
        [
            "20260701T120100.csv",
            "20260701T120200.csv",
            "20260701T120300.csv",
            "20260701T120400.csv",
            "20260701T120500.csv"
        ]
    );
    for f in files(&dir) {
        let rows = csv_rows(&dir.join(&f));
        assert_eq!(rows[0], ["customer_id", "city"], "{f}");
        assert_eq!(rows[1..], expected[..], "{f}");
    }
    // every two minutes (UTC), Parquet, all customers
    let everyone: Vec<String> = files(&store.path().join("exports"))
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect();
    assert_eq!(
        everyone,
        [
            "everyone-2026-07-01-20260701T100200.parquet",
            "everyone-2026-07-01-20260701T100400.parquet"
        ]
    );
    let ctx = datafusion::prelude::SessionContext::new();
    for f in &everyone {
        let path = store.path().join("exports").join(f);
        let df = ctx
            .read_parquet(path.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        assert_eq!(df.count().await.unwrap(), sample_customers().len(), "{f}");
    }

    let consented: Vec<_> = records.iter().filter(|r| r.job == "consented").collect();
    assert_eq!(consented.len(), 5);
    for (i, r) in consented.iter().enumerate() {
        assert_eq!(r.status, RunStatus::Ok);
        assert_eq!(r.trigger, Trigger::Schedule);
        assert_eq!(r.rows, Some(n));
        assert_eq!(r.attempts, 1);
        assert_eq!(r.scheduled_for, Some(utc(10, 1 + i as u32, 0)));
        let path = PathBuf::from(r.path.as_ref().unwrap());
        assert_eq!(
            r.bytes,
            Some(std::fs::metadata(&path).unwrap().len()),
            "{}",
            path.display()
        );
    }
    assert_eq!(records.len(), 7);

    // the run history is a table like any other
    let b = sql(
        &engine,
        "SELECT count(*) AS runs, sum(rows) AS rows FROM export_runs WHERE job = 'consented' AND status = 'ok'",
    )
    .await;
    assert_eq!((i64_at(&b, 0), i64_at(&b, 1)), (5, 5 * n as i64));
    let b = sql(
        &engine,
        "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'export_runs'",
    )
    .await;
    assert_eq!(i64_at(&b, 0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_query_leaves_the_previous_file_untouched_and_records_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = customers_store(tmp.path()).await;
    let good = r#"
[[export]]
name = "seg"
query = "SELECT customer_id, city FROM customers ORDER BY customer_id"
path = "exports/seg.csv"
"#;
    let engine = Engine::open(store.clone(), config(good)).await.unwrap();
    let clock = Arc::new(ManualClock::new(utc(9, 0, 0)));
    let exporter = Exporter::new(engine.clone(), clock.clone());
    let job = jobs(engine.config()).unwrap().remove(0);
    let ok = exporter.run(&job, Trigger::Manual, None).await.unwrap();
    assert_eq!(ok.status, RunStatus::Ok);
    let dest = store.path().join("exports/seg.csv");
    let before = std::fs::read(&dest).unwrap();
    assert_eq!(csv_rows(&dest).len(), sample_customers().len() + 1);

    // The same job with a query that fails while rows stream (small batches:
    // the first ones are already written when customer 1001 fails), retried
    // twice with a 1-minute backoff, and scheduled every minute.
    let bad = r#"
[engine]
batch_size = 100

[[export]]
name = "seg"
query = "SELECT customer_id, CAST(CASE WHEN customer_id > 1000 THEN 'x' || city ELSE '1' END AS INT) AS n FROM customers ORDER BY customer_id"
path = "exports/seg.csv"
schedule = "* * * * *"
retries = 2
retry_backoff = "1min"
"#;
    let engine = Engine::open(store.clone(), config(bad)).await.unwrap();
    let clock = Arc::new(ManualClock::new(utc(9, 0, 30)));
    let exporter = Exporter::new(engine.clone(), clock.clone());
    let job = jobs(engine.config()).unwrap().remove(0);
    let failed = exporter.run(&job, Trigger::Manual, None).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.attempts, 3);
    // backoff 1 min, then 2 min, on the test clock
    assert_eq!(
        failed.finished - failed.started,
        chrono::Duration::minutes(3)
    );
    let error = failed.error.clone().unwrap();
    assert!(error.contains("Cannot cast string 'x"), "{error}");
    assert_eq!(std::fs::read(&dest).unwrap(), before);
    assert_eq!(files(&store.path().join("exports")), ["seg.csv"]);
    assert!(hidden(&store.path().join("exports")).is_empty());

    // The schedule goes on after failures. Started at 09:03:30, after the
    // failed manual run of 09:00:30: 09:03 was missed (catch-up); each run
    // then takes 3 minutes of backoff, so the times in between run once.
    assert_eq!(clock.now(), utc(9, 3, 30));
    let scheduler = Scheduler::new(
        Exporter::new(engine.clone(), clock.clone()),
        jobs(engine.config()).unwrap(),
    );
    let records = scheduler.run_until(Some(utc(9, 13, 30))).await;
    let runs: Vec<(Trigger, Option<DateTime<Utc>>, RunStatus, u32)> = records
        .iter()
        .map(|r| (r.trigger, r.scheduled_for, r.status, r.attempts))
        .collect();
    assert_eq!(
        runs,
        [
            (Trigger::CatchUp, Some(utc(9, 3, 0)), RunStatus::Failed, 3),
            (Trigger::Schedule, Some(utc(9, 6, 0)), RunStatus::Failed, 3),
            (Trigger::Schedule, Some(utc(9, 9, 0)), RunStatus::Failed, 3),
            (Trigger::Schedule, Some(utc(9, 12, 0)), RunStatus::Failed, 3),
        ]
    );
    assert_eq!(std::fs::read(&dest).unwrap(), before);

    let b = sql(
        &engine,
        "SELECT count(*) AS n FROM export_runs WHERE job = 'seg' AND status = 'failed' AND error LIKE '%Cannot cast string%'",
    )
    .await;
    assert_eq!(i64_at(&b, 0), 1 + records.len() as i64);
    let b = sql(
        &engine,
        "SELECT count(*) AS n FROM export_runs WHERE job = 'seg' AND status = 'ok'",
    )
    .await;
    assert_eq!(i64_at(&b, 0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_the_jobs_own_old_files() {
    let tmp = tempfile::tempdir().unwrap();
    let store = customers_store(tmp.path()).await;
    let engine = Engine::open(
        store.clone(),
        config(
            r#"
[[export]]
name = "a"
query = "SELECT customer_id FROM customers WHERE customer_id <= 10"
path = "exports/{name}-{timestamp}.csv"
schedule = "* * * * *"
keep = 2

[[export]]
name = "b"
query = "SELECT customer_id FROM customers WHERE customer_id <= 5"
path = "exports/{name}-{timestamp}.csv"
schedule = "* * * * *"
"#,
        ),
    )
    .await
    .unwrap();
    let dir = store.path().join("exports");
    std::fs::create_dir_all(&dir).unwrap();
    // a file that looks like job a's but that a did not write, and another file
    std::fs::write(dir.join("a-20260701T095900.csv"), "customer_id\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "keep me").unwrap();
    let clock = Arc::new(ManualClock::new(utc(10, 0, 30)));
    let scheduler = Scheduler::new(
        Exporter::new(engine.clone(), clock.clone()),
        jobs(engine.config()).unwrap(),
    );
    let records = scheduler.run_until(Some(utc(10, 4, 0))).await;
    assert_eq!(records.len(), 8);
    assert_eq!(
        files(&dir),
        [
            "a-20260701T095900.csv",
            "a-20260701T100300.csv",
            "a-20260701T100400.csv",
            "b-20260701T100100.csv",
            "b-20260701T100200.csv",
            "b-20260701T100300.csv",
            "b-20260701T100400.csv",
            "notes.txt"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(csv_rows(&dir.join("a-20260701T100400.csv")).len(), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_run_is_caught_up_once_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let store = customers_store(tmp.path()).await;
    let jobs_toml = r#"
[[export]]
name = "hourly"
query = "SELECT count(*) AS n FROM customers"
path = "exports/{name}-{timestamp}.csv"
schedule = "0 * * * *"

[[export]]
name = "no_catch_up"
query = "SELECT count(*) AS n FROM customers"
path = "exports/{name}-{timestamp}.csv"
schedule = "0 * * * *"
catch_up = false
"#;
    let engine = Engine::open(store.clone(), config(jobs_toml))
        .await
        .unwrap();
    // first life: both jobs run at 10:00
    let clock = Arc::new(ManualClock::new(utc(9, 59, 30)));
    let first = Scheduler::new(
        Exporter::new(engine.clone(), clock.clone()),
        jobs(engine.config()).unwrap(),
    )
    .run_until(Some(utc(10, 0, 0)))
    .await;
    assert_eq!(first.len(), 2);
    // down from 10:00 to 12:30: 11:00 and 12:00 were missed
    let clock = Arc::new(ManualClock::new(utc(12, 30, 0)));
    let second = Scheduler::new(
        Exporter::new(engine.clone(), clock.clone()),
        jobs(engine.config()).unwrap(),
    )
    .run_until(Some(utc(12, 59, 0)))
    .await;
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].job, "hourly");
    assert_eq!(second[0].trigger, Trigger::CatchUp);
    assert_eq!(second[0].scheduled_for, Some(utc(12, 0, 0)));
    assert_eq!(
        files(&store.path().join("exports")),
        [
            "hourly-20260701T100000.csv",
            "hourly-20260701T120000.csv",
            "no_catch_up-20260701T100000.csv"
        ]
    );
    // a restart with nothing missed catches nothing up
    let clock = Arc::new(ManualClock::new(utc(12, 40, 0)));
    let third = Scheduler::new(
        Exporter::new(engine.clone(), clock.clone()),
        jobs(engine.config()).unwrap(),
    )
    .run_until(Some(utc(12, 59, 0)))
    .await;
    assert!(third.is_empty(), "{third:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_phone_numbers_use_mask_phone() {
    let tmp = tempfile::tempdir().unwrap();
    let store = customers_store(tmp.path()).await;
    let engine = Engine::open(
        store.clone(),
        config(
            r#"
[[export]]
name = "callable"
query = "SELECT customer_id, phone, city FROM customers WHERE marketing_consent ORDER BY customer_id"
path = "exports/callable.csv"
mask = "mask"
mask_columns = ["phone"]
"#,
        ),
    )
    .await
    .unwrap();
    let exporter = Exporter::new(engine.clone(), Arc::new(ManualClock::new(utc(8, 0, 0))));
    let job = jobs(engine.config()).unwrap().remove(0);
    let r = exporter.run(&job, Trigger::Manual, None).await.unwrap();
    assert_eq!(r.status, RunStatus::Ok, "{:?}", r.error);
    let written = csv_rows(&store.path().join("exports/callable.csv"));
    // the same rows through mask_phone in SQL
    let expected = sql(
        &engine,
        "SELECT CAST(customer_id AS VARCHAR) AS id, mask_phone(phone) AS phone, city FROM customers WHERE marketing_consent ORDER BY customer_id",
    )
    .await;
    let mut want = vec![vec![
        "customer_id".to_string(),
        "phone".to_string(),
        "city".to_string(),
    ]];
    for b in &expected {
        for i in 0..b.num_rows() {
            want.push(
                (0..3)
                    .map(|c| {
                        let a = b.column(c);
                        if a.is_null(i) {
                            String::new()
                        } else {
                            datafusion::arrow::util::display::array_value_to_string(a, i).unwrap()
                        }
                    })
                    .collect(),
            );
        }
    }
    assert_eq!(written, want);
    // no raw phone number of the sample reaches the file
    let text = std::fs::read_to_string(store.path().join("exports/callable.csv")).unwrap();
    let raw: Vec<String> = sample_customers()
        .into_iter()
        .map(|c| c["phone"].clone())
        .filter(|p| !p.is_empty())
        .collect();
    assert!(!raw.is_empty());
    assert!(raw.iter().all(|p| !text.contains(p.as_str())));
}

/// `crmdb init` + the sample customers, with `toml` as crmdb.toml.
fn cli_store(dir: &Path, toml: &str) -> PathBuf {
    let data = dir.join("data");
    assert!(run(&data, &["init"]).status.success());
    let out = run(
        &data,
        &[
            "ingest",
            "customers",
            sample("customers.csv").to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(data.join("crmdb.toml"), toml).unwrap();
    data
}

#[test]
fn pseudonymize_takes_its_key_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let job = r#"
[[export]]
name = "pseudo"
query = "SELECT customer_id, name, email, city FROM customers ORDER BY customer_id"
path = "exports/pseudo.csv"
mask = "pseudonymize"
"#;
    let data = cli_store(tmp.path(), job);
    let dest = data.join("exports/pseudo.csv");

    // without the key: fails at once (no retries), writes nothing
    let out = crmdb()
        .arg("--data")
        .arg(&data)
        .args(["export", "run", "pseudo"])
        .env_remove("CRMDB_EXPORT_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("export pseudo failed after 1 attempt(s)")
            && err.contains("CRMDB_EXPORT_KEY (the pseudonymisation key) is not set"),
        "{err}"
    );
    assert!(!dest.exists());

    let out = crmdb()
        .arg("--data")
        .arg(&data)
        .args(["export", "run", "pseudo"])
        .env("CRMDB_EXPORT_KEY", "test-key-1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = csv_rows(&dest);
    assert_eq!(written[0], ["customer_id", "name", "email", "city"]);
    assert_eq!(written.len(), sample_customers().len() + 1);
    // the same values as pseudonymize(…, key) in SQL; ids and cities as stored
    let out = run(
        &data,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT customer_id, pseudonymize(name, 'test-key-1') AS name, pseudonymize(email, 'test-key-1') AS email, city FROM customers ORDER BY customer_id",
        ],
    );
    assert!(out.status.success());
    let via_sql: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(out.stdout.as_slice())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    assert_eq!(written, via_sql);
    let sample = sample_customers();
    for (row, c) in written[1..].iter().zip(&sample) {
        assert_eq!(row[0], c["customer_id"]);
        assert_eq!(row[3], c["city"]);
        // 64 hex digits for a value, empty (NULL) for none
        for (i, column) in [(1, "name"), (2, "email")] {
            let expected_len = if c[column].is_empty() { 0 } else { 64 };
            assert_eq!(
                row[i].len(),
                expected_len,
                "{column} of {}",
                c["customer_id"]
            );
            assert!(row[i].bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    // history over the CLI: newest first
    let out = run(&data, &["export", "history", "pseudo", "--format", "csv"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "job,started,finished,status,rows,bytes,attempts,trigger,path,error"
    );
    assert_eq!(lines.len(), 3, "{text}");
    let ok = format!(",ok,{},", sample.len());
    assert!(
        lines[1].starts_with("pseudo,") && lines[1].contains(&ok),
        "{text}"
    );
    assert!(lines[2].contains(",failed,,,1,manual,"), "{text}");

    // list: one job, no schedule, last status ok
    let out = run(&data, &["export", "list", "--format", "csv"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "name,schedule,timezone,next_run,last_run,last_status,path"
    );
    assert_eq!(lines.len(), 2);
    assert!(lines[1].starts_with("pseudo,,UTC,,"), "{text}");
    assert!(lines[1].ends_with(",ok,exports/pseudo.csv"), "{text}");

    // a key in the config file is refused, naming the job and the key
    std::fs::write(
        data.join("crmdb.toml"),
        format!("{job}pseudonymize_key = \"test-key-1\"\n"),
    )
    .unwrap();
    let out = run(&data, &["export", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("export 'pseudo': pseudonymize_key: keys never go in the config file"),
        "{err}"
    );
}

#[test]
fn a_killed_export_leaves_no_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let small = r#"
[[export]]
name = "big"
query = "SELECT 1 AS value"
path = "exports/big.csv"
"#;
    let data = cli_store(tmp.path(), small);
    let out = run(&data, &["export", "run", "big"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = data.join("exports");
    let dest = dir.join("big.csv");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "value\n1\n");

    let big = small.replace(
        "SELECT 1 AS value",
        "SELECT value, value * 7 AS seven, 'a line long enough to fill the disk quickly' AS pad FROM generate_series(1, 2000000000)",
    );
    std::fs::write(data.join("crmdb.toml"), big).unwrap();
    let mut child = crmdb()
        .arg("--data")
        .arg(&data)
        .args(["export", "run", "big"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until the export is writing its temporary file, then kill -9
    let deadline = Instant::now() + Duration::from_secs(120);
    let tmp_file = loop {
        let found = hidden(&dir)
            .into_iter()
            .find(|n| std::fs::metadata(dir.join(n)).is_ok_and(|m| m.len() > 1_000_000));
        if let Some(f) = found {
            break f;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "the export never started writing"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(tmp_file, format!(".big.csv.tmp-{}-0", child.id()));
    // the destination is the last good file; nothing else is visible
    assert_eq!(files(&dir), ["big.csv"]);
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "value\n1\n");

    // the next run into the directory removes the dead process's temporary file
    std::fs::write(
        data.join("crmdb.toml"),
        small.replace("SELECT 1", "SELECT 2"),
    )
    .unwrap();
    let out = run(&data, &["export", "run", "big"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "value\n2\n");
    assert!(hidden(&dir).is_empty(), "{:?}", hidden(&dir));
}

#[test]
fn copy_to_a_file_is_atomic_and_for_admins() {
    use crate::server::{psql, query_error};
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out/customers.csv");
    let copy = format!(
        "COPY (SELECT customer_id, city FROM customers ORDER BY customer_id) TO '{}'",
        dest.display()
    );
    let r = psql("admin", &copy);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "customer_id,city\n1,Berlin\n2,Paris\n3,Rome\n"
    );
    // a failing COPY leaves the file as it was
    let bad = format!(
        "COPY (SELECT customer_id, CAST(city AS INT) AS n FROM customers) TO '{}'",
        dest.display()
    );
    let r = psql("admin", &bad);
    assert!(!r.ok);
    assert!(r.stderr.contains("Cannot cast string"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&dest).unwrap(),
        "customer_id,city\n1,Berlin\n2,Paris\n3,Rome\n"
    );
    assert_eq!(files(&tmp.path().join("out")), ["customers.csv"]);
    assert!(hidden(&tmp.path().join("out")).is_empty());
    // PostgreSQL options and Parquet
    let semi = tmp.path().join("out/semi.txt");
    let r = psql(
        "admin",
        &format!(
            "COPY customers (customer_id, city) TO '{}' WITH (FORMAT csv, HEADER false, DELIMITER ';')",
            semi.display()
        ),
    );
    assert!(r.ok, "{}", r.stderr);
    let mut lines: Vec<String> = std::fs::read_to_string(&semi)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    assert_eq!(lines, ["1;Berlin", "2;Paris", "3;Rome"]);
    // not for other roles
    let other = tmp.path().join("out/analyst.csv");
    query_error(
        "analyst",
        &format!("COPY (SELECT 1) TO '{}'", other.display()),
        "42501",
    );
    assert!(!other.exists());
}

#[test]
fn serve_runs_due_jobs_in_the_background() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let data = cli_store(
        tmp.path(),
        r#"
[server]
listen = "127.0.0.1:0"
auth = "trust"

[[export]]
name = "tick"
query = "SELECT count(*) AS n FROM customers"
path = "exports/{name}-{timestamp}.csv"
schedule = "* * * * * *"   # every second
"#,
    );
    let mut child = crmdb()
        .arg("--data")
        .arg(&data)
        .arg("serve")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // wait for two scheduled files (a generous deadline, not a timing claim)
    let dir = data.join("exports");
    let deadline = Instant::now() + Duration::from_secs(120);
    let written = loop {
        let f = if dir.is_dir() { files(&dir) } else { vec![] };
        if f.len() >= 2 {
            break f;
        }
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        assert!(Instant::now() < deadline, "no scheduled export appeared");
        std::thread::sleep(Duration::from_millis(50));
    };
    let n = sample_customers().len();
    for f in &written {
        assert!(f.starts_with("tick-") && f.ends_with(".csv"), "{f}");
        assert_eq!(
            std::fs::read_to_string(dir.join(f)).unwrap(),
            format!("n\n{n}\n")
        );
    }
    // queries are answered while the scheduler runs, export_runs included
    let r = crate::server::psql_at(
        addr,
        "analyst",
        "",
        &[
            "-c",
            "SELECT DISTINCT job, status, rows, trigger FROM export_runs",
        ],
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "tick|ok|1|schedule");
}
