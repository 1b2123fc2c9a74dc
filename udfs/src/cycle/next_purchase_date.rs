//! `next_purchase_date(last_order_ts, interval_days)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, TimestampMicrosecondBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{Kind, all_scalar, arrays, as_f64, as_micros, coerce_all, finish, ts_type};

/// `next_purchase_date(...) -> Timestamp(µs, UTC)`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Expected next purchase time: `last_order_ts` plus `interval_days` days (of 86,400 s; fractions allowed, rounded to the microsecond). Use the customer's median interval from `purchase_interval`, or a category's consumption cycle. Returns a UTC timestamp (cast to DATE for a day). NULL in either argument gives NULL; a negative or non-finite interval is an error.",
    syntax_example = "next_purchase_date(last_order_ts, interval_days)",
    sql_example = r#"```sql
> SELECT next_purchase_date(TIMESTAMP '2024-05-01T10:00:00Z', 30);
2024-05-31T10:00:00Z
```"#,
    argument(
        name = "last_order_ts",
        description = "Time of the last purchase (timestamp or date)."
    ),
    argument(
        name = "interval_days",
        description = "Days between purchases (number ≥ 0)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NextPurchaseDateFunc {
    signature: Signature,
}

impl Default for NextPurchaseDateFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl NextPurchaseDateFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for NextPurchaseDateFunc {
    fn name(&self) -> &str {
        "next_purchase_date"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("last_order_ts", Kind::Time),
                ("interval_days", Kind::Number),
            ],
            2,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(ts_type())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args, args.number_rows)?;
        let (last, interval) = (as_micros(&a[0])?, as_f64(&a[1])?);
        let mut out = TimestampMicrosecondBuilder::with_capacity(last.len());
        for i in 0..last.len() {
            if last.is_null(i) || interval.is_null(i) {
                out.append_null();
            } else {
                out.append_value(super::next_date(
                    self.name(),
                    last.value(i),
                    interval.value(i),
                )?);
            }
        }
        finish(Arc::new(out.finish().with_timezone("UTC")), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::call_scalar;
    use crate::util::fuzz::{Rng, f64s, times};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::TimestampMicrosecondType;
    use datafusion::common::ScalarValue;

    const T0: i64 = 1_714_557_600_000_000; // 2024-05-01T10:00:00Z

    fn run(interval: f64) -> Result<Option<i64>> {
        let args = vec![
            ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(
                Some(T0),
                Some("UTC".into()),
            )),
            ColumnarValue::Scalar(ScalarValue::Float64(Some(interval))),
        ];
        let out = call_scalar(&NextPurchaseDateFunc::new(), args, 1)?;
        Ok(out
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .next()
            .flatten())
    }

    #[test]
    fn adds_days() {
        assert_eq!(run(30.0).unwrap(), Some(1_717_149_600_000_000)); // 2024-05-31T10:00:00Z
        assert_eq!(run(0.5).unwrap(), Some(T0 + 43_200_000_000));
        assert!(
            run(-1.0)
                .unwrap_err()
                .to_string()
                .contains("next_purchase_date: argument interval_days")
        );
        assert!(
            run(f64::INFINITY)
                .unwrap_err()
                .to_string()
                .contains("argument interval_days")
        );
        assert!(run(1e300).is_err());
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(23);
        for n in [0usize, 1, 40] {
            for _ in 0..20 {
                let args = vec![
                    ColumnarValue::Array(times(&mut rng, n)),
                    ColumnarValue::Array(f64s(&mut rng, n)),
                ];
                let _ = call_scalar(&NextPurchaseDateFunc::new(), args, n);
            }
        }
    }
}
