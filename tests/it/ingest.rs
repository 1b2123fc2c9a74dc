//! Loading data: validation with exact places, atomicity, keys, formats.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::cli::{init, run};

const ORDERS_HEADER: &str =
    "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status\n";

fn orders_csv(ids: std::ops::Range<i64>) -> String {
    let mut s = String::from(ORDERS_HEADER);
    for i in ids {
        writeln!(
            s,
            "{i},{},2025-01-{:02}T10:00:00Z,web,,{}.50,0.00,,completed",
            i % 100,
            i % 28 + 1,
            i % 90 + 10
        )
        .unwrap();
    }
    s
}

fn count(data: &Path, table: &str) -> String {
    let out = run(
        data,
        &[
            "sql",
            "--format",
            "csv",
            &format!("SELECT count(*) AS n FROM {table}"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("n\n")
        .to_string()
}

#[test]
fn a_malformed_amount_names_line_column_and_value_and_loads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let good = dir.path().join("good.csv");
    std::fs::write(&good, orders_csv(1..4)).unwrap();
    assert!(
        run(&data, &["ingest", "orders", good.to_str().unwrap()])
            .status
            .success()
    );

    let mut text = orders_csv(10..20);
    text = text.replacen(
        "16,16,2025-01-17T10:00:00Z,web,,26.50",
        "16,16,2025-01-17T10:00:00Z,web,,26.x5",
        1,
    );
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, &text).unwrap();
    let out = run(&data, &["ingest", "orders", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{} line 8, column amount, value \"26.x5\": expected a number with at most 2 decimals (numeric(18,2))", bad.display())),
        "{err}"
    );
    assert_eq!(count(&data, "orders"), "3");
}

#[test]
fn malformed_amount_on_line_7() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let mut text = String::from(ORDERS_HEADER);
    for i in 1..=8 {
        let amount = if i == 6 { "12.3.4" } else { "10.00" };
        writeln!(text, "{i},1,2025-02-01T00:00:00Z,app,,{amount},,,completed").unwrap();
    }
    let f = dir.path().join("o.csv");
    std::fs::write(&f, text).unwrap();
    let out = run(&data, &["ingest", "orders", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 7, column amount, value \"12.3.4\""),
        "{err}"
    );
    assert_eq!(count(&data, "orders"), "0");
}

#[test]
fn loading_the_same_file_twice_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let f = dir.path().join("o.csv");
    std::fs::write(&f, orders_csv(1..101)).unwrap();
    let first = run(&data, &["ingest", "orders", f.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("orders: 100 rows read, 100 inserted, 0 updated, 0 duplicates skipped, 0 rejected (table version 1)"));
    let second = run(&data, &["ingest", "orders", f.to_str().unwrap()]);
    assert!(second.status.success());
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "orders: 100 rows read, 0 inserted, 0 updated, 100 duplicates skipped, 0 rejected (nothing to commit)"
    );
    assert_eq!(count(&data, "orders"), "100");
}

#[test]
fn customers_are_upserted_by_updated_at() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let header = "customer_id,name,email,signup_at,marketing_consent,updated_at\n";
    let v1 = dir.path().join("c1.csv");
    std::fs::write(&v1, format!("{header}1,Ann,ann@old.example,2024-01-01T00:00:00Z,true,2024-01-01T00:00:00Z\n2,Bob,bob@example.com,2024-01-01T00:00:00Z,false,2024-06-01T00:00:00Z\n")).unwrap();
    let v2 = dir.path().join("c2.csv");
    std::fs::write(&v2, format!("{header}1,Ann,ann@new.example,2024-01-01T00:00:00Z,true,2025-01-01T00:00:00Z\n2,Bob,bob@stale.example,2024-01-01T00:00:00Z,false,2024-01-01T00:00:00Z\n3,Cy,cy@example.com,2025-01-01T00:00:00Z,true,2025-01-01T00:00:00Z\n")).unwrap();
    assert!(
        run(&data, &["ingest", "customers", v1.to_str().unwrap()])
            .status
            .success()
    );
    let out = run(&data, &["ingest", "customers", v2.to_str().unwrap()]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "customers: 3 rows read, 1 inserted, 1 updated, 1 duplicates skipped, 0 rejected (table version 2)"
    );
    let q = run(
        &data,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT customer_id, email FROM customers ORDER BY customer_id",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&q.stdout),
        "customer_id,email\n1,ann@new.example\n2,bob@example.com\n3,cy@example.com\n"
    );
}

