//! The built-in views on real data: the bundled sample data and generated
//! data with a known true uplift; snapshots written by `refresh`.

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use crmdb::config::Config;
use crmdb::demo::open_demo;
use crmdb::engine::Engine;
use crmdb::generate::{GenerateOptions, generate, read_truth};
use crmdb::ingest::{IngestOptions, ingest_files};
use crmdb::store::Store;
use crmdb::store::schema::TABLES;
use crmdb::views::snapshot::refresh;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::prelude::SessionContext;

async fn rows(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

async fn one_i64(ctx: &SessionContext, sql: &str) -> i64 {
    let b = rows(ctx, sql).await;
    b[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// Customers whose model columns in `customer_metrics` differ from the
/// documented SQL path orders → btyd_summary → bgnbd_fit / gamma_gamma_fit →
/// p_alive, E[purchases], CLV (or who are in only one of the two).
async fn model_mismatches(ctx: &SessionContext) -> i64 {
    let direct = "WITH s AS (
        SELECT customer_id, btyd_summary(order_ts, amount, TIMESTAMP '2026-06-30T23:59:59.999999Z', 7) AS s FROM orders
        WHERE status = 'completed' AND order_ts < TIMESTAMP '2026-07-01T00:00:00Z' GROUP BY customer_id),
      bg AS (SELECT bgnbd_fit(s['frequency'], s['recency'], s['t']) AS p FROM s),
      gg AS (SELECT gamma_gamma_fit(s['frequency'], s['monetary_value']) AS p FROM s)
      SELECT s.customer_id,
        bgnbd_p_alive(bg.p, s['frequency'], s['recency'], s['t']) AS p_alive,
        bgnbd_expected_purchases(bg.p, 90.0 / 7, s['frequency'], s['recency'], s['t']) AS e90,
        CAST(clv(bg.p, gg.p, s['frequency'], s['recency'], s['t'], s['monetary_value'], 12, 0.01, 7) AS DECIMAL(18,2)) AS clv
      FROM s CROSS JOIN bg CROSS JOIN gg";
    one_i64(
        ctx,
        &format!(
            "SELECT count(*) FROM ({direct}) d FULL JOIN
               (SELECT customer_id, p_alive, expected_purchases_90d, clv_12m FROM customer_metrics WHERE orders > 0) m
               ON d.customer_id = m.customer_id
             WHERE d.customer_id IS NULL OR m.customer_id IS NULL
                OR abs(d.p_alive - m.p_alive) > 1e-12 OR abs(d.e90 - m.expected_purchases_90d) > 1e-12
                OR d.clv <> m.clv_12m"
        ),
    )
    .await
}

/// The model columns of `customer_metrics` equal the documented SQL path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_metrics_models_equal_the_sql_path() {
    let (_dir, engine) = open_demo().await.unwrap();
    let ctx = engine.session();
    assert_eq!(model_mismatches(&ctx).await, 0);
    // Sample data: 2,000 customers, of whom 1,566 bought before the as-of date.
    let b = rows(
        &ctx,
        "SELECT count(*), count(p_alive), count(clv_12m), sum(CASE WHEN lifecycle_stage = 'prospect' THEN 1 ELSE 0 END)
         FROM customer_metrics",
    )
    .await;
    let n = |i: usize| b[0].column(i).as_primitive::<Int64Type>().value(0);
    assert_eq!((n(0), n(1), n(2), n(3)), (2000, 1566, 1566, 434));
}

/// `churn_warning` of `customer_metrics` (computed with the one-pass
/// `orders_before_last`) equals its definition as a self-join of the orders
/// with each customer's last order, for every customer of the sample data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_warning_equals_the_self_join_definition() {
    let (_dir, engine) = open_demo().await.unwrap();
    let ctx = engine.session();
    let definition = "WITH done AS (
        SELECT customer_id, order_ts FROM orders
        WHERE status = 'completed' AND order_ts < TIMESTAMP '2026-07-01T00:00:00Z'),
      last AS (SELECT customer_id, max(order_ts) AS last_ts FROM done GROUP BY customer_id),
      before AS (
        SELECT d.customer_id, count(*) AS n FROM done d JOIN last l ON d.customer_id = l.customer_id
        WHERE d.order_ts < l.last_ts AND d.order_ts >= l.last_ts - INTERVAL '90 days'
        GROUP BY d.customer_id)
      SELECT c.customer_id,
        COALESCE(churn_warning(l.last_ts, COALESCE(b.n, 0), TIMESTAMP '2026-07-01T00:00:00Z', 30, 3), false) AS w
      FROM customers c LEFT JOIN last l ON l.customer_id = c.customer_id
        LEFT JOIN before b ON b.customer_id = c.customer_id";
    let b = rows(
        &ctx,
        &format!(
            "SELECT count(*) FILTER (WHERE d.w <> m.churn_warning OR m.customer_id IS NULL),
                    count(*) FILTER (WHERE m.churn_warning)
             FROM ({definition}) d LEFT JOIN customer_metrics m ON d.customer_id = m.customer_id"
        ),
    )
    .await;
    let n = |i: usize| b[0].column(i).as_primitive::<Int64Type>().value(0);
    // no difference; 361 warnings, as the view gave with the self-join
    assert_eq!((n(0), n(1)), (0, 361));
}

