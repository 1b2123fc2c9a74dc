//! `lifecycle_stage(first_order_ts, last_order_ts, orders, as_of [, new_days, active_days, churn_days])`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::rules::lifecycle::{Thresholds, stage};
use crate::util::{
    Kind, all_scalar, arrays, as_i64, as_micros, coerce_all, const_f64, days_between, finish,
};

/// `lifecycle_stage(...) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Lifecycle stage of a customer at `as_of`: `prospect` (orders = 0, whatever the timestamps), `new` (first order at most `new_days` before `as_of`), `active` (last order at most `active_days` before), `sleeping` (more than `active_days` and at most `churn_days`), `churned` (more than `churn_days`). Rules are applied in that order; days are elapsed time in days of 86,400 s (fractional), so exactly 30 days is still new and 30 days plus one second is not. NULL orders or as_of gives NULL; with orders > 0 a NULL first or last order gives NULL. An order after `as_of`, negative orders or bad thresholds are errors.",
    syntax_example = "lifecycle_stage(first_order_ts, last_order_ts, orders, as_of [, new_days, active_days, churn_days])",
    sql_example = r#"```sql
> SELECT lifecycle_stage(TIMESTAMP '2024-01-01', TIMESTAMP '2024-05-01', 4, TIMESTAMP '2024-06-01');
active
```"#,
    argument(
        name = "first_order_ts",
        description = "Time of the customer's first purchase (timestamp of any unit/zone, or date)."
    ),
    argument(
        name = "last_order_ts",
        description = "Time of the customer's last purchase (timestamp or date)."
    ),
    argument(name = "orders", description = "Number of purchases (integer ≥ 0)."),
    argument(name = "as_of", description = "Reference time (timestamp or date)."),
    argument(
        name = "new_days",
        description = "Days a first purchase counts as new; default 30."
    ),
    argument(
        name = "active_days",
        description = "Days since the last purchase a customer stays active; default 90."
    ),
    argument(
        name = "churn_days",
        description = "Days since the last purchase after which a customer is churned; default 180 (≥ active_days)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LifecycleStageFunc {
    signature: Signature,
}

impl Default for LifecycleStageFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl LifecycleStageFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LifecycleStageFunc {
    fn name(&self) -> &str {
        "lifecycle_stage"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("first_order_ts", Kind::Time),
                ("last_order_ts", Kind::Time),
                ("orders", Kind::Integer),
                ("as_of", Kind::Time),
                ("new_days", Kind::Number),
                ("active_days", Kind::Number),
                ("churn_days", Kind::Number),
            ],
            4,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let d = Thresholds::default();
        let t = Thresholds {
            new_days: const_f64(name, "new_days", args.args.get(4))?.unwrap_or(d.new_days),
            active_days: const_f64(name, "active_days", args.args.get(5))?.unwrap_or(d.active_days),
            churn_days: const_f64(name, "churn_days", args.args.get(6))?.unwrap_or(d.churn_days),
        };
        if let Err(e) = t.validate() {
            return exec_err!("{name}: {e}");
        }
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args[..4], args.number_rows)?;
        let (first, last, orders, as_of) = (
            as_micros(&a[0])?,
            as_micros(&a[1])?,
            as_i64(&a[2])?,
            as_micros(&a[3])?,
        );
        let mut out = StringBuilder::with_capacity(orders.len(), orders.len() * 8);
        for i in 0..orders.len() {
            if orders.is_null(i) || as_of.is_null(i) {
                out.append_null();
                continue;
            }
            let n = orders.value(i);
            if n < 0 {
                return exec_err!("{name}: argument orders must be ≥ 0, got {n}");
            }
            if n == 0 {
                out.append_value("prospect");
                continue;
            }
            if first.is_null(i) || last.is_null(i) {
                out.append_null();
                continue;
            }
            let now = as_of.value(i);
            for (arg, ts) in [
                ("first_order_ts", first.value(i)),
                ("last_order_ts", last.value(i)),
            ] {
                if ts > now {
                    return exec_err!(
                        "{name}: argument {arg} ({ts} µs) is after as_of ({now} µs); filter orders up to as_of"
                    );
                }
            }
            let s = stage(
                n,
                days_between(first.value(i), now),
                days_between(last.value(i), now),
                &t,
            );
            out.append_value(s.as_str());
        }
        finish(Arc::new(out.finish()), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fuzz::{Rng, i64s, times};
    use crate::util::{MICROS_PER_DAY, call_scalar};
    use datafusion::arrow::array::{AsArray, Int64Array, TimestampMicrosecondArray};
    use datafusion::common::ScalarValue;

    const AS_OF: i64 = 1_717_200_000_000_000; // 2024-06-01T00:00:00Z

    fn ts(days_before: f64) -> i64 {
        AS_OF - (days_before * MICROS_PER_DAY) as i64
    }

    fn run(
        rows: &[(Option<i64>, Option<i64>, Option<i64>)],
        extra: Vec<ColumnarValue>,
    ) -> Result<Vec<Option<String>>> {
        let first = TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .with_timezone("UTC");
        let last = TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
            .with_timezone("UTC");
        let orders = Int64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>());
        let mut args = vec![
            ColumnarValue::Array(Arc::new(first)),
            ColumnarValue::Array(Arc::new(last)),
            ColumnarValue::Array(Arc::new(orders)),
            ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(
                Some(AS_OF),
                Some("UTC".into()),
            )),
        ];
        args.extend(extra);
        let out = call_scalar(&LifecycleStageFunc::new(), args, rows.len())?;
        Ok(out
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_string))
            .collect())
    }

    #[test]
    fn both_sides_of_each_boundary() {
        let sec = 1.0 / 86_400.0;
        let rows = [
            (None, None, Some(0)),
            (Some(ts(30.0)), Some(ts(30.0)), Some(1)),
            (Some(ts(30.0 + sec)), Some(ts(30.0 + sec)), Some(1)),
            (Some(ts(400.0)), Some(ts(90.0)), Some(5)),
            (Some(ts(400.0)), Some(ts(90.0 + sec)), Some(5)),
            (Some(ts(400.0)), Some(ts(180.0)), Some(5)),
            (Some(ts(400.0)), Some(ts(180.0 + sec)), Some(5)),
            (Some(ts(400.0)), None, Some(5)),
            (Some(ts(1.0)), Some(ts(1.0)), None),
        ];
        let got = run(&rows, vec![]).unwrap();
        let want = [
            Some("prospect"),
            Some("new"),
            Some("active"),
            Some("active"),
            Some("sleeping"),
            Some("sleeping"),
            Some("churned"),
            None,
            None,
        ];
        assert_eq!(got, want.map(|s| s.map(str::to_string)));
    }

    #[test]
    fn custom_thresholds_and_errors_name_arguments() {
        let rows = [(Some(ts(400.0)), Some(ts(50.0)), Some(2))];
        let extra = |a: f64, b: f64, c: f64| {
            vec![
                ColumnarValue::Scalar(ScalarValue::Float64(Some(a))),
                ColumnarValue::Scalar(ScalarValue::Float64(Some(b))),
                ColumnarValue::Scalar(ScalarValue::Float64(Some(c))),
            ]
        };
        assert_eq!(
            run(&rows, extra(7.0, 30.0, 60.0)).unwrap(),
            [Some("sleeping".to_string())]
        );
        assert_eq!(
            run(&rows, extra(7.0, 30.0, 45.0)).unwrap(),
            [Some("churned".to_string())]
        );
        let e = run(&rows, extra(7.0, 90.0, 45.0)).unwrap_err().to_string();
        assert!(
            e.contains(
                "lifecycle_stage: argument active_days (90) must not exceed churn_days (45)"
            ),
            "{e}"
        );
        let e = run(&rows, extra(-1.0, 90.0, 180.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("argument new_days"), "{e}");
        let e = run(&[(Some(ts(-1.0)), Some(ts(-1.0)), Some(1))], vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("argument first_order_ts"), "{e}");
        let e = run(&[(Some(ts(5.0)), Some(ts(1.0)), Some(-1))], vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("argument orders must be ≥ 0, got -1"), "{e}");
    }

    #[test]
    fn coercion_names_the_argument() {
        let e = LifecycleStageFunc::new()
            .coerce_types(&[
                DataType::Utf8,
                DataType::Date32,
                DataType::Int32,
                DataType::Date32,
            ])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lifecycle_stage: argument first_order_ts must be a timestamp or date"),
            "{e}"
        );
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(11);
        for n in [0usize, 1, 7, 64] {
            for _ in 0..30 {
                let args = vec![
                    ColumnarValue::Array(times(&mut rng, n)),
                    ColumnarValue::Array(times(&mut rng, n)),
                    ColumnarValue::Array(i64s(&mut rng, n)),
                    ColumnarValue::Array(times(&mut rng, n)),
                ];
                let _ = call_scalar(&LifecycleStageFunc::new(), args, n);
            }
        }
    }
}
