//! `rfm_score_fixed(recency_days, frequency, monetary, r_edges, f_edges, m_edges)`.

use datafusion::arrow::array::Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::{RfmBuilder, rfm_type};
use crate::rules::rfm::{fixed_higher_better, fixed_lower_better};
use crate::util::{Kind, all_scalar, arrays, as_f64, coerce_all, const_f64_list, finish};

/// `rfm_score_fixed(...) -> Struct {r, f, m, code}`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "RFM scores against fixed business thresholds, so that scores and segments stay stable over time (unlike the quantiles of `rfm_score`). Each edges argument is a constant, strictly increasing array of 2 to 9 numbers giving len + 1 scores. Recency edges are 'at most' days: R = len + 1 − #{edges < recency_days}, so with `[30, 60, 90, 180]` 30 days scores 5, 31 days 4, more than 180 days 1. Frequency and monetary edges are 'at least' values: score = 1 + #{edges ≤ value}, so with `[2, 3, 5, 10]` 1 order scores 1, 2 orders 2, 10 or more 5. Returns the same struct {r, f, m, code} as `rfm_score`; NULL or NaN inputs give NULL scores.",
    syntax_example = "rfm_score_fixed(recency_days, frequency, monetary, r_edges, f_edges, m_edges)",
    sql_example = r#"```sql
> SELECT rfm_score_fixed(12, 4, 830.00, [30, 60, 90, 180], [2, 3, 5, 10], [100, 300, 1000, 3000])['code'];
533
```"#,
    argument(
        name = "recency_days",
        description = "Days since the last purchase (number)."
    ),
    argument(name = "frequency", description = "Number of purchases (number)."),
    argument(name = "monetary", description = "Spend (decimal or float)."),
    argument(
        name = "r_edges",
        description = "Recency thresholds in days, increasing (array)."
    ),
    argument(
        name = "f_edges",
        description = "Frequency thresholds, increasing (array)."
    ),
    argument(
        name = "m_edges",
        description = "Monetary thresholds, increasing (array)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RfmScoreFixedFunc {
    signature: Signature,
}

impl Default for RfmScoreFixedFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl RfmScoreFixedFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn edges(arg: &str, v: &ColumnarValue) -> Result<Option<Vec<f64>>> {
    let Some(e) = const_f64_list("rfm_score_fixed", arg, v)? else {
        return Ok(None);
    };
    if !(2..=9).contains(&e.len()) {
        return exec_err!(
            "rfm_score_fixed: argument {arg} must hold 2 to 9 edges, got {}",
            e.len()
        );
    }
    if e.windows(2).any(|w| w[0] >= w[1]) {
        return exec_err!("rfm_score_fixed: argument {arg} must be strictly increasing, got {e:?}");
    }
    Ok(Some(e))
}

impl ScalarUDFImpl for RfmScoreFixedFunc {
    fn name(&self) -> &str {
        "rfm_score_fixed"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("recency_days", Kind::Number),
                ("frequency", Kind::Number),
                ("monetary", Kind::Number),
                ("r_edges", Kind::NumberList),
                ("f_edges", Kind::NumberList),
                ("m_edges", Kind::NumberList),
            ],
            6,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(rfm_type())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = all_scalar(&args.args);
        let re = edges("r_edges", &args.args[3])?;
        let fe = edges("f_edges", &args.args[4])?;
        let me = edges("m_edges", &args.args[5])?;
        let a = arrays(&args.args[..3], args.number_rows)?;
        let (r, f, m) = (as_f64(&a[0])?, as_f64(&a[1])?, as_f64(&a[2])?);
        let mut out = RfmBuilder::with_capacity(r.len());
        let score = |a: &datafusion::arrow::array::Float64Array,
                     i: usize,
                     e: &Option<Vec<f64>>,
                     lower: bool| {
            let e = e.as_ref()?;
            if a.is_null(i) || a.value(i).is_nan() {
                return None;
            }
            let v = a.value(i);
            Some(if lower {
                fixed_lower_better(v, e)
            } else {
                fixed_higher_better(v, e)
            })
        };
        for i in 0..r.len() {
            out.append(
                score(&r, i, &re, true),
                score(&f, i, &fe, false),
                score(&m, i, &me, false),
            );
        }
        finish(out.finish(), scalar)
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
    use std::sync::Arc;

    fn list(v: &[f64]) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::List(ScalarValue::new_list_nullable(
            &v.iter()
                .map(|x| ScalarValue::Float64(Some(*x)))
                .collect::<Vec<_>>(),
            &DataType::Float64,
        )))
    }

    fn num(v: f64) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Float64(Some(v)))
    }

    fn code(r: f64, f: f64, m: f64) -> Result<Option<String>> {
        let args = vec![
            num(r),
            num(f),
            num(m),
            list(&[30.0, 60.0, 90.0, 180.0]),
            list(&[2.0, 3.0, 5.0, 10.0]),
            list(&[100.0, 300.0, 1000.0, 3000.0]),
        ];
        let out = call_scalar(&RfmScoreFixedFunc::new(), args, 1)?;
        let s = out.as_struct();
        Ok(s.column(3)
            .as_string::<i32>()
            .iter()
            .next()
            .flatten()
            .map(str::to_string))
    }

    #[test]
    fn fixed_edges_both_sides() {
        assert_eq!(code(12.0, 4.0, 830.0).unwrap().as_deref(), Some("533"));
        assert_eq!(code(30.0, 2.0, 100.0).unwrap().as_deref(), Some("522"));
        assert_eq!(code(30.5, 1.0, 99.99).unwrap().as_deref(), Some("411"));
        assert_eq!(code(181.0, 10.0, 3000.0).unwrap().as_deref(), Some("155"));
        assert_eq!(code(f64::NAN, 10.0, 3000.0).unwrap(), None);
    }

    #[test]
    fn bad_edges_name_the_argument() {
        let run = |e: &[f64]| {
            let args = vec![
                num(1.0),
                num(1.0),
                num(1.0),
                list(&[1.0, 2.0]),
                list(e),
                list(&[1.0, 2.0]),
            ];
            call_scalar(&RfmScoreFixedFunc::new(), args, 1)
                .unwrap_err()
                .to_string()
        };
        assert!(run(&[3.0, 2.0]).contains("argument f_edges must be strictly increasing"));
        assert!(run(&[3.0]).contains("argument f_edges must hold 2 to 9 edges, got 1"));
        assert!(run(&[1.0, f64::INFINITY]).contains("argument f_edges must hold finite numbers"));
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(5);
        for n in [0usize, 1, 50] {
            for _ in 0..20 {
                let args = vec![
                    ColumnarValue::Array(f64s(&mut rng, n)),
                    ColumnarValue::Array(f64s(&mut rng, n)),
                    ColumnarValue::Array(f64s(&mut rng, n)),
                    list(&[1.0, 2.0]),
                    list(&[1.0, 5.0, 9.0]),
                    list(&[0.0, 1e9]),
                ];
                let out = call_scalar(&RfmScoreFixedFunc::new(), args, n).unwrap();
                assert_eq!(out.len(), n);
            }
        }
        let _ = Arc::new(0);
    }
}
