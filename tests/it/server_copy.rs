//! COPY over the wire and psql's meta-commands, through the real psql.
//!
//! `COPY … TO STDOUT` runs against the shared server of `server.rs`; loads
//! with `COPY … FROM STDIN` get a store and server of their own, so the
//! shared fixture's rows never change.

use std::io::Write;

use super::server::{PASSWORD, config, fixture, psql_at, query, query_error};

#[test]
fn copy_to_stdout_sends_text_and_csv() {
    // PostgreSQL's text format: tabs, \N for NULL
    let text = query(
        "analyst",
        "COPY (SELECT order_id, store_id, discount FROM orders ORDER BY order_id) TO STDOUT",
    );
    assert_eq!(text, "10\ts1\t0.00\n11\ts1\t5.00\n12\ts2\t\\N\n13\ts3\t\\N");
    // CSV with a header, and a table with a column list
    let csv = query(
        "analyst",
        "COPY (SELECT customer_id, name, phone FROM customers ORDER BY customer_id) TO STDOUT WITH (FORMAT csv, HEADER)",
    );
    assert_eq!(
        csv,
        "customer_id,name,phone\n1,Alice Smith,13812341234\n2,Bob Jones,13900001111\n3,Carol White,"
    );
    let table = query(
        "analyst",
        "COPY orders (order_id, amount) TO STDOUT WITH (FORMAT csv, DELIMITER ';')",
    );
    let mut lines: Vec<&str> = table.lines().collect();
    lines.sort();
    assert_eq!(lines, ["10;120.50", "11;80.00", "12;42.25", "13;10.00"]);
    // psql's \copy is COPY … TO STDOUT underneath
    let r = psql_at(
        fixture().addr,
        "analyst",
        PASSWORD,
        &[
            "-c",
            "\\copy (SELECT customer_id FROM customers WHERE city = 'Rome') TO STDOUT",
        ],
    );
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "3");
}

#[test]
fn copy_to_stdout_masks_personal_data_for_viewers() {
    let viewer = query(
        "viewer",
        "COPY (SELECT name, phone, email FROM customers WHERE customer_id = 1) TO STDOUT",
    );
    let selected = query(
        "viewer",
        "SELECT name, phone, email FROM customers WHERE customer_id = 1",
    );
    assert_eq!(viewer.replace('\t', "|"), selected);
    assert!(!viewer.contains("13812341234") && !viewer.contains("alice@example.com"));
}

#[test]
fn bad_wire_copies_get_clear_errors() {
    let e = query_error(
        "analyst",
        "COPY (SELECT 1) TO STDOUT WITH (FORMAT binary)",
        "0A000",
    );
    assert!(e.contains("format binary is not supported"), "{e}");
    let e = query_error(
        "analyst",
        "COPY (SELECT nothing FROM orders) TO STDOUT",
        "42601",
    );
    assert!(e.contains("nothing"), "{e}");
    // loading is for admins
    let e = query_error("analyst", "COPY orders FROM STDIN", "42501");
    assert!(e.contains("only admin"), "{e}");
}

#[test]
fn psql_meta_commands_describe_the_database() {
    let list = query("analyst", "\\l");
    assert!(list.starts_with("crm|"), "{list}");
    let schemas = query("analyst", "\\dn");
    assert!(
        schemas.lines().any(|l| l.starts_with("public|")),
        "{schemas}"
    );
    let tables = query("analyst", "\\dt");
    for t in [
        "customers",
        "order_items",
        "orders",
        "interactions",
        "promotions",
        "promotion_exposures",
    ] {
        assert!(
            tables
                .lines()
                .any(|l| l.starts_with(&format!("public|{t}|table|"))),
            "{t} missing from \\dt: {tables}"
        );
    }
    let views = query("analyst", "\\dv");
    for v in [
        "customer_metrics",
        "segment_summary",
        "cohort_retention",
        "promotion_effectiveness",
        "kpi_monthly",
    ] {
        assert!(
            views
                .lines()
                .any(|l| l.starts_with(&format!("public|{v}|view|"))),
            "{v} missing from \\dv: {views}"
        );
    }
    let roles = query("analyst", "\\du");
    for u in ["admin", "analyst", "viewer"] {
        assert!(
            roles.lines().any(|l| l.starts_with(&format!("{u}|"))),
            "{roles}"
        );
    }
    let orders = query("analyst", "\\d orders");
    assert!(orders.contains("order_id|bigint|"), "{orders}");
    assert!(orders.contains("amount|numeric(18,2)|"), "{orders}");
    assert!(
        orders.contains("order_ts|timestamp with time zone|"),
        "{orders}"
    );
    let index = query(
        "analyst",
        "SELECT pg_get_indexdef(i.indexrelid), pg_get_indexdef(i.indexrelid, 2, true) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relname = 'order_items'",
    );
    assert_eq!(
        index,
        "CREATE UNIQUE INDEX order_items_pkey ON public.order_items USING btree (order_id, line_no)|line_no"
    );
    // \df lists crmdb's CRM functions with their kind
    let functions = query("analyst", "\\df rfm*");
    assert_eq!(
        functions,
        "public|rfm_score|record|recency_days, frequency, monetary [, bins]|window\n\
         public|rfm_score_fixed|record|recency_days, frequency, monetary, r_edges, f_edges, m_edges|func\n\
         public|rfm_segment|text|r, f, m|func"
    );
    // \d+ adds storage and the column descriptions of the table definitions
    let plus = query("analyst", "\\d+ orders");
    assert!(
        plus.contains("status|text||not null||extended|||completed, returned or cancelled"),
        "{plus}"
    );
}