/// A customer whose orders lie in two files is fitted with all of them: the
/// fits behind `customer_metrics` see one summary per customer when the
/// scan of `orders` is split over two partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_metrics_fits_customers_whose_orders_span_two_files() {
    let (dir, engine) = open_demo().await.unwrap();
    let ctx = engine.session();
    // A second load: a repeat purchase 40 days before each completed order
    // of every second customer, in a file of its own.
    let extra = dir.path().join("earlier_orders.parquet");
    rows(
        &ctx,
        &format!(
            "COPY (SELECT * REPLACE (order_id + 1000000000 AS order_id, order_ts - INTERVAL '40 days' AS order_ts)
                   FROM orders WHERE customer_id % 2 = 0 AND status = 'completed')
             TO '{}' STORED AS PARQUET",
            extra.display()
        ),
    )
    .await;
    let hidden = indicatif::ProgressBar::hidden();
    let report = ingest_files(
        engine.store(),
        "orders",
        &[extra],
        &IngestOptions::default(),
        &hidden,
    )
    .await
    .unwrap();
    assert_eq!(report.rejected, 0, "{report:?}");
    assert!(report.inserted > 1000, "{report:?}");
    let orders = engine.store().table_path("orders");
    assert_eq!(
        crate::cli::files_with_extension(&orders, "parquet").len(),
        2
    );
    // two partitions, each reading byte ranges of the files, whatever the
    // number of cores and however small the files
    rows(&ctx, "SET datafusion.execution.target_partitions = 2").await;
    rows(
        &ctx,
        "SET datafusion.optimizer.repartition_file_min_size = 1",
    )
    .await;
    let plan = rows(
        &ctx,
        "EXPLAIN SELECT customer_id, count(*) FROM orders GROUP BY customer_id",
    )
    .await;
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&plan)
        .unwrap()
        .to_string();
    assert!(plan.contains("file_groups={2 groups:"), "{plan}");
    assert_eq!(model_mismatches(&ctx).await, 0);
}

