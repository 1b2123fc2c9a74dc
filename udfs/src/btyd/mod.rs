//! CRM functions: "buy 'til you die" customer-base models and CLV.
//!
//! - `btyd_summary`, `btyd_holdout` (aggregates): orders → per-customer summary.
//! - `bgnbd_fit`, `paretonbd_fit`, `mbgnbd_fit`, `gamma_gamma_fit`
//!   (aggregates): maximum-likelihood fits → parameter structs.
//! - `bgnbd_expected_purchases`, `bgnbd_p_alive`, `bgnbd_probability_of_n`,
//!   `paretonbd_expected_purchases`, `paretonbd_p_alive`,
//!   `mbgnbd_expected_purchases`, `mbgnbd_p_alive`, `mbgnbd_probability_of_n`,
//!   `gamma_gamma_expected_value`, `clv` (scalars): take a parameter struct first.
//!
//! The models themselves live in [`crate::rules::btyd`].

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use crate::Functions;

pub mod bgnbd_expected_purchases;
pub mod bgnbd_fit;
pub mod bgnbd_p_alive;
pub mod bgnbd_probability_of_n;
pub mod btyd_summary;
pub mod clv;
mod collect;
mod common;
pub mod gamma_gamma_expected_value;
pub mod gamma_gamma_fit;
pub mod mbgnbd_expected_purchases;
pub mod mbgnbd_fit;
pub mod mbgnbd_p_alive;
pub mod mbgnbd_probability_of_n;
pub mod paretonbd_expected_purchases;
pub mod paretonbd_fit;
pub mod paretonbd_p_alive;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![
            Arc::new(ScalarUDF::new_from_impl(
                bgnbd_expected_purchases::BgnbdExpectedPurchasesFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                bgnbd_p_alive::BgnbdPAliveFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                bgnbd_probability_of_n::BgnbdProbabilityOfNFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                gamma_gamma_expected_value::GammaGammaExpectedValueFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                paretonbd_expected_purchases::ParetonbdExpectedPurchasesFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                paretonbd_p_alive::ParetonbdPAliveFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                mbgnbd_expected_purchases::MbgnbdExpectedPurchasesFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                mbgnbd_p_alive::MbgnbdPAliveFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(
                mbgnbd_probability_of_n::MbgnbdProbabilityOfNFunc::new(),
            )),
            Arc::new(ScalarUDF::new_from_impl(clv::ClvFunc::new())),
        ],
        aggregate: vec![
            Arc::new(AggregateUDF::new_from_impl(
                btyd_summary::BtydSummaryFunc::new(),
            )),
            Arc::new(AggregateUDF::new_from_impl(
                btyd_summary::BtydHoldoutFunc::new(),
            )),
            Arc::new(AggregateUDF::new_from_impl(bgnbd_fit::BgnbdFitFunc::new())),
            Arc::new(AggregateUDF::new_from_impl(
                paretonbd_fit::ParetonbdFitFunc::new(),
            )),
            Arc::new(AggregateUDF::new_from_impl(mbgnbd_fit::MbgnbdFitFunc::new())),
            Arc::new(AggregateUDF::new_from_impl(
                gamma_gamma_fit::GammaGammaFitFunc::new(),
            )),
        ],
        window: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        Array, AsArray, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    async fn ctx_with(name: &str, batch: RecordBatch) -> SessionContext {
        let ctx = SessionContext::new();
        crate::register_all(&ctx);
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
        ctx.register_table(name, Arc::new(table)).unwrap();
        ctx
    }

    async fn f64s(ctx: &SessionContext, sql: &str) -> Vec<f64> {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let mut out = Vec::new();
        for b in batches {
            let c = datafusion::arrow::compute::cast(b.column(0), &DataType::Float64).unwrap();
            out.extend(c.as_primitive::<Float64Type>().iter().map(|v| v.unwrap()));
        }
        out
    }

    /// The CDNOW summary of the lifetimes fixture, as a table, through SQL:
    /// fits CROSS JOINed to the customers give lifetimes' numbers.
    #[tokio::test]
    async fn btyd_sql_fit_and_clv_agree_with_lifetimes() {
        let fx: serde_json::Value =
            serde_json::from_str(include_str!("../../tests-py/lifetimes_cdnow.json")).unwrap();
        let rows = fx["customers"].as_array().unwrap();
        let col = |k: usize| -> Arc<dyn Array> {
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r[k].as_f64().unwrap()),
            ))
        };
        let ids = Arc::new(Int64Array::from_iter_values(0..rows.len() as i64));
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("frequency", DataType::Float64, false),
            Field::new("recency", DataType::Float64, false),
            Field::new("t", DataType::Float64, false),
            Field::new("monetary_value", DataType::Float64, false),
            Field::new("clv_lifetimes", DataType::Float64, false),
            Field::new("p_alive_lifetimes", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![ids, col(0), col(1), col(2), col(3), col(6), col(4)],
        )
        .unwrap();
        let ctx = ctx_with("cdnow", batch).await;
        let r = f64s(
            &ctx,
            "SELECT bgnbd_fit(frequency, recency, t)['r'] FROM cdnow",
        )
        .await;
        assert!((r[0] / fx["bgnbd"]["r"].as_f64().unwrap() - 1.0).abs() < 1e-3);
        let worst = f64s(
            &ctx,
            "WITH bg AS (SELECT bgnbd_fit(frequency, recency, t) AS p FROM cdnow),
                  gg AS (SELECT gamma_gamma_fit(frequency, monetary_value) AS p FROM cdnow)
             SELECT max(greatest(
                 abs(clv(bg.p, gg.p, frequency, recency, t, monetary_value, 12, 0.01, 7, 30.415) / clv_lifetimes - 1),
                 abs(bgnbd_p_alive(bg.p, frequency, recency, t) / p_alive_lifetimes - 1)))
             FROM cdnow CROSS JOIN bg CROSS JOIN gg",
        )
        .await;
        assert!(worst[0] < 1e-3, "worst relative difference {}", worst[0]);
        let conv = f64s(
            &ctx,
            "SELECT CAST(bgnbd_fit(frequency, recency, t)['converged'] AS DOUBLE) * bgnbd_fit(frequency, recency, t)['n'] FROM cdnow",
        )
        .await;
        assert_eq!(conv, vec![2357.0]);
    }

    /// Pareto/NBD and MBG/NBD through SQL on the CDNOW fixture: fitted
    /// parameters, P(alive), expected purchases and MBG P(N = n) agree with
    /// lifetimes to 1e-3 relative.
    #[tokio::test]
    async fn btyd_sql_pareto_mbg_agree_with_lifetimes() {
        let fx: serde_json::Value =
            serde_json::from_str(include_str!("../../tests-py/lifetimes_cdnow.json")).unwrap();
        let rows = fx["customers"].as_array().unwrap();
        let col = |k: usize| -> Arc<dyn Array> {
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r[k].as_f64().unwrap()),
            ))
        };
        let names = [
            "frequency",
            "recency",
            "t",
            "pn_alive",
            "pn_expected",
            "mb_alive",
            "mb_expected",
        ];
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, DataType::Float64, false))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            schema,
            vec![col(0), col(1), col(2), col(8), col(9), col(10), col(11)],
        )
        .unwrap();
        let ctx = ctx_with("cdnow", batch).await;
        for (model, fields) in [
            ("paretonbd", ["r", "alpha", "s", "beta", "ll"]),
            ("mbgnbd", ["r", "alpha", "a", "b", "ll"]),
        ] {
            for f in fields {
                let got = f64s(
                    &ctx,
                    &format!("SELECT {model}_fit(frequency, recency, t)['{f}'] FROM cdnow"),
                )
                .await[0];
                let want = fx[model][f].as_f64().unwrap();
                assert!(
                    (got / want - 1.0).abs() < 1e-3,
                    "{model} {f}: {got} vs {want}"
                );
            }
        }
        let worst = f64s(
            &ctx,
            "WITH pn AS (SELECT paretonbd_fit(frequency, recency, t) AS p FROM cdnow),
                  mb AS (SELECT mbgnbd_fit(frequency, recency, t) AS p FROM cdnow)
             SELECT max(greatest(
                 abs(paretonbd_p_alive(pn.p, frequency, recency, t) / pn_alive - 1),
                 abs(paretonbd_expected_purchases(pn.p, 10, frequency, recency, t) / pn_expected - 1),
                 abs(mbgnbd_p_alive(mb.p, frequency, recency, t) / mb_alive - 1),
                 abs(mbgnbd_expected_purchases(mb.p, 10, frequency, recency, t) / mb_expected - 1)))
             FROM cdnow CROSS JOIN pn CROSS JOIN mb",
        )
        .await;
        assert!(worst[0] < 1e-3, "worst relative difference {}", worst[0]);
        let probs = f64s(
            &ctx,
            "WITH mb AS (SELECT mbgnbd_fit(frequency, recency, t) AS p FROM cdnow)
             SELECT mbgnbd_probability_of_n(mb.p, 10, n) FROM mb
             CROSS JOIN (VALUES (0), (1), (2), (3), (4), (5)) AS v(n) ORDER BY n",
        )
        .await;
        let want = fx["mbgnbd"]["probability_of_n"].as_array().unwrap();
        assert_eq!(probs.len(), want.len());
        for (got, w) in probs.iter().zip(want) {
            let w = w.as_f64().unwrap();
            assert!((got / w - 1.0).abs() < 1e-3, "P(N=n): {got} vs {w}");
        }
        // Struct fields and counts.
        let n = f64s(
            &ctx,
            "SELECT CAST(paretonbd_fit(frequency, recency, t, 0.0)['converged'] AS DOUBLE)
                    + mbgnbd_fit(frequency, recency, t)['n'] FROM cdnow",
        )
        .await;
        assert_eq!(n, vec![2358.0]);
    }

    /// Orders simulated from BG/NBD, summarised in days and in weeks: the
    /// whole SQL path gives the same CLV in both units.
    #[tokio::test]
    async fn btyd_sql_orders_to_clv_daily_equals_weekly() {
        let truth = crate::rules::btyd::bgnbd::Params {
            r: 0.5,
            alpha: 10.0,
            a: 0.8,
            b: 2.5,
        };
        // Simulated in days; every purchase day gets one order (two on
        // repeat days, to exercise same-day bucketing).
        let sim = crate::rules::btyd::bgnbd::tests::simulate(&truth, 3000, 200.0, 400.0, 17);
        let end_us: i64 = 20_000 * 86_400_000_000; // day 20,000
        let (mut cust, mut ts, mut amt) = (Vec::new(), Vec::new(), Vec::new());
        let mut repeat_days = 0.0;
        for (i, c) in sim.iter().enumerate() {
            let first_day = 20_000 - c.t.ceil() as i64;
            let last_day = first_day + c.t_x.floor() as i64;
            let days: Vec<i64> = (0..=c.x as i64)
                .map(|k| {
                    if c.x == 0.0 {
                        first_day
                    } else {
                        first_day + (last_day - first_day) * k / c.x as i64
                    }
                })
                .collect();
            let mut distinct = days.clone();
            distinct.dedup();
            repeat_days += (distinct.len() - 1) as f64;
            for (k, d) in days.iter().enumerate() {
                let n_orders = if k > 0 { 2 } else { 1 };
                for j in 0..n_orders {
                    cust.push(i as i64);
                    ts.push(d * 86_400_000_000 + 3_600_000_000 * (j + 1));
                    amt.push(10.0 + (i % 7) as f64 + k as f64);
                }
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new(
                "order_ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("amount", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(cust)),
                Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(Float64Array::from(amt)),
            ],
        )
        .unwrap();
        let ctx = ctx_with("orders", batch).await;
        let total = |unit: u32| {
            format!(
                "WITH s AS (SELECT customer_id, btyd_summary(order_ts, amount, to_timestamp_micros({end_us}), {unit}) AS s
                            FROM orders GROUP BY customer_id),
                      bg AS (SELECT bgnbd_fit(s['frequency'], s['recency'], s['t']) AS p FROM s),
                      gg AS (SELECT gamma_gamma_fit(s['frequency'], s['monetary_value']) AS p FROM s)
                 SELECT sum(clv(bg.p, gg.p, s['frequency'], s['recency'], s['t'], s['monetary_value'], 12, 0.01, {unit}))
                 FROM s CROSS JOIN bg CROSS JOIN gg"
            )
        };
        let daily = f64s(&ctx, &total(1)).await[0];
        let weekly = f64s(&ctx, &total(7)).await[0];
        assert!(daily > 0.0);
        assert!(
            (daily / weekly - 1.0).abs() < 1e-4,
            "daily {daily} weekly {weekly}"
        );
        // Same-day orders are one purchase: frequency = distinct purchase days − 1.
        let freq = f64s(
            &ctx,
            &format!("SELECT sum(s['frequency']) FROM (SELECT btyd_summary(order_ts, amount, to_timestamp_micros({end_us}), 7) AS s FROM orders GROUP BY customer_id)"),
        )
        .await;
        assert_eq!(freq, vec![repeat_days]);
    }

    #[tokio::test]
    async fn btyd_sql_errors_name_function_and_argument() {
        let ctx = SessionContext::new();
        crate::register_all(&ctx);
        for (sql, want) in [
            (
                "SELECT bgnbd_fit(f, r, t) FROM (VALUES (0, 0, 5), (0, 0, 3), (0, 0, 2)) AS v(f, r, t)",
                "bgnbd_fit: every customer has frequency 0",
            ),
            (
                "SELECT bgnbd_fit(f, r, t) FROM (VALUES (1, 1, 5), (0, 0, 3)) AS v(f, r, t)",
                "bgnbd_fit: needs at least 3 customers, got 2",
            ),
            (
                "SELECT bgnbd_fit(f, r, t) FROM (VALUES (1, 1, 5), (0, 0, 3), (2, 6, 4)) AS v(f, r, t)",
                "bgnbd_fit: argument recency must not exceed t, got 6",
            ),
            (
                "SELECT bgnbd_p_alive(named_struct('r', 1.0, 'alpha', 1.0, 'a', 1.0, 'b', 1.0), -1, 0, 3)",
                "bgnbd_p_alive: argument frequency must be a non-negative whole number, got -1",
            ),
            (
                "SELECT bgnbd_p_alive(1.0, 1, 0, 3)",
                "bgnbd_p_alive: argument params must be a parameter struct",
            ),
            (
                "SELECT paretonbd_fit(f, r, t) FROM (VALUES (0, 0, 5), (0, 0, 3), (0, 0, 2)) AS v(f, r, t)",
                "paretonbd_fit: every customer has frequency 0",
            ),
            (
                "SELECT mbgnbd_fit(f, r, t, p) FROM (VALUES (1, 1, 5, 0.1), (0, 0, 3, 0.2), (2, 2, 4, 0.1)) AS v(f, r, t, p)",
                "mbgnbd_fit: argument penalizer must be the same for every row, got 0.1 and 0.2",
            ),
            (
                "SELECT paretonbd_p_alive(named_struct('r', 1.0, 'alpha', 1.0, 'a', 1.0, 'b', 1.0), 1, 0, 3)",
                "paretonbd_p_alive: argument params must be a struct with a numeric field 's'",
            ),
            (
                "SELECT paretonbd_p_alive(named_struct('r', 0.5, 'alpha', 1.0, 's', 0.0, 'beta', 1.0), 1, 0, 3)",
                "paretonbd_p_alive: argument params field 's' must be positive, got 0",
            ),
            (
                "SELECT paretonbd_p_alive(named_struct('r', 1000000000.0, 'alpha', 1.0, 's', 0.5, 'beta', 1000000.0), 1, 0, 10)",
                "paretonbd_p_alive: cannot be evaluated for r=1000000000, alpha=1, s=0.5, beta=1000000, frequency=1, recency=0, t=10",
            ),
            (
                "SELECT mbgnbd_expected_purchases(named_struct('r', 1.0, 'alpha', 1.0, 'a', 1.0, 'b', 1.0), -1, 1, 0, 3)",
                "mbgnbd_expected_purchases: argument horizon must be non-negative, got -1",
            ),
            (
                "SELECT mbgnbd_probability_of_n(named_struct('r', 1.0, 'alpha', 1.0, 'a', 1.0, 'b', 1.0), 10, 1.5)",
                "mbgnbd_probability_of_n: argument n must be a whole number",
            ),
            (
                "SELECT btyd_summary(TIMESTAMP '2025-01-01 00:00:00', -5, TIMESTAMP '2025-02-01 00:00:00', 7)",
                "btyd_summary: argument amount must be non-negative, got -5",
            ),
        ] {
            let err = match ctx.sql(sql).await {
                Ok(df) => df.collect().await.unwrap_err().to_string(),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(want), "{sql}\n got: {err}");
        }
    }
}