#[test]
fn reject_file_takes_bad_rows_and_good_rows_commit() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let mut text = orders_csv(1..6);
    text.push_str("6,1,2025-02-30T00:00:00Z,web,,1.00,,,completed\n");
    text.push_str("7,1,2025-02-01T00:00:00Z,web,,1.00,,,shipped\n");
    text.push_str("3,1,2025-02-01T00:00:00Z,web,,1.00,,,completed\n");
    let f = dir.path().join("o.csv");
    std::fs::write(&f, text).unwrap();
    let rejects = dir.path().join("rejects.csv");
    let out = run(
        &data,
        &[
            "ingest",
            "orders",
            f.to_str().unwrap(),
            "--reject-file",
            rejects.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "orders: 8 rows read, 5 inserted, 0 updated, 0 duplicates skipped, 3 rejected (table version 1)"
    );
    let r = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines[0], "file,position,column,value,error");
    assert_eq!(lines.len(), 4, "{r}");
    assert!(
        lines[1].contains("line 7,order_ts,2025-02-30T00:00:00Z,\"expected a timestamp (RFC 3339"),
        "{r}"
    );
    assert!(
        lines[2]
            .contains("line 8,status,shipped,\"expected one of completed, returned, cancelled\""),
        "{r}"
    );
    assert!(
        lines[3].contains("line 9,order_id,order_id=3,duplicate key within this load"),
        "{r}"
    );
    assert_eq!(count(&data, "orders"), "5");
}

