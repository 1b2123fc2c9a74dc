//! `nps(score)` aggregate.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{Kind, as_f64, coerce_all};

/// `nps(score) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Aggregate Net Promoter Score: % promoters (scores 9–10) − % detractors (0–6) among the non-NULL scores, from −100 to 100. NULL when there are no scores. A score that is not a whole number from 0 to 10 (e.g. 11, −1, 7.5, NaN) is an error naming the value.",
    syntax_example = "nps(score)",
    sql_example = r#"```sql
> SELECT nps(value) FROM interactions WHERE kind = 'survey';
> SELECT nps(s) FROM (VALUES (10), (9), (8), (3)) AS t(s);
25.0
```"#,
    argument(
        name = "score",
        description = "Likelihood-to-recommend score, a whole number 0–10 (any numeric type)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NpsFunc {
    signature: Signature,
}

impl Default for NpsFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl NpsFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Counts of promoters, detractors and all answers.
#[derive(Debug, Default)]
struct NpsAccumulator {
    promoters: i64,
    detractors: i64,
    total: i64,
}

impl Accumulator for NpsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(v) = values.first() else {
            return exec_err!("nps: missing argument score");
        };
        for s in as_f64(v)?.iter().flatten() {
            if !(0.0..=10.0).contains(&s) || s.fract() != 0.0 {
                return exec_err!(
                    "nps: argument score must be a whole number from 0 to 10, got {s}"
                );
            }
            self.total += 1;
            if s >= 9.0 {
                self.promoters += 1;
            } else if s <= 6.0 {
                self.detractors += 1;
            }
        }
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [p, d, t] = [0, 1, 2].map(|i| states.get(i));
        let (Some(p), Some(d), Some(t)) = (p, d, t) else {
            return exec_err!("nps: bad state");
        };
        let (p, d, t) = (
            p.as_primitive::<Int64Type>(),
            d.as_primitive::<Int64Type>(),
            t.as_primitive::<Int64Type>(),
        );
        for i in 0..p.len() {
            if p.is_valid(i) && d.is_valid(i) && t.is_valid(i) {
                self.promoters += p.value(i);
                self.detractors += d.value(i);
                self.total += t.value(i);
            }
        }
        Ok(())
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Int64(Some(self.promoters)),
            ScalarValue::Int64(Some(self.detractors)),
            ScalarValue::Int64(Some(self.total)),
        ])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64((self.total > 0).then(|| {
            100.0 * (self.promoters - self.detractors) as f64 / self.total as f64
        })))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }
}

impl AggregateUDFImpl for NpsFunc {
    fn name(&self) -> &str {
        "nps"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(self.name(), &[("score", Kind::Number)], 1, arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(NpsAccumulator::default()))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(["promoters", "detractors", "total"]
            .into_iter()
            .map(|s| {
                Arc::new(Field::new(
                    format_state_name(args.name, s),
                    DataType::Int64,
                    true,
                ))
            })
            .collect())
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fuzz::{Rng, f64s};
    use datafusion::arrow::array::Float64Array;

    fn scores(v: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(v.to_vec()))
    }

    #[test]
    fn promoters_minus_detractors() {
        let mut acc = NpsAccumulator::default();
        acc.update_batch(&[scores(&[
            Some(10.0),
            Some(9.0),
            Some(8.0),
            Some(7.0),
            Some(6.0),
            None,
        ])])
        .unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(20.0)));
        let mut other = NpsAccumulator::default();
        other
            .update_batch(&[scores(&[Some(0.0), Some(0.0), Some(0.0)])])
            .unwrap();
        let st: Vec<ArrayRef> = other
            .state()
            .unwrap()
            .iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        acc.merge_batch(&st).unwrap();
        // 2 promoters, 4 detractors, 8 answers → −25.
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(-25.0)));
    }

    #[test]
    fn empty_is_null_and_bad_scores_are_named() {
        let mut acc = NpsAccumulator::default();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
        for bad in [11.0, -1.0, 7.5, f64::NAN] {
            let e = acc
                .update_batch(&[scores(&[Some(bad)])])
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("nps: argument score must be a whole number from 0 to 10, got"),
                "{e}"
            );
        }
        let e = acc
            .update_batch(&[scores(&[Some(11.0)])])
            .unwrap_err()
            .to_string();
        assert!(e.contains("got 11"), "{e}");
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(41);
        for n in [0usize, 1, 50] {
            let mut acc = NpsAccumulator::default();
            let _ = acc.update_batch(&[f64s(&mut rng, n)]);
            let _ = acc.evaluate().unwrap();
        }
    }
}
