//! `rfm_score(recency_days, frequency, monetary [, bins]) OVER (…)`.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, Volatility, WindowUDFImpl,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion_macros::user_doc;

use super::{RfmBuilder, rfm_type};
use crate::rules::rfm::{score_higher_better, score_lower_better, thresholds};
use crate::util::{Kind, as_f64, coerce_all};

/// `rfm_score(recency_days, frequency, monetary [, bins]) OVER (…) -> Struct {r, f, m, code}`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "RFM scores of each row within its window partition, as a struct {r, f, m, code} of Int32 scores 1..bins (5 = best) and a Utf8 code (`\"545\"`; joined with `-` when bins = 10, e.g. `\"10-4-5\"`). Scores are value-based quintiles (R package `rfm` style): the partition's type-7 quantiles q_k at k/bins are the thresholds, F = 1 + #{k : frequency > q_k}, M likewise, and R = bins − #{k : recency_days > q_k} (fewest days = best). Equal values therefore always share a score (unlike NTILE), bins can be uneven, and the result depends only on the values in the partition, not on row order or how the data is split. The window frame and ORDER BY are ignored; use PARTITION BY to score within groups. NULL or NaN inputs are left out of the thresholds and get a NULL score (the code is NULL when any score is). Use the parts with `s['r']` / `get_field(s, 'r')` on the result (e.g. in a subquery or CTE): PostgreSQL clients handle plain integer columns better than structs.",
    syntax_example = "rfm_score(recency_days, frequency, monetary [, bins]) OVER ([PARTITION BY …])",
    sql_example = r#"```sql
> WITH s AS (SELECT customer_id, rfm_score(recency_days, frequency, monetary) OVER () AS rfm FROM rfm_input)
  SELECT customer_id, rfm['r'] AS r, rfm['f'] AS f, rfm['m'] AS m, rfm['code'] AS code FROM s;
