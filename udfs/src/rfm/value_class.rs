//! `value_class(r, f, m, first_order_ts, as_of)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::rules::rfm::{Segment, segment};
use crate::util::{Kind, all_scalar, arrays, as_i64, as_micros, coerce_all, days_between, finish};

/// Days within which a first purchase makes a customer `new`.
pub const NEW_DAYS: f64 = 30.0;

/// `value_class(...) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "The retail four-class view of a customer: `new` when the first purchase is at most 30 days (of 86,400 s) before `as_of`; otherwise by the `rfm_segment` of the scores: `high_value` (Champions, Loyal), `potential` (Potential Loyalist, New Customers, Promising, Need Attention), `sleeping` (About To Sleep, At Risk, Can't Lose Them, Hibernating, Lost). NULL in any argument gives NULL; scores outside 1–5 and a first order after as_of are errors.",
    syntax_example = "value_class(r, f, m, first_order_ts, as_of)",
    sql_example = r#"```sql
> SELECT value_class(5, 5, 4, TIMESTAMP '2023-01-10', TIMESTAMP '2024-06-01');
high_value
```"#,
    argument(name = "r", description = "Recency score 1–5."),
    argument(name = "f", description = "Frequency score 1–5."),
    argument(name = "m", description = "Monetary score 1–5."),
    argument(
        name = "first_order_ts",
        description = "Time of the first purchase (timestamp or date)."
    ),
    argument(name = "as_of", description = "Reference time (timestamp or date).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ValueClassFunc {
    signature: Signature,
}

impl Default for ValueClassFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ValueClassFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The class of a segment (for customers who are not new).
pub fn class_of(s: Segment) -> &'static str {
    use Segment::*;
    match s {
        Champions | Loyal => "high_value",
        PotentialLoyalist | NewCustomers | Promising | NeedAttention => "potential",
        AboutToSleep | AtRisk | CantLoseThem | Hibernating | Lost => "sleeping",
    }
}

impl ScalarUDFImpl for ValueClassFunc {
    fn name(&self) -> &str {
        "value_class"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("r", Kind::Integer),
                ("f", Kind::Integer),
                ("m", Kind::Integer),
                ("first_order_ts", Kind::Time),
                ("as_of", Kind::Time),
            ],
            5,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args, args.number_rows)?;
        let (r, f, m) = (as_i64(&a[0])?, as_i64(&a[1])?, as_i64(&a[2])?);
        let (first, as_of) = (as_micros(&a[3])?, as_micros(&a[4])?);
        let mut out = StringBuilder::with_capacity(r.len(), r.len() * 9);
        for i in 0..r.len() {
            if [&r, &f, &m, &first, &as_of].iter().any(|c| c.is_null(i)) {
                out.append_null();
                continue;
            }
            let (fo, now) = (first.value(i), as_of.value(i));
            if fo > now {
                return exec_err!(
                    "value_class: argument first_order_ts ({fo} µs) is after as_of ({now} µs)"
                );
            }
            for (name, v) in [("r", r.value(i)), ("f", f.value(i)), ("m", m.value(i))] {
                if !(1..=5).contains(&v) {
                    return exec_err!(
                        "value_class: argument {name} must be a score from 1 to 5, got {v}"
                    );
                }
            }
            if days_between(fo, now) <= NEW_DAYS {
                out.append_value("new");
            } else {
                match segment(r.value(i), f.value(i), m.value(i)) {
                    Some(s) => out.append_value(class_of(s)),
                    None => out.append_null(),
                }
            }
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

    fn run(r: i64, f: i64, m: i64, days_before: f64) -> Result<Option<String>> {
        let i = |v| ColumnarValue::Scalar(ScalarValue::Int64(Some(v)));
        let t = |v| {
            ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let args = vec![
            i(r),
            i(f),
            i(m),
            t(AS_OF - (days_before * MICROS_PER_DAY) as i64),
            t(AS_OF),
        ];
        let out = call_scalar(&ValueClassFunc::new(), args, 1)?;
        Ok(out
            .as_string::<i32>()
            .iter()
            .next()
            .flatten()
            .map(str::to_string))
    }

    #[test]
    fn classes() {
        assert_eq!(run(5, 5, 4, 400.0).unwrap().as_deref(), Some("high_value"));
        assert_eq!(run(5, 5, 4, 30.0).unwrap().as_deref(), Some("new"));
        assert_eq!(run(5, 5, 4, 30.01).unwrap().as_deref(), Some("high_value"));
        assert_eq!(run(5, 1, 1, 31.0).unwrap().as_deref(), Some("potential"));
        assert_eq!(run(1, 1, 1, 400.0).unwrap().as_deref(), Some("sleeping"));
        assert!(
            run(0, 1, 1, 400.0)
                .unwrap_err()
                .to_string()
                .contains("argument r must be a score")
        );
        assert!(
            run(1, 1, 1, -1.0)
                .unwrap_err()
                .to_string()
                .contains("argument first_order_ts")
        );
    }

    #[test]
    fn every_segment_has_a_class() {
        let mut seen = std::collections::BTreeSet::new();
        for s in Segment::ALL {
            seen.insert(class_of(s));
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["high_value", "potential", "sleeping"]
        );
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(13);
        for n in [0usize, 1, 40] {
            for _ in 0..20 {
                let args = vec![
                    ColumnarValue::Array(i64s(&mut rng, n)),
                    ColumnarValue::Array(i64s(&mut rng, n)),
                    ColumnarValue::Array(i64s(&mut rng, n)),
                    ColumnarValue::Array(times(&mut rng, n)),
                    ColumnarValue::Array(times(&mut rng, n)),
                ];
                let _ = call_scalar(&ValueClassFunc::new(), args, n);
            }
        }
    }
}
