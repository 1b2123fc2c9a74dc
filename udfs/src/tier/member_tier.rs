//! `member_tier(spend_12m, orders_12m, engagement_12m [, thresholds])`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::rules::tier::{DEFAULT, from_slice, tier};
use crate::util::{Kind, all_scalar, arrays, as_f64, coerce_all, const_f64_list, finish};

/// `member_tier(...) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Membership tier from rolling 12-month activity: the highest of `silver`, `gold`, `platinum` whose every threshold (spend AND orders AND engagement) is met (≥), else `regular`. Default thresholds — silver: spend 1,000, 3 orders, engagement 0; gold: 5,000, 8, 10; platinum: 20,000, 20, 30. Pass your own as a constant array of 9 numbers [silver_spend, silver_orders, silver_engagement, gold_spend, gold_orders, gold_engagement, platinum_spend, platinum_orders, platinum_engagement]. NULL in any value gives NULL; NaN never meets a threshold; negative values are errors.",
    syntax_example = "member_tier(spend_12m, orders_12m, engagement_12m [, thresholds])",
    sql_example = r#"```sql
> SELECT member_tier(6200.00, 9, 12);
gold
> SELECT member_tier(6200.00, 9, 12, [500, 2, 0, 2000, 5, 5, 6000, 9, 10]);
platinum
```"#,
    argument(
        name = "spend_12m",
        description = "Spend over the last 12 months (decimal or float ≥ 0)."
    ),
    argument(
        name = "orders_12m",
        description = "Purchases over the last 12 months (number ≥ 0)."
    ),
    argument(
        name = "engagement_12m",
        description = "Engagement events (visits, opens, clicks, reviews …) over the last 12 months (number ≥ 0)."
    ),
    argument(
        name = "thresholds",
        description = "Optional constant array of 9 non-negative numbers, as above."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MemberTierFunc {
    signature: Signature,
}

impl Default for MemberTierFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MemberTierFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MemberTierFunc {
    fn name(&self) -> &str {
        "member_tier"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("spend_12m", Kind::Number),
                ("orders_12m", Kind::Number),
                ("engagement_12m", Kind::Number),
                ("thresholds", Kind::NumberList),
            ],
            3,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        let t = match args.args.get(3) {
            None => DEFAULT,
            Some(v) => match const_f64_list(name, "thresholds", v)? {
                None => DEFAULT,
                Some(list) => match from_slice(&list) {
                    Ok(t) => t,
                    Err(e) => return exec_err!("{name}: {e}"),
                },
            },
        };
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args[..3], args.number_rows)?;
        let (s, o, e) = (as_f64(&a[0])?, as_f64(&a[1])?, as_f64(&a[2])?);
        let mut out = StringBuilder::with_capacity(s.len(), s.len() * 7);
        for i in 0..s.len() {
            if s.is_null(i) || o.is_null(i) || e.is_null(i) {
                out.append_null();
                continue;
            }
            for (arg, v) in [
                ("spend_12m", s.value(i)),
                ("orders_12m", o.value(i)),
                ("engagement_12m", e.value(i)),
            ] {
                if v < 0.0 {
                    return exec_err!("{name}: argument {arg} must be ≥ 0, got {v}");
                }
            }
            out.append_value(tier(s.value(i), o.value(i), e.value(i), &t).as_str());
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
    use datafusion::common::ScalarValue;

    fn run(s: f64, o: f64, e: f64, t: Option<&[f64]>) -> Result<Option<String>> {
        let f = |v| ColumnarValue::Scalar(ScalarValue::Float64(Some(v)));
        let mut args = vec![f(s), f(o), f(e)];
        if let Some(t) = t {
            let items: Vec<ScalarValue> =
                t.iter().map(|x| ScalarValue::Float64(Some(*x))).collect();
            args.push(ColumnarValue::Scalar(ScalarValue::List(
                ScalarValue::new_list_nullable(&items, &DataType::Float64),
            )));
        }
        let out = call_scalar(&MemberTierFunc::new(), args, 1)?;
        Ok(out
            .as_string::<i32>()
            .iter()
            .next()
            .flatten()
            .map(str::to_string))
    }

    #[test]
    fn defaults_and_custom_thresholds() {
        assert_eq!(
            run(6200.0, 9.0, 12.0, None).unwrap().as_deref(),
            Some("gold")
        );
        assert_eq!(
            run(999.0, 9.0, 12.0, None).unwrap().as_deref(),
            Some("regular")
        );
        let t = [500.0, 2.0, 0.0, 2000.0, 5.0, 5.0, 6000.0, 9.0, 10.0];
        assert_eq!(
            run(6200.0, 9.0, 12.0, Some(&t)).unwrap().as_deref(),
            Some("platinum")
        );
        let e = run(1.0, 1.0, 1.0, Some(&[1.0, 2.0]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("member_tier: argument thresholds must hold 9 numbers"),
            "{e}"
        );
        let e = run(-1.0, 1.0, 1.0, None).unwrap_err().to_string();
        assert!(e.contains("argument spend_12m must be ≥ 0, got -1"), "{e}");
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(37);
        for n in [0usize, 1, 40] {
            for _ in 0..20 {
                let args = (0..3)
                    .map(|_| ColumnarValue::Array(f64s(&mut rng, n)))
                    .collect();
                let _ = call_scalar(&MemberTierFunc::new(), args, n);
            }
        }
    }
}
