//! `value_score(recency_days, frequency, monetary, engagement, social [, weights]) OVER (…)`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Float64Builder};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, PartitionEvaluator, Signature, Volatility, WindowUDFImpl,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion_macros::user_doc;

use crate::util::{Kind, as_f64, coerce_all, const_f64_list};

/// Default weights: recency, frequency, monetary, engagement, social.
pub const DEFAULT_WEIGHTS: [f64; 5] = [0.2, 0.25, 0.3, 0.15, 0.1];

/// `value_score(...) OVER (…) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Window function: a 0–100 customer value score = 100 · Σ wᵢ · pct_rank(cᵢ) over the partition, with c = (−recency_days, frequency, monetary, engagement, social). pct_rank is PERCENT_RANK's (values strictly below ÷ (n − 1), ties share; 0 when n = 1), computed per column over the rows where that column is not NULL/NaN. Default weights 0.2, 0.25, 0.3, 0.15, 0.1. A row with any NULL/NaN input gets NULL. The window frame and ORDER BY are ignored; the result depends only on the values in the partition.",
    syntax_example = "value_score(recency_days, frequency, monetary, engagement, social [, weights]) OVER ([PARTITION BY …])",
    sql_example = r#"```sql
> SELECT customer_id, value_score(recency_days, frequency, monetary, engagement, shares + 3 * referrals) OVER () FROM customer_features;
> SELECT value_score(r, f, m, e, s, [0.4, 0.2, 0.2, 0.1, 0.1]) OVER () FROM t;
```"#,
    argument(
        name = "recency_days",
        description = "Days since the last purchase (fewer is better)."
    ),
    argument(name = "frequency", description = "Number of purchases."),
    argument(name = "monetary", description = "Spend (decimal or float)."),
    argument(
        name = "engagement",
        description = "Engagement count (visits, opens, clicks …)."
    ),
    argument(
        name = "social",
        description = "Social influence, e.g. shares + k · successful referrals."
    ),
    argument(
        name = "weights",
        description = "Optional constant array of 5 non-negative weights in the order above, summing to 1 (± 1e-6)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ValueScoreFunc {
    signature: Signature,
}

impl Default for ValueScoreFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ValueScoreFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Check weights: 5 non-negative numbers summing to 1.
pub fn check_weights(w: &[f64]) -> Result<[f64; 5]> {
    let Ok(arr) = <[f64; 5]>::try_from(w) else {
        return plan_err!(
            "value_score: argument weights must hold 5 numbers, got {}",
            w.len()
        );
    };
    if arr.iter().any(|x| *x < 0.0) {
        return plan_err!("value_score: argument weights must be non-negative, got {w:?}");
    }
    let sum: f64 = arr.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return plan_err!("value_score: argument weights must sum to 1, got {w:?} (sum {sum})");
    }
    Ok(arr)
}

/// Percent ranks (higher value = higher rank) of a column; `negate` ranks lower values higher.
fn pct_ranks(a: &Float64Array, negate: bool) -> Vec<Option<f64>> {
    let mut sorted: Vec<f64> = a.iter().flatten().filter(|x| !x.is_nan()).collect();
    sorted.sort_unstable_by(f64::total_cmp);
    let n = sorted.len();
    a.iter()
        .map(|v| {
            let v = v.filter(|x| !x.is_nan())?;
            if n <= 1 {
                return Some(0.0);
            }
            let below = if negate {
                n - sorted.partition_point(|x| *x <= v)
            } else {
                sorted.partition_point(|x| *x < v)
            };
            Some(below as f64 / (n - 1) as f64)
        })
        .collect()
}

/// The value score of one partition.
pub fn value_partition(values: &[ArrayRef], w: &[f64; 5]) -> Result<ArrayRef> {
    if values.len() < 5 {
        return exec_err!(
            "value_score: expected 5 value columns, got {}",
            values.len()
        );
    }
    let ranks: Vec<Vec<Option<f64>>> = (0..5)
        .map(|i| Ok(pct_ranks(&as_f64(&values[i])?, i == 0)))
        .collect::<Result<_>>()?;
    let n = values[0].len();
    let mut out = Float64Builder::with_capacity(n);
    for row in 0..n {
        let mut total = 0.0;
        let mut ok = true;
        for (col, wi) in ranks.iter().zip(w) {
            match col[row] {
                Some(p) => total += wi * p,
                None => ok = false,
            }
        }
        out.append_option(ok.then_some(100.0 * total));
    }
    Ok(Arc::new(out.finish()))
}

#[derive(Debug)]
struct ValueScoreEvaluator {
    weights: [f64; 5],
}

impl PartitionEvaluator for ValueScoreEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], _num_rows: usize) -> Result<ArrayRef> {
        value_partition(values, &self.weights)
    }
}

impl WindowUDFImpl for ValueScoreFunc {
    fn name(&self) -> &str {
        "value_score"
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
                ("engagement", Kind::Number),
                ("social", Kind::Number),
                ("weights", Kind::NumberList),
            ],
            5,
            arg_types,
        )
    }
    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let weights = match args.input_exprs().get(5) {
            None => DEFAULT_WEIGHTS,
            Some(expr) => {
                let Some(lit) = expr.downcast_ref::<Literal>() else {
                    return plan_err!("value_score: argument weights must be a constant array");
                };
                match const_f64_list(
                    self.name(),
                    "weights",
                    &ColumnarValue::Scalar(lit.value().clone()),
                )? {
                    None => DEFAULT_WEIGHTS,
                    Some(w) => check_weights(&w)?,
                }
            }
        };
        Ok(Box::new(ValueScoreEvaluator { weights }))
    }
    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fuzz::{Rng, f64s};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float64Type;

    fn col(v: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    #[test]
    fn weighted_percent_ranks() {
        // Three customers; customer 0 is best on everything, 2 worst, 1 in the middle.
        let cols = vec![
            col(&[Some(1.0), Some(10.0), Some(100.0)]),
            col(&[Some(9.0), Some(5.0), Some(1.0)]),
            col(&[Some(900.0), Some(500.0), Some(100.0)]),
            col(&[Some(3.0), Some(2.0), Some(1.0)]),
            col(&[Some(2.0), Some(2.0), None]),
        ];
        let out = value_partition(&cols, &DEFAULT_WEIGHTS).unwrap();
        let v: Vec<Option<f64>> = out.as_primitive::<Float64Type>().iter().collect();
        // Social ranks over the 2 non-NULL rows: tie → 0 for both.
        assert_eq!(v[0], Some(100.0 * (0.2 + 0.25 + 0.3 + 0.15)));
        assert!((v[1].unwrap() - 45.0).abs() < 1e-9, "{v:?}");
        assert_eq!(v[2], None);
    }

    #[test]
    fn weights_must_sum_to_one() {
        let e = check_weights(&[0.5, 0.5, 0.5, 0.0, 0.0])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("value_score: argument weights must sum to 1"),
            "{e}"
        );
        assert!(
            check_weights(&[1.0])
                .unwrap_err()
                .to_string()
                .contains("must hold 5 numbers, got 1")
        );
        assert!(
            check_weights(&[-0.1, 0.3, 0.3, 0.3, 0.2])
                .unwrap_err()
                .to_string()
                .contains("non-negative")
        );
        assert_eq!(check_weights(&[0.2, 0.2, 0.2, 0.2, 0.2]).unwrap(), [0.2; 5]);
    }

    #[test]
    fn fuzz_no_panics_and_in_range() {
        let mut rng = Rng(43);
        for n in [0usize, 1, 2, 60] {
            for _ in 0..10 {
                let cols: Vec<ArrayRef> = (0..5).map(|_| f64s(&mut rng, n)).collect();
                let out = value_partition(&cols, &DEFAULT_WEIGHTS).unwrap();
                for v in out.as_primitive::<Float64Type>().iter().flatten() {
                    assert!((0.0..=100.0 + 1e-9).contains(&v), "{v}");
                }
            }
        }
    }
}