/// Every view is listed as a VIEW in information_schema, with its columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_are_listed_in_information_schema() {
    let (_dir, engine) = open_demo().await.unwrap();
    let ctx = engine.session();
    let b = rows(
        &ctx,
        "SELECT table_name, table_type FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'VIEW' ORDER BY table_name",
    )
    .await;
    let names: Vec<String> = b
        .iter()
        .flat_map(|b| {
            let c = b.column(0).as_string::<i32>();
            (0..c.len())
                .map(|i| c.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(
        names,
        [
            "cohort_retention",
            "customer_metrics",
            "kpi_monthly",
            "promotion_effectiveness",
            "segment_summary",
            "segment_transitions"
        ]
    );
    let columns = one_i64(
        &ctx,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customer_metrics'",
    )
    .await;
    assert_eq!(columns, 30);
}

/// `SET crm.as_of` changes one session only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_is_per_session() {
    let (_dir, engine) = open_demo().await.unwrap();
    let a = engine.session();
    let b = engine.session();
    rows(&a, "SET crm.as_of = '2024-06-30'").await;
    let buyers = "SELECT count(*) FROM customer_metrics WHERE orders > 0";
    let (early, late) = (one_i64(&a, buyers).await, one_i64(&b, buyers).await);
    assert_eq!(late, 1566);
    assert!(
        early < late,
        "{early} buyers by 2024-06-30, {late} by 2026-06-30"
    );
    // Customers who signed up later do not exist yet on the earlier date.
    let later_signups = one_i64(
        &b,
        "SELECT count(*) FROM customers WHERE signup_at >= TIMESTAMP '2024-07-01T00:00:00Z'",
    )
    .await;
    assert_eq!(
        one_i64(&a, "SELECT count(*) FROM customer_metrics").await,
        2000 - later_signups
    );
}

/// Refresh writes one partition per date, re-runs replace it, and
/// segment_transitions counts every move between consecutive snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_snapshots_and_transitions() {
    let (dir, engine) = open_demo().await.unwrap();
    let march = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let june = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
    let first = refresh(&engine, Some(march)).await.unwrap();
    let second = refresh(&engine, None).await.unwrap();
    let again = refresh(&engine, Some(june)).await.unwrap();
    assert_eq!(second.snapshot_date, june);
    assert_eq!(again.rows, second.rows);
    assert_eq!(second.rows, 2000);
    assert!(again.version > second.version && second.version > first.version);
    assert!(
        dir.path()
            .join("data/customer_snapshots/snapshot_date=2026-06-30")
            .is_dir()
    );

    let ctx = engine.session();
    let per_date = rows(
        &ctx,
        "SELECT arrow_cast(snapshot_date, 'Utf8'), count(*) FROM customer_snapshots GROUP BY 1 ORDER BY 1",
    )
    .await;
    let d = per_date[0].column(0).as_string::<i32>();
    let n = per_date[0].column(1).as_primitive::<Int64Type>();
    assert_eq!(per_date[0].num_rows(), 2, "a re-run replaces its date");
    assert_eq!((d.value(0), n.value(0)), ("2026-03-31", first.rows as i64));
    assert_eq!((d.value(1), n.value(1)), ("2026-06-30", 2000));

    // The view agrees with a direct comparison of the two snapshots.
    let differences = one_i64(
        &ctx,
        "WITH direct AS (
           SELECT a.rfm_segment AS f, b.rfm_segment AS t, count(*) AS n
           FROM (SELECT * FROM customer_snapshots WHERE snapshot_date = DATE '2026-03-31') a
           FULL JOIN (SELECT * FROM customer_snapshots WHERE snapshot_date = DATE '2026-06-30') b
             ON a.customer_id = b.customer_id
           GROUP BY 1, 2)
         SELECT count(*) FROM direct FULL JOIN segment_transitions v
           ON (v.from_segment IS NOT DISTINCT FROM direct.f) AND (v.to_segment IS NOT DISTINCT FROM direct.t)
         WHERE (direct.n IS DISTINCT FROM v.customers)
            OR v.from_date <> DATE '2026-03-31' OR v.to_date <> DATE '2026-06-30'",
    )
    .await;
    assert_eq!(differences, 0);
    let moved = one_i64(&ctx, "SELECT sum(customers) FROM segment_transitions").await;
    assert_eq!(moved, 2000);
}

async fn load_dir(store: &Store, dir: &Path) {
    let hidden = indicatif::ProgressBar::hidden();
    for def in TABLES {
        let file = dir.join(format!("{}.csv", def.name));
        ingest_files(store, def.name, &[file], &IngestOptions::default(), &hidden)
            .await
            .unwrap();
    }
}

