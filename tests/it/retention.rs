//! Data retention: `crmdb compact`, `crmdb vacuum`, `crmdb backup` and
//! `crmdb restore`, run as a user runs them, also while clients query
//! through a real server and while a load runs. Every test has its own
//! store in its own temporary directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use crmdb::config::Config;
use crmdb::engine::Engine;
use crmdb::server::Server;
use crmdb::store::Store;
use crmdb::store::maintenance::{self, VacuumOptions};

use crate::cli::{run, sample};
use crate::server::{PASSWORD, config, psql_at};

/// Rows of the sample data (`sample_data/*.csv`), table by table.
const SAMPLE_ROWS: [(&str, u64); 6] = [
    ("customers", 2000),
    ("orders", 20048),
    ("order_items", 39740),
    ("interactions", 10202),
    ("promotions", 50),
    ("promotion_exposures", 5185),
];

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run crmdb, expect success, return its standard output.
fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "crmdb {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// Run crmdb, expect failure, return its standard error.
fn fails(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        !out.status.success(),
        "crmdb {args:?} should have failed; printed {}",
        stdout(&out)
    );
    stderr(&out)
}

fn sql_csv(data: &Path, sql: &str) -> String {
    ok(data, &["sql", "--format", "csv", sql])
}

/// (rows, checksum) of a table: the MD5 of every row, all columns as text
/// (NULL spelled `<null>`), rows sorted.
fn checksum(data: &Path, table: &str) -> (u64, String) {
    let columns = sql_csv(
        data,
        &format!(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
        ),
    );
    let columns: Vec<&str> = columns.lines().skip(1).collect();
    assert!(!columns.is_empty(), "no columns for {table}");
    let row = columns
        .iter()
        .map(|c| format!("coalesce(CAST(\"{c}\" AS VARCHAR), '<null>')"))
        .collect::<Vec<_>>()
        .join(", ");
    let out = sql_csv(
        data,
        &format!(
            "SELECT count(*) AS n, coalesce(md5(string_agg(r, chr(10) ORDER BY r)), '-') AS sum \
             FROM (SELECT concat_ws('|', {row}) AS r FROM \"{table}\") AS t"
        ),
    );
    let line = out.lines().nth(1).unwrap_or_default().to_string();
    let (n, sum) = line.split_once(',').unwrap();
    (n.parse().unwrap(), sum.to_string())
}

/// Checksums of every table listed.
fn checksums(data: &Path, tables: &[&str]) -> BTreeMap<String, (u64, String)> {
    tables
        .iter()
        .map(|t| (t.to_string(), checksum(data, t)))
        .collect()
}

fn new_store(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    ok(&data, &["init"]);
    data
}

/// Load the sample orders in `parts` loads (each a file of consecutive rows).
fn load_orders_in_parts(dir: &Path, data: &Path, parts: usize) {
    let text = std::fs::read_to_string(sample("orders.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let per = rows.len().div_ceil(parts);
    for (i, chunk) in rows.chunks(per).enumerate() {
        let path = dir.join(format!("orders-{i}.csv"));
        std::fs::write(&path, format!("{header}\n{}\n", chunk.join("\n"))).unwrap();
        ok(data, &["ingest", "orders", path.to_str().unwrap()]);
    }
}

fn load_sample(data: &Path) {
    for (table, _) in SAMPLE_ROWS {
        let file = sample(&format!("{table}.csv"));
        ok(data, &["ingest", table, file.to_str().unwrap()]);
    }
}

/// The Parquet files in a table's directory, by name.
fn parquet_files(data: &Path, table: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(data.join(table))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    names.sort();
    names
}

/// The files of the latest version of a table, by name.
fn active_files(data: &Path, table: &str) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(data).await.unwrap();
        let t = store.table(table).await.unwrap();
        let mut names: Vec<String> = t
            .snapshot()
            .unwrap()
            .log_data()
            .iter()
            .map(|f| f.path().into_owned())
            .collect();
        names.sort();
        names
    })
}

