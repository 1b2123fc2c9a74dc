//! `due_for_repurchase(last_order_ts, interval_days, as_of, lead_days)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, BooleanBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{
    Kind, MICROS_PER_DAY, all_scalar, arrays, as_f64, as_micros, coerce_all, finish,
};

/// `due_for_repurchase(...) -> Boolean`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "True when a customer is about to run out: `as_of` ≥ `next_purchase_date(last_order_ts, interval_days)` − `lead_days` days. Run it per customer and category (GROUP BY customer_id, category with `purchase_interval`) to find who to remind. Exactly at the reminder time counts as due. Stays true once overdue. NULL in any argument gives NULL; negative or non-finite interval or lead days are errors.",
    syntax_example = "due_for_repurchase(last_order_ts, interval_days, as_of, lead_days)",
    sql_example = r#"```sql
> SELECT due_for_repurchase(TIMESTAMP '2024-05-01', 30, TIMESTAMP '2024-05-25', 7);
true
```"#,
    argument(
        name = "last_order_ts",
        description = "Time of the last purchase (timestamp or date)."
    ),
    argument(
        name = "interval_days",
        description = "Consumption cycle in days (number ≥ 0)."
    ),
    argument(name = "as_of", description = "Reference time (timestamp or date)."),
    argument(
        name = "lead_days",
        description = "How many days before the expected date to remind (number ≥ 0)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DueForRepurchaseFunc {
    signature: Signature,
}

impl Default for DueForRepurchaseFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl DueForRepurchaseFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for DueForRepurchaseFunc {
    fn name(&self) -> &str {
        "due_for_repurchase"
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
                ("as_of", Kind::Time),
                ("lead_days", Kind::Number),
            ],
            4,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args, args.number_rows)?;
        let (last, interval, as_of, lead) = (
            as_micros(&a[0])?,
            as_f64(&a[1])?,
            as_micros(&a[2])?,
            as_f64(&a[3])?,
        );
        let mut out = BooleanBuilder::with_capacity(last.len());
        for i in 0..last.len() {
            if last.is_null(i) || interval.is_null(i) || as_of.is_null(i) || lead.is_null(i) {
                out.append_null();
                continue;
            }
            let l = lead.value(i);
            if !l.is_finite() || l < 0.0 {
                return exec_err!(
                    "{name}: argument lead_days must be a finite number of days ≥ 0, got {l}"
                );
            }
            let next = super::next_date(name, last.value(i), interval.value(i))?;
            // Compare in f64 days to stay clear of overflow at the edges of the range.
            let remind = next as f64 - l * MICROS_PER_DAY;
            out.append_value(as_of.value(i) as f64 >= remind);
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
    use crate::util::fuzz::{Rng, f64s, times};
    use datafusion::arrow::array::AsArray;
    use datafusion::common::ScalarValue;

    const T0: i64 = 1_714_521_600_000_000; // 2024-05-01T00:00:00Z
    const DAY: i64 = 86_400_000_000;

    fn run(as_of: i64, interval: f64, lead: f64) -> Result<Option<bool>> {
        let t = |v| {
            ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let f = |v| ColumnarValue::Scalar(ScalarValue::Float64(Some(v)));
        let out = call_scalar(
            &DueForRepurchaseFunc::new(),
            vec![t(T0), f(interval), t(as_of), f(lead)],
            1,
        )?;
        Ok(out.as_boolean().iter().next().flatten())
    }

    #[test]
    fn both_sides_of_the_reminder_time() {
        assert_eq!(run(T0 + 23 * DAY, 30.0, 7.0).unwrap(), Some(true));
        assert_eq!(run(T0 + 23 * DAY - 1, 30.0, 7.0).unwrap(), Some(false));
        assert_eq!(run(T0 + 90 * DAY, 30.0, 0.0).unwrap(), Some(true));
        assert!(
            run(T0, 30.0, -1.0)
                .unwrap_err()
                .to_string()
                .contains("argument lead_days")
        );
        assert!(
            run(T0, -3.0, 1.0)
                .unwrap_err()
                .to_string()
                .contains("argument interval_days")
        );
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(29);
        for n in [0usize, 1, 40] {
            for _ in 0..20 {
                let args = vec![
                    ColumnarValue::Array(times(&mut rng, n)),
                    ColumnarValue::Array(f64s(&mut rng, n)),
                    ColumnarValue::Array(times(&mut rng, n)),
                    ColumnarValue::Array(f64s(&mut rng, n)),
                ];
                let _ = call_scalar(&DueForRepurchaseFunc::new(), args, n);
            }
        }
    }
}
