//! `overdue_ratio(days_since_last, median_interval_days)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, Float64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{Kind, all_scalar, arrays, as_f64, coerce_all, finish};

/// `overdue_ratio(...) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "How overdue a customer is: days since the last purchase divided by the customer's median interval between purchases (both in days). 1 means exactly due, 2 means twice the usual gap; ≥ 2 with at least 3 orders is a common churn signal. NULL or NaN in either argument, or an interval of 0, gives NULL; negative or infinite values are errors.",
    syntax_example = "overdue_ratio(days_since_last, median_interval_days)",
    sql_example = r#"```sql
> SELECT overdue_ratio(45, 30);
1.5
```"#,
    argument(
        name = "days_since_last",
        description = "Days since the last purchase (number ≥ 0)."
    ),
    argument(
        name = "median_interval_days",
        description = "Median days between purchases, e.g. from `purchase_interval` (number ≥ 0)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OverdueRatioFunc {
    signature: Signature,
}

impl Default for OverdueRatioFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl OverdueRatioFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for OverdueRatioFunc {
    fn name(&self) -> &str {
        "overdue_ratio"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("days_since_last", Kind::Number),
                ("median_interval_days", Kind::Number),
            ],
            2,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args, args.number_rows)?;
        let (days, interval) = (as_f64(&a[0])?, as_f64(&a[1])?);
        let mut out = Float64Builder::with_capacity(days.len());
        for i in 0..days.len() {
            if days.is_null(i) || interval.is_null(i) {
                out.append_null();
                continue;
            }
            let (d, iv) = (days.value(i), interval.value(i));
            if d.is_nan() || iv.is_nan() || iv == 0.0 {
                out.append_null();
                continue;
            }
            for (arg, v) in [("days_since_last", d), ("median_interval_days", iv)] {
                if v < 0.0 || v.is_infinite() {
                    return exec_err!(
                        "overdue_ratio: argument {arg} must be a finite number of days ≥ 0, got {v}"
                    );
                }
            }
            out.append_value(d / iv);
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
    use crate::util::call_scalar;
    use crate::util::fuzz::{Rng, f64s};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float64Type;
    use datafusion::common::ScalarValue;

    fn run(d: Option<f64>, iv: Option<f64>) -> Result<Option<f64>> {
        let f = |v| ColumnarValue::Scalar(ScalarValue::Float64(v));
        let out = call_scalar(&OverdueRatioFunc::new(), vec![f(d), f(iv)], 1)?;
        Ok(out.as_primitive::<Float64Type>().iter().next().flatten())
    }

    #[test]
    fn ratio_and_edge_cases() {
        assert_eq!(run(Some(45.0), Some(30.0)).unwrap(), Some(1.5));
        assert_eq!(run(Some(0.0), Some(30.0)).unwrap(), Some(0.0));
        assert_eq!(run(Some(10.0), Some(0.0)).unwrap(), None);
        assert_eq!(run(None, Some(3.0)).unwrap(), None);
        assert_eq!(run(Some(f64::NAN), Some(3.0)).unwrap(), None);
        let e = run(Some(-1.0), Some(3.0)).unwrap_err().to_string();
        assert!(e.contains("overdue_ratio: argument days_since_last must be a finite number of days ≥ 0, got -1"), "{e}");
        assert!(
            run(Some(1.0), Some(f64::INFINITY))
                .unwrap_err()
                .to_string()
                .contains("median_interval_days")
        );
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(19);
        for n in [0usize, 1, 40] {
            for _ in 0..20 {
                let args = vec![
                    ColumnarValue::Array(f64s(&mut rng, n)),
                    ColumnarValue::Array(f64s(&mut rng, n)),
                ];
                let _ = call_scalar(&OverdueRatioFunc::new(), args, n);
            }
        }
    }
}