#[test]
fn compact_merges_small_loads_into_one_file_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = new_store(dir.path());
    load_orders_in_parts(dir.path(), &data, 4);
    let before = checksum(&data, "orders");
    assert_eq!(before.0, 20048);
    assert_eq!(active_files(&data, "orders").len(), 4);

    assert_eq!(
        ok(&data, &["compact", "orders"]),
        "orders: 4 files removed, 1 added (table version 5)\n"
    );
    assert_eq!(active_files(&data, "orders").len(), 1);
    assert_eq!(checksum(&data, "orders"), before);
    // the replaced files stay on disk for readers of version 4 until vacuum
    assert_eq!(parquet_files(&data, "orders").len(), 5);

    // again: nothing left to do, for this table and for all of them
    assert_eq!(
        ok(&data, &["compact", "orders"]),
        "orders: nothing to compact (table version 5)\n"
    );
    let all = ok(&data, &["compact"]);
    assert_eq!(
        all,
        "customers: nothing to compact (table version 0)\n\
         orders: nothing to compact (table version 5)\n\
         order_items: nothing to compact (table version 0)\n\
         interactions: nothing to compact (table version 0)\n\
         promotions: nothing to compact (table version 0)\n\
         promotion_exposures: nothing to compact (table version 0)\n\
         customer_snapshots: nothing to compact (table version 0)\n\
         export_runs: nothing to compact (table version 0)\n"
    );
    assert_eq!(checksum(&data, "orders"), before);
}