```"#,
    argument(
        name = "recency_days",
        description = "Days since the last purchase (number; fewer is better)."
    ),
    argument(
        name = "frequency",
        description = "Number of purchases (number; more is better)."
    ),
    argument(
        name = "monetary",
        description = "Spend (decimal or float; more is better)."
    ),
    argument(
        name = "bins",
        description = "Number of scores, a constant integer from 3 to 10; default 5."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RfmScoreFunc {
    signature: Signature,
}

impl Default for RfmScoreFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl RfmScoreFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Read the constant `bins` argument (default 5), checking 3..=10.
pub(crate) fn read_bins(func: &str, args: &PartitionEvaluatorArgs, index: usize) -> Result<usize> {
    let Some(expr) = args.input_exprs().get(index) else {
        return Ok(5);
    };
    let Some(lit) = expr.downcast_ref::<Literal>() else {
        return plan_err!("{func}: argument bins must be a constant integer from 3 to 10");
    };
    let bins = match lit.value().cast_to(&DataType::Int64)? {
        ScalarValue::Int64(Some(b)) => b,
        v => return plan_err!("{func}: argument bins must be an integer from 3 to 10, got {v}"),
    };
    if !(3..=10).contains(&bins) {
        return plan_err!("{func}: argument bins must be an integer from 3 to 10, got {bins}");
    }
    Ok(bins as usize)
}

/// Sorted non-NULL, non-NaN values of a column.
pub(crate) fn sorted_values(a: &Float64Array) -> Vec<f64> {
    let mut v: Vec<f64> = a.iter().flatten().filter(|x| !x.is_nan()).collect();
    v.sort_unstable_by(f64::total_cmp);
    v
}

/// Score one column: `None` for NULL/NaN.
fn scores(a: &Float64Array, bins: usize, lower_better: bool) -> Vec<Option<i32>> {
    let q = thresholds(&sorted_values(a), bins);
    a.iter()
        .map(|v| {
            v.filter(|x| !x.is_nan()).map(|x| {
                if lower_better {
                    score_lower_better(x, &q)
                } else {
                    score_higher_better(x, &q)
                }
            })
        })
        .collect()
}

/// Compute the RFM struct for one partition.
pub fn rfm_partition(values: &[ArrayRef], bins: usize) -> Result<ArrayRef> {
    let [r, f, m] = [0, 1, 2].map(|i| values.get(i));
    let (Some(r), Some(f), Some(m)) = (r, f, m) else {
        return exec_err!("rfm_score: expected 3 value columns");
    };
    let r = scores(&as_f64(r)?, bins, true);
    let f = scores(&as_f64(f)?, bins, false);
    let m = scores(&as_f64(m)?, bins, false);
    let mut out = RfmBuilder::with_capacity(r.len());
    for ((r, f), m) in r.into_iter().zip(f).zip(m) {
        out.append(r, f, m);
    }
    Ok(out.finish())
}

#[derive(Debug)]
struct RfmScoreEvaluator {
    bins: usize,
}

impl PartitionEvaluator for RfmScoreEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], _num_rows: usize) -> Result<ArrayRef> {
        rfm_partition(values, self.bins)
    }
}

impl WindowUDFImpl for RfmScoreFunc {
    fn name(&self) -> &str {
        "rfm_score"
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
                ("bins", Kind::Integer),
            ],
            3,
            arg_types,
        )
    }
    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(RfmScoreEvaluator {
            bins: read_bins(self.name(), &args, 3)?,
        }))
    }
    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(field_args.name(), rfm_type(), true)))
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fuzz::{Rng, f64s};
    use datafusion::arrow::array::{AsArray, StructArray};
    use datafusion::arrow::datatypes::Int32Type;

    fn col(v: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    #[allow(clippy::type_complexity)]
    fn parts(
        a: &ArrayRef,
    ) -> (
        Vec<Option<i32>>,
        Vec<Option<i32>>,
        Vec<Option<i32>>,
        Vec<Option<String>>,
    ) {
        let s: &StructArray = a.as_struct();
        let g = |i: usize| {
            s.column(i)
                .as_primitive::<Int32Type>()
                .iter()
                .collect::<Vec<_>>()
        };
        let code = s
            .column(3)
            .as_string::<i32>()
            .iter()
            .map(|c| c.map(str::to_string))
            .collect();
        (g(0), g(1), g(2), code)
    }

    #[test]
    fn quintiles_with_ties_and_nulls() {
        let r = col(&[Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(10.0), None]);
        let f = col(&[
            Some(10.0),
            Some(1.0),
            Some(1.0),
            Some(1.0),
            Some(2.0),
            Some(3.0),
        ]);
        let m = col(&[
            Some(5.0),
            Some(4.0),
            Some(3.0),
            Some(2.0),
            Some(1.0),
            Some(f64::NAN),
        ]);
        let (rs, fs, ms, code) = parts(&rfm_partition(&[r, f, m], 5).unwrap());
        assert_eq!(rs, [Some(5), Some(4), Some(3), Some(2), Some(1), None]);
        // F quantiles of [1,1,1,2,3,10] at .2,.4,.6,.8: 1, 1, 2 (2.0), 3 → 10→5, 1→1 (ties share), 2→3, 3→4
        assert_eq!(fs, [Some(5), Some(1), Some(1), Some(1), Some(3), Some(4)]);
        assert_eq!(ms, [Some(5), Some(4), Some(3), Some(2), Some(1), None]);
        assert_eq!(code[0].as_deref(), Some("555"));
        assert_eq!(code[4].as_deref(), Some("131"));
        assert_eq!(code[5], None);
    }

    #[test]
    fn row_order_does_not_matter() {
        let vals = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0];
        let a = col(&vals.map(Some));
        let mut rev = vals;
        rev.reverse();
        let b = col(&rev.map(Some));
        let (_, fa, _, _) = parts(&rfm_partition(&[a.clone(), a.clone(), a], 5).unwrap());
        let (_, mut fb, _, _) = parts(&rfm_partition(&[b.clone(), b.clone(), b], 5).unwrap());
        fb.reverse();
        assert_eq!(fa, fb);
    }

    #[test]
    fn ten_bins_code_uses_separator() {
        let v: Vec<Option<f64>> = (0..20).map(|i| Some(i as f64)).collect();
        let (_, _, _, code) = parts(&rfm_partition(&[col(&v), col(&v), col(&v)], 10).unwrap());
        assert_eq!(code[19].as_deref(), Some("1-10-10"));
        assert_eq!(code[0].as_deref(), Some("10-1-1"));
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(3);
        for n in [0usize, 1, 2, 9, 200] {
            for bins in 3..=10 {
                let cols = vec![f64s(&mut rng, n), f64s(&mut rng, n), f64s(&mut rng, n)];
                let out = rfm_partition(&cols, bins).unwrap();
                assert_eq!(out.len(), n);
                let (r, f, m, _) = parts(&out);
                for s in r.iter().chain(&f).chain(&m).flatten() {
                    assert!((1..=bins as i32).contains(s));
                }
            }
        }
    }
}
