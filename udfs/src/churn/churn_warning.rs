//! `churn_warning(last_order_ts, orders_90d_before_last, as_of [, quiet_days, min_orders])`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{
    Kind, all_scalar, arrays, as_i64, as_micros, coerce_all, const_f64, days_between, finish,
};

/// `churn_warning(...) -> Boolean`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "True for a previously frequent buyer who has gone quiet: at least `quiet_days` days (of 86,400 s, fractional) since the last purchase at `as_of` AND at least `min_orders` purchases in the 90 days before that last purchase. Defaults: 30 days quiet, 3 orders. Exactly 30 days quiet counts as quiet. NULL in any argument gives NULL; a last order after as_of, negative order counts or bad parameters are errors.",
    syntax_example = "churn_warning(last_order_ts, orders_90d_before_last, as_of [, quiet_days, min_orders])",
    sql_example = r#"```sql
> SELECT churn_warning(TIMESTAMP '2024-04-01', 5, TIMESTAMP '2024-06-01');
true
```"#,
    argument(
        name = "last_order_ts",
        description = "Time of the last purchase (timestamp or date)."
    ),
    argument(
        name = "orders_90d_before_last",
        description = "Purchases in the 90 days before the last purchase (integer ≥ 0)."
    ),
    argument(name = "as_of", description = "Reference time (timestamp or date)."),
    argument(
        name = "quiet_days",
        description = "Days without purchase that count as gone quiet (≥ 0); default 30."
    ),
    argument(
        name = "min_orders",
        description = "Purchases before the last one that make a frequent buyer (≥ 0); default 3."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ChurnWarningFunc {
    signature: Signature,
}

impl Default for ChurnWarningFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ChurnWarningFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ChurnWarningFunc {
    fn name(&self) -> &str {
        "churn_warning"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("last_order_ts", Kind::Time),
                ("orders_90d_before_last", Kind::Integer),
                ("as_of", Kind::Time),
                ("quiet_days", Kind::Number),
                ("min_orders", Kind::Number),
            ],
            3,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let quiet = const_f64(name, "quiet_days", args.args.get(3))?.unwrap_or(30.0);
        let min_orders = const_f64(name, "min_orders", args.args.get(4))?.unwrap_or(3.0);
        for (arg, v) in [("quiet_days", quiet), ("min_orders", min_orders)] {
            if !v.is_finite() || v < 0.0 {
                return exec_err!("{name}: argument {arg} must be a non-negative number, got {v}");
            }
        }
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args[..3], args.number_rows)?;
        let (last, orders, as_of) = (as_micros(&a[0])?, as_i64(&a[1])?, as_micros(&a[2])?);
        let mut out = BooleanBuilder::with_capacity(last.len());
        for i in 0..last.len() {
            if last.is_null(i) || orders.is_null(i) || as_of.is_null(i) {
                out.append_null();
                continue;
            }
            let (l, now, n) = (last.value(i), as_of.value(i), orders.value(i));
            if l > now {
                return exec_err!(
                    "{name}: argument last_order_ts ({l} µs) is after as_of ({now} µs)"
                );
            }
            if n < 0 {
                return exec_err!("{name}: argument orders_90d_before_last must be ≥ 0, got {n}");
            }
            out.append_value(days_between(l, now) >= quiet && n as f64 >= min_orders);
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
    use datafusion::arrow::array::AsArray;
    use datafusion::common::ScalarValue;

    const AS_OF: i64 = 1_717_200_000_000_000;

    fn run(days_quiet: f64, orders: i64, extra: &[f64]) -> Result<Option<bool>> {
        let t = |v| {
            ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let mut args = vec![
            t(AS_OF - (days_quiet * MICROS_PER_DAY) as i64),
            ColumnarValue::Scalar(ScalarValue::Int64(Some(orders))),
            t(AS_OF),
        ];
        args.extend(
            extra
                .iter()
                .map(|v| ColumnarValue::Scalar(ScalarValue::Float64(Some(*v)))),
        );
        let out = call_scalar(&ChurnWarningFunc::new(), args, 1)?;
        Ok(out.as_boolean().iter().next().flatten())
    }

    #[test]
    fn both_sides_of_defaults() {
        assert_eq!(run(30.0, 3, &[]).unwrap(), Some(true));
        assert_eq!(run(29.99, 3, &[]).unwrap(), Some(false));
        assert_eq!(run(60.0, 2, &[]).unwrap(), Some(false));
        assert_eq!(run(14.0, 1, &[14.0, 1.0]).unwrap(), Some(true));
        assert_eq!(run(13.0, 1, &[14.0, 1.0]).unwrap(), Some(false));
    }

    #[test]
    fn errors_name_the_argument() {
        assert!(
            run(30.0, -1, &[])
                .unwrap_err()
                .to_string()
                .contains("argument orders_90d_before_last")
        );
        assert!(
            run(30.0, 3, &[-1.0])
                .unwrap_err()
                .to_string()
                .contains("argument quiet_days")
        );
        assert!(
            run(-2.0, 3, &[])
                .unwrap_err()
                .to_string()
                .contains("argument last_order_ts")
        );
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(17);
        for n in [0usize, 1, 40] {
            for _ in 0..20 {
                let args = vec![
                    ColumnarValue::Array(times(&mut rng, n)),
                    ColumnarValue::Array(i64s(&mut rng, n)),
                    ColumnarValue::Array(times(&mut rng, n)),
                ];
                let _ = call_scalar(&ChurnWarningFunc::new(), args, n);
            }
        }
    }
}