/// On generated data with a known true uplift, the 95 % interval of
/// promotion_effectiveness covers the truth for most promotions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_effectiveness_recovers_the_true_uplift() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("gen");
    let summary = generate(&GenerateOptions::new(20_000, 7, &out), &|_, _| {}).unwrap();
    let store = Store::init(&tmp.path().join("data")).await.unwrap();
    load_dir(&store, &out).await;
    let mut config = Config::default();
    config.crm.as_of = NaiveDate::from_ymd_opt(2026, 6, 30);
    let engine = Engine::open(store, Arc::new(config)).await.unwrap();
    let ctx = engine.session();
    let b = rows(
        &ctx,
        "SELECT promotion_id, treated_customers, control_customers, uplift_ci_low, uplift_ci_high
         FROM promotion_effectiveness ORDER BY promotion_id",
    )
    .await;
    let truth = read_truth(&summary.truth_file).unwrap();
    let mut covered = 0;
    let mut measured = 0;
    let mut i = 0;
    for batch in &b {
        let id = batch.column(0).as_primitive::<Int64Type>();
        let nt = batch.column(1).as_primitive::<Int64Type>();
        let nc = batch.column(2).as_primitive::<Int64Type>();
        let lo = batch.column(3).as_primitive::<Float64Type>();
        let hi = batch.column(4).as_primitive::<Float64Type>();
        for r in 0..batch.num_rows() {
            let t = &truth[i];
            i += 1;
            assert_eq!(id.value(r), t.promotion_id);
            assert_eq!(
                (nt.value(r) as u64, nc.value(r) as u64),
                (t.treated, t.control)
            );
            if lo.is_null(r) {
                continue;
            }
            measured += 1;
            if lo.value(r) <= t.true_uplift_completed && t.true_uplift_completed <= hi.value(r) {
                covered += 1;
            }
        }
    }
    assert_eq!(i, truth.len());
    assert_eq!(measured, 50);
    // Seed 7: the truth lies inside the interval for 48 of 50 promotions
    // (95 % intervals: about 47.5 expected).
    println!("covered {covered} of {measured}");
    assert_eq!(covered, COVERED);
}

const COVERED: usize = 48;

/// Over the wire: psql lists the views, `SET crm.as_of` works per connection
/// for any role, a bad value is refused.
#[test]
fn views_over_postgres() {
    use super::server::{query, query_error};
    let listed = query("viewer", "\\dv");
    for view in [
        "cohort_retention",
        "customer_metrics",
        "kpi_monthly",
        "promotion_effectiveness",
        "segment_summary",
        "segment_transitions",
    ] {
        assert!(
            listed.contains(&format!("public|{view}|view|")),
            "{view} missing from \\dv: {listed}"
        );
    }
    let all = query("analyst", "SELECT count(*) FROM customers");
    assert_ne!(all, "0");
    let metrics = "SELECT count(*) FROM customer_metrics";
    // Nobody had signed up by 2000; another connection still sees today.
    assert_eq!(
        query(
            "viewer",
            &format!("SET crm.as_of = '2000-01-01'; SHOW crm.as_of; {metrics}")
        ),
        "2000-01-01\n0"
    );
    assert_eq!(query("analyst", metrics), all);
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(query("analyst", "SHOW crm.as_of"), today);
    let e = query_error("analyst", "SET crm.as_of = 'soon'", "22023");
    assert!(
        e.contains("invalid value for crm.as_of: 'soon' (expected a date YYYY-MM-DD)"),
        "{e}"
    );
    query_error("analyst", "SET crm.asof = '2026-01-01'", "42704");
}

/// `[crm] refresh_schedule` under a test clock: each schedule time writes
/// the snapshot of its day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_refresh_writes_a_snapshot_per_day() {
    use chrono::{TimeZone, Utc};
    use crmdb::export::scheduler::{Clock, ManualClock};
    use crmdb::views::snapshot::RefreshSchedule;
    let (_dir, demo) = open_demo().await.unwrap();
    let mut config = Config::default();
    config.crm.refresh_schedule = Some("0 30 2 * * *".into());
    let engine = Engine::open(demo.store().clone(), Arc::new(config))
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 6, 29, 12, 0, 0).unwrap(),
    ));
    let schedule = RefreshSchedule::from_config(&engine, clock.clone())
        .unwrap()
        .unwrap();
    let first = schedule.tick().await.unwrap().unwrap();
    assert_eq!(
        clock.now(),
        Utc.with_ymd_and_hms(2026, 6, 30, 2, 30, 0).unwrap()
    );
    let second = schedule.tick().await.unwrap().unwrap();
    assert_eq!(
        (
            first.snapshot_date.to_string(),
            second.snapshot_date.to_string()
        ),
        ("2026-06-30".to_string(), "2026-07-01".to_string())
    );
    assert_eq!((first.rows, second.rows), (2000, 2000));
    let ctx = engine.session();
    assert_eq!(
        one_i64(
            &ctx,
            "SELECT sum(customers) FROM segment_transitions WHERE from_date = DATE '2026-06-30'"
        )
        .await,
        2000
    );

    let mut bad = Config::default();
    bad.crm.refresh_schedule = Some("every night".into());
    let e = bad.validate().unwrap_err().to_string();
    assert!(
        e.contains("crm.refresh_schedule: 'every night' is not a valid cron expression"),
        "{e}"
    );
}

