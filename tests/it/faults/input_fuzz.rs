//! Hostile input: a corpus of bad CSV / JSON-lines / Parquet files, each
//! loaded with `crmdb ingest` and (CSV) `COPY … FROM STDIN` through a running
//! `crmdb serve`: the exact error with file, line, column and value, and
//! every table unchanged (rows and Delta version). Then a seeded loop of
//! random byte mutations of a valid CSV (`CRMDB_FUZZ_ITERS`, default 200;
//! `CRMDB_FUZZ_SEED`, default 5): never a panic, and each load either
//! commits rows consistent with its report or leaves the table as it was.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryArray, Decimal128Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{TableState, crmdb_at, env_knob, finish, table_states};
use crate::server::PASSWORD;

const ORDERS_HEADER: &str =
    "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status\n";

/// A valid orders line.
fn order(id: i64) -> String {
    format!(
        "{id},{},2025-01-{:02}T10:00:00Z,web,s1,{}.50,0.00,,completed\n",
        id % 5 + 1,
        id % 28 + 1,
        id % 90 + 10
    )
}

fn orders_text(ids: std::ops::Range<i64>) -> String {
    let mut s = String::from(ORDERS_HEADER);
    for i in ids {
        s.push_str(&order(i));
    }
    s
}

/// A store with 5 customers, 20 orders and 3 order lines, and its server.
struct Store {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    files: PathBuf,
    server: Child,
    addr: SocketAddr,
    server_log: PathBuf,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Store {
    fn new() -> Store {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let files = tmp.path().join("files");
        std::fs::create_dir_all(&files).unwrap();
        assert!(finish(crmdb_at(&data).arg("init"), 120).status.success());
        std::fs::write(
            data.join("crmdb.toml"),
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n\n[[server.users]]\nname = \"admin\"\nrole = \"admin\"\nsecret = \"{}\"\n",
                crmdb::server::auth::Secret::derive(PASSWORD)
            ),
        )
        .unwrap();
        let seed = [
            (
                "customers.csv",
                "customers",
                "customer_id,name,signup_at,marketing_consent,updated_at\n1,Ann,2024-01-01T00:00:00Z,true,2024-01-01T00:00:00Z\n2,Bob,2024-01-01T00:00:00Z,false,2024-01-01T00:00:00Z\n3,Cy,2024-01-01T00:00:00Z,true,2024-01-01T00:00:00Z\n4,Di,2024-01-01T00:00:00Z,true,2024-01-01T00:00:00Z\n5,Ed,2024-01-01T00:00:00Z,false,2024-01-01T00:00:00Z\n".to_string(),
            ),
            ("orders.csv", "orders", orders_text(1..21)),
            (
                "items.csv",
                "order_items",
                "order_id,line_no,sku,category,quantity,unit_price\n1,1,A,baby_care,1,2.50\n1,2,B,baby_care,2,3.00\n2,1,A,baby_care,1,2.50\n".to_string(),
            ),
        ];
        for (name, table, text) in seed {
            let path = files.join(name);
            std::fs::write(&path, text).unwrap();
            let out = finish(crmdb_at(&data).args(["ingest", table]).arg(&path), 120);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let server_log = tmp.path().join("server.log");
        let (server, addr) = start_server(&data, &server_log);
        Store {
            _tmp: tmp,
            data,
            files,
            server,
            addr,
            server_log,
        }
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.files.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn states(&self) -> BTreeMap<&'static str, TableState> {
        table_states(&self.data)
    }

    /// `crmdb ingest table file`: (exit code, stdout, stderr).
    fn ingest(&self, table: &str, file: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
        let out = finish(
            crmdb_at(&self.data)
                .args(["ingest", table])
                .arg(file)
                .args(extra),
            120,
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// psql `\copy table FROM file WITH (FORMAT csv, HEADER)`: (exit code,
    /// stdout, stderr).
    fn copy(&self, table: &str, file: &Path) -> (Option<i32>, String, String) {
        let out = finish(
            Command::new("psql")
                .args([
                    "-X",
                    "-A",
                    "-t",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-v",
                    "VERBOSITY=verbose",
                ])
                .arg(format!(
                    "host={} port={} user=admin dbname=crm sslmode=disable connect_timeout=10",
                    self.addr.ip(),
                    self.addr.port()
                ))
                .arg("-c")
                .arg(format!(
                    "\\copy {table} FROM '{}' WITH (FORMAT csv, HEADER)",
                    file.display()
                ))
                .env("PGPASSWORD", PASSWORD),
            120,
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn assert_server_alive(&mut self) {
        assert!(
            self.server.try_wait().unwrap().is_none(),
            "the server died: {}",
            std::fs::read_to_string(&self.server_log).unwrap_or_default()
        );
    }
}

fn start_server(data: &Path, log: &Path) -> (Child, SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = crmdb_at(data)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}

/// Write `columns` as one Parquet file.
fn parquet(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    buf
}

fn ids(v: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(v.to_vec()))
}

fn texts(v: &[&str]) -> ArrayRef {
    Arc::new(StringArray::from(v.to_vec()))
}

/// Two good Parquet orders (ids 901, 902) with `amount` as given.
fn orders_parquet(amount: ArrayRef) -> Vec<u8> {
    parquet(vec![
        ("order_id", ids(&[901, 902])),
        ("customer_id", ids(&[1, 2])),
        (
            "order_ts",
            texts(&["2025-03-01T10:00:00Z", "2025-03-02T10:00:00Z"]),
        ),
        ("amount", amount),
        ("status", texts(&["completed", "completed"])),
    ])
}

/// One bad input: where it goes, its bytes, and the exact fragments of the
/// error (`{file}` stands for the input's name: its path, or STDIN).
struct Case {
    name: &'static str,
    table: &'static str,
    file: &'static str,
    bytes: Vec<u8>,
    expect: Vec<&'static str>,
    /// Also sent with COPY … FROM STDIN (CSV inputs).
    copy: bool,
}

fn csv_with(header: &str, lines: &[&str]) -> Vec<u8> {
    let mut s = String::from(header);
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.into_bytes()
}

fn corpus() -> Vec<Case> {
    let good_lines: Vec<String> = (101..104).map(order).collect();
    let g = |i: usize| good_lines[i].trim_end().to_string();
    let orders = |bad: &str| -> Vec<u8> {
        // lines 2 and 3 good, the bad one on line 4, one good after it
        let mut s = String::from(ORDERS_HEADER);
        writeln!(s, "{}\n{}\n{bad}\n{}", g(0), g(1), g(2)).unwrap();
        s.into_bytes()
    };
    let mut invalid_utf8 = String::from(ORDERS_HEADER).into_bytes();
    invalid_utf8.extend_from_slice(format!("{}\n{}\n", g(0), g(1)).as_bytes());
    invalid_utf8.extend_from_slice(b"104,1,2025-01-05T10:00:00Z,w\xffb,s1,1.00,,,completed\n");
    let mut json_utf8 = b"{\"order_id\":201,\"customer_id\":1,\"order_ts\":\"2025-01-01T00:00:00Z\",\"amount\":1.5,\"status\":\"completed\"}\n".to_vec();
    json_utf8.extend_from_slice(b"{\"order_id\":202,\"customer_id\":1,\"order_ts\":\"2025-01-01T00:00:00Z\",\"amount\":1.5,\"status\":\"compl\xc3\x28ted\"}\n");
    let json_line = |id: i64, amount: &str| {
        format!(
            "{{\"order_id\":{id},\"customer_id\":1,\"order_ts\":\"2025-01-01T00:00:00Z\",\"amount\":{amount},\"status\":\"completed\"}}\n"
        )
    };
    let good_parquet = orders_parquet(texts(&["10.00", "11.50"]));
    let customers_header = "customer_id,name,birth_date,signup_at,marketing_consent,updated_at\n";
    let customer = |id: &str, birth: &str, consent: &str| {
        format!("{id},Zed,{birth},2024-01-01T00:00:00Z,{consent},2024-05-01T00:00:00Z")
    };
    vec![
        Case {
            name: "invalid UTF-8 in a CSV field",
            table: "orders",
            file: "utf8.csv",
            bytes: invalid_utf8,
            expect: vec![
                "1 bad value(s) in the input; nothing was loaded",
                "{file} line 4, column channel, value \"w\u{fffd}b\": invalid UTF-8",
            ],
            copy: true,
        },
        Case {
            name: "invalid UTF-8 in a JSON line",
            table: "orders",
            file: "utf8.jsonl",
            bytes: json_utf8,
            expect: vec!["{file} line 2, column (record): invalid UTF-8"],
            copy: false,
        },
        Case {
            name: "text in an integer column",
            table: "orders",
            file: "type.csv",
            bytes: orders("104,abc,2025-01-05T10:00:00Z,web,s1,1.00,,,completed"),
            expect: vec![
                "{file} line 4, column customer_id, value \"abc\": expected an integer (bigint)",
            ],
            copy: true,
        },
        Case {
            name: "a boolean that is not one",
            table: "customers",
            file: "bool.csv",
            bytes: csv_with(
                customers_header,
                &[&customer("6", "1990-01-01", "maybe")],
            ),
            expect: vec![
                "{file} line 2, column marketing_consent, value \"maybe\": expected a boolean (true/false)",
            ],
            copy: true,
        },
        Case {
            name: "a JSON array where a number belongs",
            table: "orders",
            file: "type.jsonl",
            bytes: json_line(203, "[1,2]").into_bytes(),
            expect: vec![
                "{file} line 1, column amount, value \"[1,2]\": expected a scalar value, not an array or object",
            ],
            copy: false,
        },
        Case {
            name: "an amount beyond numeric(18,2)",
            table: "orders",
            file: "overflow.csv",
            bytes: orders("104,1,2025-01-05T10:00:00Z,web,s1,12345678901234567.00,,,completed"),
            expect: vec![
                "{file} line 4, column amount, value \"12345678901234567.00\": out of range for numeric(18,2) (more than 16 digits before the decimal point)",
            ],
            copy: true,
        },
        Case {
            name: "an amount with three decimals",
            table: "orders",
            file: "scale.csv",
            bytes: orders("104,1,2025-01-05T10:00:00Z,web,s1,1.005,,,completed"),
            expect: vec![
                "{file} line 4, column amount, value \"1.005\": more than 2 decimal places for numeric(18,2)",
            ],
            copy: true,
        },
        Case {
            name: "a JSON amount beyond numeric(18,2)",
            table: "orders",
            file: "overflow.jsonl",
            bytes: json_line(204, "12345678901234567").into_bytes(),
            expect: vec![
                "{file} line 1, column amount, value \"12345678901234567\": out of range for numeric(18,2)",
            ],
            copy: false,
        },
        Case {
            name: "a Parquet decimal beyond numeric(18,2)",
            table: "orders",
            file: "overflow.parquet",
            bytes: orders_parquet(Arc::new(
                Decimal128Array::from(vec![1_000, 100_000_000_000_000_000_000])
                    .with_precision_and_scale(38, 2)
                    .unwrap(),
            )),
            expect: vec![
                "{file} row 2, column amount, value \"1000000000000000000.00\": cannot be converted from Decimal128(38, 2) to numeric(18,2)",
            ],
            copy: false,
        },
        Case {
            name: "February 30th",
            table: "orders",
            file: "feb30.csv",
            bytes: orders("104,1,2025-02-30T10:00:00Z,web,s1,1.00,,,completed"),
            expect: vec![
                "{file} line 4, column order_ts, value \"2025-02-30T10:00:00Z\": expected a timestamp (RFC 3339 like 2025-03-01T14:05:09Z, or YYYY-MM-DD HH:MM:SS in UTC)",
            ],
            copy: true,
        },
        Case {
            name: "month 13",
            table: "orders",
            file: "month13.csv",
            bytes: orders("104,1,2025-13-01,web,s1,1.00,,,completed"),
            expect: vec![
                "{file} line 4, column order_ts, value \"2025-13-01\": expected a timestamp",
            ],
            copy: true,
        },
        Case {
            name: "impossible birth dates",
            table: "customers",
            file: "dates.csv",
            bytes: csv_with(
                customers_header,
                &[
                    &customer("6", "1990-02-30", "true"),
                    &customer("7", "1990-13-01", "true"),
                ],
            ),
            expect: vec![
                "2 bad value(s)",
                "{file} line 2, column birth_date, value \"1990-02-30\": expected a date YYYY-MM-DD (input is out of range)",
                "{file} line 3, column birth_date, value \"1990-13-01\": expected a date YYYY-MM-DD (input is out of range)",
            ],
            copy: true,
        },
        Case {
            name: "an empty order_id",
            table: "orders",
            file: "nokey.csv",
            bytes: orders(",1,2025-01-05T10:00:00Z,web,s1,1.00,,,completed"),
            expect: vec!["{file} line 4, column order_id: missing value; column is NOT NULL (bigint)"],
            copy: true,
        },
        Case {
            name: "an empty customer_id",
            table: "customers",
            file: "nocustomer.csv",
            bytes: csv_with(
                customers_header,
                &[&customer("", "1990-01-01", "true")],
            ),
            expect: vec![
                "{file} line 2, column customer_id: missing value; column is NOT NULL (bigint)",
            ],
            copy: true,
        },
        Case {
            name: "a null JSON key",
            table: "orders",
            file: "nokey.jsonl",
            bytes: json_line(205, "1.5").replace("205", "null").into_bytes(),
            expect: vec!["{file} line 1, column order_id: missing value; column is NOT NULL (bigint)"],
            copy: false,
        },
        Case {
            name: "a key twice in one file",
            table: "orders",
            file: "dup.csv",
            bytes: orders(&g(0)),
            expect: vec![
                "{file} line 4, column order_id, value \"order_id=101\": duplicate key within this load (first at {file} line 2)",
            ],
            copy: true,
        },
        Case {
            name: "a composite key twice in one file",
            table: "order_items",
            file: "dupitems.csv",
            bytes: b"order_id,line_no,sku,category,quantity,unit_price\n5,1,A,baby_care,1,2.50\n5,2,B,baby_care,1,2.50\n5,1,C,baby_care,1,2.50\n".to_vec(),
            expect: vec![
                "{file} line 4, column order_id, line_no, value \"order_id=5, line_no=1\": duplicate key within this load (first at {file} line 2)",
            ],
            copy: true,
        },
        Case {
            name: "a CSV cut in the middle of a line",
            table: "orders",
            file: "cut.csv",
            bytes: {
                let mut b = orders(&g(2));
                let keep = b.len() - 40;
                b.truncate(keep);
                b
            },
            expect: vec![
                "{file} line 5, column (record): expected 9 fields as in the header, found 3",
            ],
            copy: true,
        },
        Case {
            name: "JSON cut in the middle of an object",
            table: "orders",
            file: "cut.jsonl",
            bytes: {
                let mut s = json_line(206, "1.5");
                s.push_str(&json_line(207, "2.5")[..32]);
                s.into_bytes()
            },
            expect: vec![
                "{file} line 2, column (record): not a JSON object: EOF while parsing a value at line 1 column 32",
            ],
            copy: false,
        },
        Case {
            name: "a truncated Parquet file",
            table: "orders",
            file: "cut.parquet",
            bytes: good_parquet[..good_parquet.len() / 2].to_vec(),
            expect: vec!["{file}: not a readable Parquet file: "],
            copy: false,
        },
        Case {
            name: "Parquet without the required columns",
            table: "orders",
            file: "schema.parquet",
            bytes: parquet(vec![("order_id", ids(&[1])), ("note", texts(&["x"]))]),
            expect: vec!["{file}: unknown column(s) 'note' for table orders"],
            copy: false,
        },
        Case {
            name: "Parquet missing required columns",
            table: "orders",
            file: "missing.parquet",
            bytes: parquet(vec![("order_id", ids(&[1])), ("amount", texts(&["1.00"]))]),
            expect: vec![
                "{file}: required column(s) customer_id, order_ts, status of table orders missing from the input",
            ],
            copy: false,
        },
        Case {
            name: "Parquet with a column type that cannot be converted",
            table: "orders",
            file: "binary.parquet",
            bytes: orders_parquet(Arc::new(BinaryArray::from(vec![&b"1"[..], b"2"]))),
            expect: vec![
                "{file}: column amount of type Binary cannot be loaded as numeric(18,2)",
            ],
            copy: false,
        },
        Case {
            name: "Parquet with text where a number belongs",
            table: "orders",
            file: "text.parquet",
            bytes: orders_parquet(texts(&["10.00", "ten"])),
            expect: vec![
                "{file} row 2, column amount, value \"ten\": expected a number with at most 2 decimals (numeric(18,2))",
            ],
            copy: false,
        },
        Case {
            name: "an empty CSV file",
            table: "orders",
            file: "empty.csv",
            bytes: Vec::new(),
            expect: vec!["{file}: empty file: expected a header row"],
            copy: true,
        },
        Case {
            name: "an empty Parquet file",
            table: "orders",
            file: "empty.parquet",
            bytes: Vec::new(),
            expect: vec!["{file}: not a readable Parquet file: "],
            copy: false,
        },
    ]
}

#[test]
fn every_bad_input_names_its_place_and_changes_nothing() {
    let mut store = Store::new();
    let baseline = store.states();
    assert_eq!(baseline["orders"].rows, 20);
    assert_eq!(baseline["customers"].rows, 5);
    // every mismatch of every case, reported together
    let mut problems: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    for case in &corpus() {
        let path = store.write(case.file, &case.bytes);
        let (code, stdout, stderr) = store.ingest(case.table, &path, &[]);
        check(
            code == Some(1) && !stderr.contains("panicked"),
            format!(
                "{}: ingest should fail with exit 1, got {code:?}; stdout {stdout:?}, stderr {stderr:?}",
                case.name
            ),
        );
        let file = path.display().to_string();
        for fragment in &case.expect {
            let fragment = fragment.replace("{file}", &file);
            check(
                stderr.contains(&fragment),
                format!("{}: ingest error lacks {fragment:?}:\n{stderr}", case.name),
            );
        }
        check(
            store.states() == baseline,
            format!("{}: ingest changed a table", case.name),
        );
        if case.copy {
            let (code, stdout, stderr) = store.copy(case.table, &path);
            check(
                code != Some(0)
                    && stderr.contains("ERROR:  22P02:")
                    && stderr.contains("nothing was loaded"),
                format!(
                    "{}: COPY should fail with 22P02, got {code:?}: {stdout} {stderr}",
                    case.name
                ),
            );
            for fragment in &case.expect {
                let fragment = fragment.replace("{file}", "STDIN");
                check(
                    stderr.contains(&fragment),
                    format!("{}: COPY error lacks {fragment:?}:\n{stderr}", case.name),
                );
            }
            store.assert_server_alive();
            check(
                store.states() == baseline,
                format!("{}: COPY changed a table", case.name),
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // A header without rows, and empty JSON lines, are empty loads: nothing
    // to commit, no error.
    for (file, bytes) in [
        ("header.csv", ORDERS_HEADER.as_bytes()),
        ("empty.jsonl", b"".as_slice()),
        ("blank.jsonl", b"\n\n".as_slice()),
    ] {
        let path = store.write(file, bytes);
        let (code, stdout, stderr) = store.ingest("orders", &path, &[]);
        assert_eq!(code, Some(0), "{file}: {stderr}");
        assert_eq!(
            stdout.trim(),
            "orders: 0 rows read, 0 inserted, 0 updated, 0 duplicates skipped, 0 rejected (nothing to commit)",
            "{file}"
        );
    }
    let header = store.write("header.csv", ORDERS_HEADER.as_bytes());
    let (code, stdout, stderr) = store.copy("orders", &header);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout.trim(), "COPY 0");
    assert_eq!(store.states(), baseline, "an empty load changed a table");
    // the store still loads: one good file of each format
    let good_csv = store.write("good.csv", orders_text(301..305).as_bytes());
    let good_pq = store.write("good.parquet", &orders_parquet(texts(&["10.00", "11.50"])));
    let (code, _, stderr) = store.ingest("orders", &good_csv, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = store.ingest("orders", &good_pq, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.trim(),
        format!(
            "orders: 2 rows read, 2 inserted, 0 updated, 0 duplicates skipped, 0 rejected (table version {})",
            baseline["orders"].version + 2
        )
    );
    assert_eq!(store.states()["orders"].rows, 26);
    let log = std::fs::read_to_string(&store.server_log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

/// One random edit of `bytes`.
fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    const INTERESTING: &[u8] = b",\n\r\"'.-+0123456789eE \t\\\xff\xc3\x80\x00";
    let pos = |rng: &mut ChaCha8Rng, len: usize| rng.random_range(0..len.max(1));
    match rng.random_range(0..6) {
        0 if !bytes.is_empty() => {
            let i = pos(rng, bytes.len());
            bytes[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let i = pos(rng, bytes.len() + 1).min(bytes.len());
            let b = if rng.random_bool(0.7) {
                INTERESTING[rng.random_range(0..INTERESTING.len())]
            } else {
                rng.random()
            };
            bytes.insert(i, b);
        }
        2 if !bytes.is_empty() => {
            let i = pos(rng, bytes.len());
            let n = rng.random_range(1..=8).min(bytes.len() - i);
            bytes.drain(i..i + n);
        }
        3 if !bytes.is_empty() => {
            let i = pos(rng, bytes.len());
            bytes[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
        }
        4 if !bytes.is_empty() => {
            // duplicate a line (a repeated key, or a repeated header)
            let text = bytes.clone();
            let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
            let line = lines[rng.random_range(0..lines.len())].to_vec();
            let at = pos(rng, bytes.len());
            bytes.splice(at..at, line);
        }
        _ => {
            let keep = pos(rng, bytes.len() + 1).min(bytes.len());
            bytes.truncate(keep);
        }
    }
}

/// The counts of an ingest report line.
struct Report {
    read: u64,
    inserted: u64,
    updated: u64,
    duplicates: u64,
    rejected: u64,
    version: Option<i64>,
}

fn report(stdout: &str) -> Option<Report> {
    let line = stdout.lines().find(|l| l.starts_with("orders: "))?;
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let committed = line.contains("(table version ");
    if nums.len() != 5 + usize::from(committed) {
        return None;
    }
    Some(Report {
        read: nums[0],
        inserted: nums[1],
        updated: nums[2],
        duplicates: nums[3],
        rejected: nums[4],
        version: committed.then(|| nums[5] as i64),
    })
}

#[test]
fn random_mutations_of_a_valid_csv_never_crash_and_load_all_or_nothing() {
    let iters = env_knob("CRMDB_FUZZ_ITERS", 200);
    let seed = env_knob("CRMDB_FUZZ_SEED", 5);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut store = Store::new();
    let mut state = store.states();
    let (mut loaded, mut refused, mut via_copy) = (0u64, 0u64, 0u64);
    let mut inserted_total = 0u64;
    for i in 0..iters {
        // fresh keys each time, so a clean load adds every row
        let base = 10_000 + i as i64 * 100;
        let mut bytes = orders_text(base..base + 30).into_bytes();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut rng, &mut bytes);
        }
        let path = store.write("fuzz.csv", &bytes);
        let keep_failing_input = || {
            let kept = std::env::temp_dir().join(format!("crmdb-fuzz-{seed}-{i}.csv"));
            let _ = std::fs::write(&kept, &bytes);
            kept
        };
        let use_copy = i % 3 == 2;
        let reject_file = store.files.join("rejects.csv");
        let with_rejects = i % 4 == 1;
        let (code, stdout, stderr) = if use_copy {
            via_copy += 1;
            store.copy("orders", &path)
        } else if with_rejects {
            store.ingest(
                "orders",
                &path,
                &["--reject-file", reject_file.to_str().unwrap()],
            )
        } else {
            store.ingest("orders", &path, &[])
        };
        let now = store.states();
        let context = || {
            format!(
                "iteration {i} (seed {seed}, input kept at {}): exit {code:?}\nstdout: {stdout}\nstderr: {stderr}",
                keep_failing_input().display()
            )
        };
        assert!(
            !stderr.contains("panicked") && matches!(code, Some(0) | Some(1)),
            "{}",
            context()
        );
        if use_copy {
            store.assert_server_alive();
        }
        let before = state["orders"];
        let after = now["orders"];
        for (name, s) in &state {
            if *name != "orders" {
                assert_eq!(now[name], *s, "{name} changed: {}", context());
            }
        }
        if code == Some(0) {
            loaded += 1;
            let inserted = if use_copy {
                stdout
                    .trim()
                    .strip_prefix("COPY ")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("no COPY tag: {}", context()))
            } else {
                let Report {
                    read,
                    inserted,
                    updated,
                    duplicates,
                    rejected,
                    version,
                } = report(&stdout).unwrap_or_else(|| panic!("no report: {}", context()));
                assert_eq!(updated, 0, "{}", context());
                assert_eq!(read, inserted + duplicates + rejected, "{}", context());
                let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
                assert!(
                    read < lines,
                    "{read} rows from {lines} lines: {}",
                    context()
                );
                if !with_rejects {
                    assert_eq!(rejected, 0, "{}", context());
                }
                assert_eq!(
                    version,
                    (inserted > 0).then_some(before.version + 1),
                    "{}",
                    context()
                );
                inserted
            };
            assert!(inserted <= 31, "{}", context());
            let expected = TableState {
                rows: before.rows + inserted,
                version: before.version + i64::from(inserted > 0),
            };
            assert_eq!(after, expected, "{}", context());
            inserted_total += inserted;
        } else {
            refused += 1;
            assert!(
                stderr.contains("error: ") || stderr.contains("ERROR:  "),
                "{}",
                context()
            );
            assert_eq!(after, before, "a failed load changed orders: {}", context());
        }
        state = now;
    }
    let log = std::fs::read_to_string(&store.server_log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    eprintln!(
        "input fuzz (seed {seed}): {iters} mutated files, {via_copy} through COPY; {loaded} loaded ({inserted_total} rows), {refused} refused with an error, 0 crashes"
    );
    assert_eq!(loaded + refused, iters);
    // the loop exercised both outcomes
    if iters >= 50 {
        assert!(
            loaded > 0 && refused > 0,
            "{loaded} loaded, {refused} refused"
        );
    }
}