#[test]
fn vacuum_keeps_recently_replaced_files_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let data = new_store(dir.path());
    load_orders_in_parts(dir.path(), &data, 4);
    let before = checksum(&data, "orders");
    let small = active_files(&data, "orders");
    ok(&data, &["compact", "orders"]);
    let compacted = active_files(&data, "orders");

    // default retention (168 h): the files replaced a moment ago stay
    assert_eq!(
        ok(&data, &["vacuum", "--dry-run", "orders"]),
        "orders: 0 files would be deleted (retention 168 h)\n"
    );
    let out = run(&data, &["vacuum", "orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "orders: 0 files deleted (retention 168 h)\n");
    assert_eq!(stderr(&out), "", "no warning at the default retention");
    assert_eq!(parquet_files(&data, "orders").len(), 5);

    // --retain-hours 0 --dry-run lists exactly the four replaced files
    let listed = ok(
        &data,
        &["vacuum", "--retain-hours", "0", "--dry-run", "orders"],
    );
    let mut expected = "orders: 4 files would be deleted (retention 0 h)\n".to_string();
    for f in &small {
        expected.push_str(&format!("  orders/{f}\n"));
    }
    assert_eq!(listed, expected);
    assert_eq!(
        parquet_files(&data, "orders").len(),
        5,
        "dry run deletes nothing"
    );

    let out = run(&data, &["vacuum", "--retain-hours", "0", "orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "orders: 4 files deleted (retention 0 h)\n");
    assert!(
        stderr(&out).contains("warning: --retain-hours 0 is below the default 168 h"),
        "{}",
        stderr(&out)
    );
    assert_eq!(parquet_files(&data, "orders"), compacted);
    assert_eq!(checksum(&data, "orders"), before);

    // --full: a file no version refers to goes once it is older than the
    // retention; a fresh one (say, of a load being written) stays
    let old = data.join("orders/part-orphan-old.parquet");
    let fresh = data.join("orders/part-orphan-fresh.parquet");
    std::fs::write(&old, b"left by a killed load").unwrap();
    std::fs::write(&fresh, b"being written").unwrap();
    let long_ago = SystemTime::now() - Duration::from_secs(200 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    assert_eq!(
        ok(&data, &["vacuum", "--dry-run", "orders"]),
        "orders: 0 files would be deleted (retention 168 h)\n",
        "lite mode only deletes files the log removed"
    );
    assert_eq!(
        ok(&data, &["vacuum", "--full", "--dry-run", "orders"]),
        "orders: 1 files would be deleted (retention 168 h)\n  orders/part-orphan-old.parquet\n"
    );
    assert_eq!(
        ok(&data, &["vacuum", "--full", "orders"]),
        "orders: 1 files deleted (retention 168 h)\n"
    );
    assert!(!old.exists());
    assert!(fresh.exists());
    assert_eq!(checksum(&data, "orders"), before);
}

/// A query planned on a version keeps reading that version's files: compact
/// and a default vacuum between planning and execution change nothing for
/// it. With `--retain-hours 0` the same interleaving fails — the documented
/// danger of a zero retention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_planned_before_compact_and_vacuum_reads_its_version() {
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::physical_plan::collect;

    let dir = tempfile::tempdir().unwrap();
    let data = new_store(dir.path());
    load_orders_in_parts(dir.path(), &data, 4);
    let store = Store::open(&data).await.unwrap();
    let engine = Engine::open(store.clone(), Arc::new(Config::default()))
        .await
        .unwrap();
    let ctx = engine.session();
    let sql = "SELECT count(*) AS n, sum(amount) AS revenue, max(order_ts) AS last FROM orders";
    let expected = pretty_format_batches(&ctx.sql(sql).await.unwrap().collect().await.unwrap())
        .unwrap()
        .to_string();
    assert!(expected.contains("| 20048 |"), "{expected}");

    let planned = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let report = maintenance::compact(&store, "orders").await.unwrap();
    assert_eq!((report.files_removed, report.files_added), (4, 1));
    let report = maintenance::vacuum(&store, "orders", &VacuumOptions::default())
        .await
        .unwrap();
    assert!(report.files.is_empty(), "{report}");
    let got = collect(planned, ctx.task_ctx()).await.unwrap();
    assert_eq!(pretty_format_batches(&got).unwrap().to_string(), expected);

    // the caveat: one more small load, a plan on it, compact, vacuum 0
    let extra = dir.path().join("extra.csv");
    std::fs::write(
        &extra,
        "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status\n\
         99000001,1,2026-01-01T00:00:00Z,web,s1,1.00,,,completed\n",
    )
    .unwrap();
    ok(&data, &["ingest", "orders", extra.to_str().unwrap()]);
    let planned = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    maintenance::compact(&store, "orders").await.unwrap();
    let zero = VacuumOptions {
        retain_hours: 0,
        ..VacuumOptions::default()
    };
    let report = maintenance::vacuum(&store, "orders", &zero).await.unwrap();
    assert_eq!(report.files.len(), 6, "{report}");
    let err = collect(planned, ctx.task_ctx()).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("not found")
            || err.to_string().to_lowercase().contains("no such file"),
        "{err}"
    );
    // a query planned now reads the new version
    let now = pretty_format_batches(&ctx.sql(sql).await.unwrap().collect().await.unwrap())
        .unwrap()
        .to_string();
    assert!(now.contains("| 20049 |"), "{now}");
}

#[test]
fn compact_and_vacuum_while_clients_query_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = new_store(dir.path());
    load_orders_in_parts(dir.path(), &data, 6);
    let items = sample("order_items.csv");
    ok(&data, &["ingest", "order_items", items.to_str().unwrap()]);
    let before = checksums(&data, &["orders", "order_items"]);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(crmdb::server::rewrite::PLANNER_STACK_BYTES)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(async {
        let store = Store::open(&data).await.unwrap();
        let engine = Engine::open(store, Arc::new(Config::default()))
            .await
            .unwrap();
        Server::start(engine, config()).await.unwrap()
    });
    let addr = server.local_addr();
    let queries = [
        "SELECT count(*), sum(amount), min(order_id), max(order_id) FROM orders",
        "SELECT count(*), sum(i.quantity) FROM orders o JOIN order_items i ON o.order_id = i.order_id",
        "SELECT status, count(*) FROM orders GROUP BY status ORDER BY status",
    ];
    let ask = move || {
        let mut args = Vec::new();
        for q in queries {
            args.push("-c");
            args.push(q);
        }
        psql_at(addr, "analyst", PASSWORD, &args)
    };
    let first = ask();
    assert!(first.ok, "{}", first.stderr);
    let expected = first.stdout;
    assert!(expected.starts_with("20048|"), "{expected}");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            let expected = expected.clone();
            std::thread::spawn(move || {
                let (mut runs, mut problems) = (0u32, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let r = ask();
                    runs += 1;
                    if !r.ok {
                        problems.push(format!("error: {}", r.stderr));
                    } else if r.stdout != expected {
                        problems.push(format!("wrong rows: {}", r.stdout));
                    }
                }
                (runs, problems)
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    let compacted = ok(&data, &["compact"]);
    assert!(
        compacted.contains("orders: 6 files removed, 1 added (table version 7)\n"),
        "{compacted}"
    );
    let vacuumed = ok(&data, &["vacuum"]);
    assert!(
        vacuumed.contains("orders: 0 files deleted (retention 168 h)\n"),
        "{vacuumed}"
    );
    ok(&data, &["compact", "orders", "order_items"]);
    ok(&data, &["vacuum", "orders", "order_items"]);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    for c in clients {
        let (runs, problems) = c.join().unwrap();
        assert!(
            problems.is_empty(),
            "{} failed: {problems:#?}",
            problems.len()
        );
        assert!(runs >= 2, "a client ran only {runs} rounds");
        total += runs;
    }
    assert!(total >= 6, "{total}");
    assert_eq!(active_files(&data, "orders").len(), 1);
    let after = ask();
    assert!(after.ok, "{}", after.stderr);
    assert_eq!(after.stdout, expected);
    assert_eq!(checksums(&data, &["orders", "order_items"]), before);
    drop(server);
    runtime.shutdown_background();
}

#[test]
fn backup_and_restore_give_an_identical_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = new_store(dir.path());
    load_sample(&data);
    // some history: a second load, a compaction and a system table
    let extra = dir.path().join("extra.csv");
    std::fs::write(
        &extra,
        "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status\n\
         99000001,1,2026-01-01T00:00:00Z,web,s1,1.00,,,completed\n",
    )
    .unwrap();
    ok(&data, &["ingest", "orders", extra.to_str().unwrap()]);
    ok(&data, &["compact", "orders"]);
    ok(&data, &["refresh", "--as-of", "2026-06-30"]);
    let mut tables: Vec<&str> = SAMPLE_ROWS.iter().map(|(t, _)| *t).collect();
    tables.push("customer_snapshots");
    let original = checksums(&data, &tables);
    let mut counts: BTreeMap<String, u64> = SAMPLE_ROWS
        .iter()
        .map(|(t, n)| (t.to_string(), *n))
        .collect();
    counts.insert("orders".into(), 20049);
    counts.insert("customer_snapshots".into(), 2000);
    for (t, (n, sum)) in &original {
        assert_eq!(*n, counts[t], "{t}");
        assert_eq!(sum.len(), 32, "{t}: {sum}");
    }
    let listing = ok(&data, &["tables"]);

    let backup = dir.path().join("backups/monday");
    let out = run(&data, &["backup", backup.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: Vec<(String, String)> = stdout(&out)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect();
    assert_eq!(
        printed,
        [
            ("customers", "2000"),
            ("orders", "20049"),
            ("order_items", "39740"),
            ("interactions", "10202"),
            ("promotions", "50"),
            ("promotion_exposures", "5185"),
            ("customer_snapshots", "2000"),
            ("export_runs", "0"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(backup.join(maintenance::BACKUP_MANIFEST).is_file());
    // nothing but the backup in its parent: the temporary directory was renamed
    let siblings: Vec<_> = std::fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, ["monday"]);
    // a backup is itself a store that can be queried
    assert_eq!(checksums(&backup, &tables), original);

    // restore into a new directory
    let restored = dir.path().join("restored");
    ok(&restored, &["restore", backup.to_str().unwrap()]);
    assert_eq!(ok(&restored, &["tables"]), listing);
    assert_eq!(checksums(&restored, &tables), original);
    assert!(!restored.join(maintenance::BACKUP_MANIFEST).exists());
    assert_eq!(
        std::fs::read_to_string(restored.join("crmdb.toml")).unwrap(),
        std::fs::read_to_string(data.join("crmdb.toml")).unwrap()
    );

    // the original changes; restore --force brings it back to the backup
    let more = dir.path().join("more.csv");
    std::fs::write(
        &more,
        "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status\n\
         99000002,1,2026-01-02T00:00:00Z,web,s1,2.00,,,completed\n",
    )
    .unwrap();
    ok(&data, &["ingest", "orders", more.to_str().unwrap()]);
    assert_eq!(checksum(&data, "orders").0, 20050);
    ok(&data, &["restore", "--force", backup.to_str().unwrap()]);
    assert_eq!(ok(&data, &["tables"]), listing);
    assert_eq!(checksums(&data, &tables), original);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".crmdb-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // and the restored store takes loads again
    ok(&data, &["ingest", "orders", more.to_str().unwrap()]);
    assert_eq!(checksum(&data, "orders").0, 20050);
}

#[test]
fn a_backup_taken_during_a_load_has_the_table_before_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = new_store(dir.path());
    let generated = dir.path().join("gen");
    let out = crate::cli::crmdb()
        .args(["generate", "--customers", "8000", "--seed", "3", "--out"])
        .arg(&generated)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let items = generated.join("order_items.csv");
    let expected_rows = std::fs::read_to_string(&items).unwrap().lines().count() as u64 - 1;

    let mut load = crate::cli::crmdb()
        .arg("--data")
        .arg(&data)
        .args(["ingest", "order_items"])
        .arg(&items)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut during = 0;
    for i in 0.. {
        let running = load.try_wait().unwrap().is_none();
        let backup = dir.path().join(format!("backup-{i}"));
        ok(&data, &["backup", backup.to_str().unwrap()]);
        seen.push(checksum(&backup, "order_items").0);
        if running {
            during += 1;
        } else {
            break;
        }
    }
    assert!(load.wait().unwrap().success());
    assert!(during >= 1, "no backup ran during the load");
    assert_eq!(checksum(&data, "order_items").0, expected_rows);
    assert!(
        seen.iter().all(|&n| n == 0 || n == expected_rows),
        "a backup saw part of a load: {seen:?} (load: {expected_rows} rows)"
    );
    assert_eq!(seen.last(), Some(&expected_rows));
}

#[test]
fn refusals_name_the_path_or_table_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = new_store(dir.path());
    load_orders_in_parts(dir.path(), &data, 2);
    let listing = ok(&data, &["tables"]);
    let sums = checksums(&data, &["orders"]);
    let unchanged = |what: &str| {
        assert_eq!(ok(&data, &["tables"]), listing, "after {what}");
        assert_eq!(checksums(&data, &["orders"]), sums, "after {what}");
    };
    let no_temp_dirs = |parent: &Path| {
        let left: Vec<_> = std::fs::read_dir(parent)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".crmdb-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    };

    // unknown tables: nothing is compacted or vacuumed, not even the known one
    let data_text = data.canonicalize().unwrap().display().to_string();
    for cmd in ["compact", "vacuum"] {
        let err = fails(&data, &[cmd, "orders", "nosuch"]);
        assert!(
            err.contains(&format!("{data_text}: no table 'nosuch' in this store")),
            "{err}"
        );
        unchanged(cmd);
    }

    // backup into a non-empty directory
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("notes.txt"), "keep me").unwrap();
    let err = fails(&data, &["backup", busy.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "{}: backup directory exists and is not empty",
            busy.display()
        )),
        "{err}"
    );
    let names: Vec<_> = std::fs::read_dir(&busy)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
    assert_eq!(
        std::fs::read_to_string(busy.join("notes.txt")).unwrap(),
        "keep me"
    );
    // ... or inside the data directory
    let inside = data.join("backup");
    let err = fails(&data, &["backup", inside.to_str().unwrap()]);
    assert!(err.contains("inside the data directory"), "{err}");
    assert!(!inside.exists());
    no_temp_dirs(dir.path());
    no_temp_dirs(&data);
    unchanged("backup");

    // restore from something that is not a backup: a plain directory, a
    // live store (no manifest), a backup missing a data file
    let err = fails(&data, &["restore", "--force", busy.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}: not a crmdb backup", busy.display())),
        "{err}"
    );
    let other = new_store(&dir.path().join("other"));
    let err = fails(&data, &["restore", "--force", other.to_str().unwrap()]);
    assert!(
        err.contains(&format!("{}: not a crmdb backup", other.display())),
        "{err}"
    );
    let good = dir.path().join("good");
    ok(&data, &["backup", good.to_str().unwrap()]);
    let damaged = dir.path().join("damaged");
    ok(&data, &["backup", damaged.to_str().unwrap()]);
    let victim = parquet_files(&damaged, "orders").remove(0);
    std::fs::remove_file(damaged.join("orders").join(&victim)).unwrap();
    let err = fails(&data, &["restore", "--force", damaged.to_str().unwrap()]);
    assert!(err.contains(&victim), "{err}");
    assert!(err.contains("is missing"), "{err}");
    unchanged("restore from non-backups");

    // restore over a non-empty store without --force; over a directory
    // that is not a store even with it
    let err = fails(&data, &["restore", good.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "{data_text}: data directory is not empty; pass --force"
        )),
        "{err}"
    );
    unchanged("restore without --force");
    let err = fails(&busy, &["restore", "--force", good.to_str().unwrap()]);
    assert!(
        err.contains("not a crmdb data directory") && err.contains("refusing to replace it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(busy.join("notes.txt")).unwrap(),
        "keep me"
    );
    no_temp_dirs(dir.path());
    unchanged("every refusal");
}