/// Checksums of every view, for comparing two engines over the same store
/// (float sums rounded: summation order may differ in the last bits).
async fn view_checksums(ctx: &SessionContext) -> Vec<String> {
    let queries = [
        "SELECT count(*), sum(orders), sum(revenue), sum(r_score * 100 + f_score * 10 + m_score),
           count(DISTINCT rfm_segment), round(sum(p_alive), 6), sum(clv_12m), round(sum(value_score), 6),
           count(*) FILTER (WHERE churn_warning), count(DISTINCT member_tier || lifecycle_stage)
         FROM customer_metrics",
        "SELECT count(*), sum(customers), sum(revenue), sum(avg_clv_12m) FROM segment_summary",
        "SELECT count(*), sum(active_customers), sum(cumulative_revenue_per_customer) FROM cohort_retention",
        "SELECT count(*), sum(treated_responders), sum(control_responders), sum(incremental_revenue) FROM promotion_effectiveness",
        "SELECT count(*), sum(active_customers), sum(revenue), round(sum(churn_rate), 9) FROM kpi_monthly",
    ];
    let mut out = Vec::new();
    for q in queries {
        let b = rows(ctx, q).await;
        out.push(
            datafusion::arrow::util::pretty::pretty_format_batches(&b)
                .unwrap()
                .to_string(),
        );
    }
    out
}

/// Materialised view results (`[engine] view_cache`) answer exactly what the
/// views compute without them, and a load makes the next query see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialised_views_equal_computed_ones_and_follow_loads() {
    let (_dir, cached) = open_demo().await.unwrap();
    let mut config = (**cached.config()).clone();
    config.engine.view_cache = crmdb::config::ByteSize(0);
    let uncached = Engine::open(cached.store().clone(), Arc::new(config))
        .await
        .unwrap();
    let (a, b) = (cached.session(), uncached.session());
    let first = view_checksums(&a).await;
    assert_eq!(first, view_checksums(&b).await);
    // served from memory the second time, still the same answers
    assert_eq!(first, view_checksums(&a).await);
    // with other settings, another result
    rows(&a, "SET crm.as_of = '2025-06-30'").await;
    rows(&b, "SET crm.as_of = '2025-06-30'").await;
    let earlier = view_checksums(&a).await;
    assert_ne!(earlier, first);
    assert_eq!(earlier, view_checksums(&b).await);

    // A new order of customer 1 on the as-of day: the cached engine's next
    // query counts it.
    let query =
        "SELECT orders, CAST(revenue AS VARCHAR) FROM customer_metrics WHERE customer_id = 1";
    let c = cached.session();
    let before = rows(&c, query).await;
    let n0 = before[0].column(0).as_primitive::<Int64Type>().value(0);
    crmdb::ingest::ingest_bytes(
        cached.store(),
        "orders",
        b"order_id,customer_id,order_ts,channel,store_id,amount,discount,promotion_id,status\n\
          99999001,1,2026-06-30T12:00:00Z,web,,1000.00,,,completed\n",
        &IngestOptions::default(),
    )
    .await
    .unwrap();
    let after = rows(&c, query).await;
    assert_eq!(
        after[0].column(0).as_primitive::<Int64Type>().value(0),
        n0 + 1
    );
    assert_eq!(
        view_checksums(&cached.session()).await,
        view_checksums(&uncached.session()).await
    );
}