#[test]
fn unknown_and_missing_columns_are_file_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let f = dir.path().join("o.csv");
    std::fs::write(
        &f,
        "order_id,customer_id,order_ts,amount,status,colour\n1,1,2025-01-01,1.00,completed,red\n",
    )
    .unwrap();
    let out = run(&data, &["ingest", "orders", f.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unknown column(s) 'colour' for table orders")
    );
    let out = run(
        &data,
        &["ingest", "orders", f.to_str().unwrap(), "--ignore-unknown"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        &f,
        "order_id,order_ts,amount,status\n1,2025-01-01,1.00,completed\n",
    )
    .unwrap();
    let out = run(&data, &["ingest", "orders", f.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("required column(s) customer_id of table orders missing")
    );
    assert_eq!(count(&data, "orders"), "1");
}

#[test]
fn json_lines_and_parquet_load_like_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let j = dir.path().join("o.jsonl");
    std::fs::write(&j, "{\"order_id\":1,\"customer_id\":7,\"order_ts\":\"2025-01-01T00:00:00Z\",\"amount\":12.5,\"status\":\"completed\"}\n{\"order_id\":2,\"customer_id\":7,\"order_ts\":\"2025-01-02T00:00:00Z\",\"amount\":\"x\",\"status\":\"completed\"}\n").unwrap();
    let out = run(&data, &["ingest", "orders", j.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2, column amount, value \"x\""));
    std::fs::write(&j, "{\"order_id\":1,\"customer_id\":7,\"order_ts\":\"2025-01-01T00:00:00Z\",\"amount\":12.5,\"status\":\"completed\"}\n").unwrap();
    assert!(
        run(&data, &["ingest", "orders", j.to_str().unwrap()])
            .status
            .success()
    );
    // Round trip through Parquet: export with COPY, load into a second store.
    let pq = dir.path().join("orders.parquet");
    let out = run(
        &data,
        &[
            "sql",
            &format!("COPY orders TO '{}' STORED AS PARQUET", pq.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data2 = dir.path().join("data2");
    assert!(run(&data2, &["init"]).status.success());
    let out = run(&data2, &["ingest", "orders", pq.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let q = run(
        &data2,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT order_id, amount FROM orders",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&q.stdout),
        "order_id,amount\n1,12.50\n"
    );
}

#[test]
fn killing_ingest_mid_load_leaves_the_table_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    let base = dir.path().join("base.csv");
    std::fs::write(&base, orders_csv(0..10)).unwrap();
    assert!(
        run(&data, &["ingest", "orders", base.to_str().unwrap()])
            .status
            .success()
    );
    let big = dir.path().join("big.csv");
    std::fs::write(&big, orders_csv(1_000..601_000)).unwrap();
    for delay_ms in [300u64, 900] {
        let mut child = crate::cli::crmdb()
            .arg("--data")
            .arg(&data)
            .args(["ingest", "orders", big.to_str().unwrap()])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        assert!(
            !finished,
            "the load finished within {delay_ms} ms; make the file larger"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            count(&data, "orders"),
            "10",
            "after a kill at {delay_ms} ms"
        );
    }
    // The store still loads normally afterwards.
    let out = run(&data, &["ingest", "orders", base.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("10 duplicates skipped"));
}

/// (min, max, data pages) of one column in one row group.
type GroupStats = (i64, i64, usize);

/// [`GroupStats`] of `column` in every row group of every Parquet file of a
/// table, and whether each file carries a page index.
fn row_group_ranges(table_dir: &Path, column: &str) -> Vec<(Vec<GroupStats>, bool)> {
    use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
    use datafusion::parquet::file::statistics::Statistics;
    crate::cli::files_with_extension(table_dir, "parquet")
        .iter()
        .map(|f| {
            let file = std::fs::File::open(f).unwrap();
            let meta = ParquetMetaDataReader::new()
                .with_page_index_policy(PageIndexPolicy::Required)
                .parse_and_finish(&file)
                .unwrap();
            let ranges = meta
                .row_groups()
                .iter()
                .enumerate()
                .map(|(g, rg)| {
                    let (i, c) = rg
                        .columns()
                        .iter()
                        .enumerate()
                        .find(|(_, c)| c.column_path().string() == column)
                        .unwrap();
                    let pages = meta
                        .offset_index()
                        .map_or(0, |o| o[g][i].page_locations().len());
                    match c.statistics() {
                        Some(Statistics::Int64(s)) => {
                            (*s.min_opt().unwrap(), *s.max_opt().unwrap(), pages)
                        }
                        other => panic!("no int64 statistics for {column}: {other:?}"),
                    }
                })
                .collect();
            (
                ranges,
                meta.column_index().is_some() && meta.offset_index().is_some(),
            )
        })
        .collect()
}

#[test]
fn a_load_is_written_sorted_by_customer_in_row_groups_with_a_page_index() {
    let dir = tempfile::tempdir().unwrap();
    let data = init(dir.path());
    // 300,000 orders of customers 0..99 in turn: 3,000 per customer, no two
    // neighbours of the same customer.
    let f = dir.path().join("o.csv");
    std::fs::write(&f, orders_csv(1..300_001)).unwrap();
    let out = run(&data, &["ingest", "orders", f.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 131,072-row groups: customers 0–43, 43–87, 87–99, in 1,024-row pages
    // (the last group's 37,856 rows in 37).
    assert_eq!(
        row_group_ranges(&data.join("orders"), "customer_id"),
        vec![(vec![(0, 43, 128), (43, 87, 128), (87, 99, 37)], true)]
    );
    // One customer's orders, in the order they arrived.
    let q = run(
        &data,
        &[
            "sql",
            "--format",
            "csv",
            "SELECT count(*) AS n, min(order_id) AS first, max(order_id) AS last FROM orders WHERE customer_id = 42",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&q.stdout),
        "n,first,last\n3000,42,299942\n"
    );
}