/// A server over a store of its own (3 customers, 4 orders), for loads.
fn own_server() -> std::net::SocketAddr {
    let f = fixture();
    let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
    let engine = f.runtime.block_on(async {
        let root = dir.path().join("data");
        tokio::spawn(async move {
            let store = crmdb::store::Store::init(&root).await.unwrap();
            crmdb::engine::Engine::open(
                store,
                std::sync::Arc::new(crmdb::config::Config::default()),
            )
            .await
            .unwrap()
        })
        .await
        .unwrap()
    });
    let server = f.runtime.block_on(async move {
        tokio::spawn(async move { crmdb::server::Server::start(engine, config()).await })
            .await
            .unwrap()
            .unwrap()
    });
    let addr = server.local_addr();
    Box::leak(Box::new(server));
    addr
}

fn csv_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn count(addr: std::net::SocketAddr, table: &str) -> String {
    let r = psql_at(
        addr,
        "admin",
        PASSWORD,
        &["-c", &format!("SELECT count(*) FROM {table}")],
    );
    assert!(r.ok, "{}", r.stderr);
    r.stdout.trim().to_string()
}

#[test]
fn copy_from_stdin_loads_atomically_with_ingest_validation() {
    let addr = own_server();
    let good = csv_file(
        "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status
1,7,2025-01-02T10:00:00Z,web,s1,10.50,,,completed
2,7,2025-01-03T10:00:00Z,app,s1,20.00,1.00,,completed
",
    );
    let load = |file: &tempfile::NamedTempFile, user: &str| {
        psql_at(
            addr,
            user,
            PASSWORD,
            &[
                "-c",
                &format!(
                    "\\copy orders FROM '{}' WITH (FORMAT csv, HEADER)",
                    file.path().display()
                ),
            ],
        )
    };
    let r = load(&good, "admin");
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(count(addr, "orders"), "2");
    let amounts = psql_at(
        addr,
        "admin",
        PASSWORD,
        &["-c", "SELECT sum(amount) FROM orders"],
    );
    assert_eq!(amounts.stdout.trim(), "30.50");
    // the same rows again add nothing (keys are honoured)
    let r = load(&good, "admin");
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(count(addr, "orders"), "2");

    // one bad amount on line 3: the error names it and nothing is loaded
    let bad = csv_file(
        "order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status
3,8,2025-01-04T10:00:00Z,web,s1,5.00,,,completed
4,8,2025-01-05T10:00:00Z,web,s1,12.x4,,,completed
",
    );
    let r = load(&bad, "admin");
    assert!(!r.ok);
    assert!(r.stderr.contains("22P02"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("STDIN line 3, column amount, value \"12.x4\""),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was loaded"), "{}", r.stderr);
    assert_eq!(count(addr, "orders"), "2");

    // the connection keeps working after a failed COPY
    let r = psql_at(
        addr,
        "admin",
        PASSWORD,
        &[
            "-c",
            &format!(
                "\\copy orders FROM '{}' WITH (FORMAT csv, HEADER)",
                bad.path().display()
            ),
            "-c",
            "SELECT 41 + 1",
        ],
    );
    assert!(!r.ok);
    // analysts may not load
    let r = load(&good, "analyst");
    assert!(!r.ok);
    assert!(r.stderr.contains("42501"), "{}", r.stderr);
    // customers are upserted: a newer updated_at replaces the row
    let customers = csv_file(
        "customer_id,name,signup_at,marketing_consent,updated_at,city
7,Dana,2024-01-01T00:00:00Z,true,2024-01-01T00:00:00Z,Oslo
",
    );
    let copy_customers = |file: &tempfile::NamedTempFile| {
        psql_at(
            addr,
            "admin",
            PASSWORD,
            &[
                "-c",
                &format!(
                    "\\copy customers (customer_id, name, signup_at, marketing_consent, updated_at, city) FROM '{}' WITH (FORMAT csv, HEADER)",
                    file.path().display()
                ),
            ],
        )
    };
    let r = copy_customers(&customers);
    assert!(r.ok, "{}", r.stderr);
    let newer = csv_file(
        "customer_id,name,signup_at,marketing_consent,updated_at,city
7,Dana,2024-01-01T00:00:00Z,true,2024-06-01T00:00:00Z,Bergen
",
    );
    let r = copy_customers(&newer);
    assert!(r.ok, "{}", r.stderr);
    let city = psql_at(
        addr,
        "admin",
        PASSWORD,
        &["-c", "SELECT city FROM customers WHERE customer_id = 7"],
    );
    assert_eq!(city.stdout.trim(), "Bergen");
    assert_eq!(count(addr, "customers"), "1");
}
