//! `purchase_interval(order_ts)` aggregate.

use std::collections::BTreeSet;
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

use crate::util::{Kind, as_micros, coerce_all};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `purchase_interval(order_ts) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Aggregate: the median number of days between consecutive distinct purchase days (UTC calendar days; several orders on one day count once). With an even number of gaps the two middle gaps are averaged. NULL with fewer than two distinct purchase days. NULL timestamps are ignored. Group by customer (and category) to get each customer's consumption cycle.",
    syntax_example = "purchase_interval(order_ts)",
    sql_example = r#"```sql
> SELECT customer_id, purchase_interval(order_ts) FROM orders WHERE status = 'completed' GROUP BY customer_id;
```"#,
    argument(
        name = "order_ts",
        description = "Purchase time (timestamp of any unit/zone, or date)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PurchaseIntervalFunc {
    signature: Signature,
}

impl Default for PurchaseIntervalFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl PurchaseIntervalFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Median gap in days between consecutive days of a sorted set; `None` with < 2 days.
pub fn median_gap(days: &BTreeSet<i64>) -> Option<f64> {
    let v: Vec<i64> = days
        .iter()
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    let mut gaps = v;
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    let n = gaps.len();
    Some(if n % 2 == 1 {
        gaps[n / 2] as f64
    } else {
        (gaps[n / 2 - 1] as f64 + gaps[n / 2] as f64) / 2.0
    })
}

#[derive(Debug, Default)]
struct PurchaseIntervalAccumulator {
    days: BTreeSet<i64>,
}

impl Accumulator for PurchaseIntervalAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(ts) = values.first() else {
            return exec_err!("purchase_interval: missing argument order_ts");
        };
        let ts = as_micros(ts)?;
        self.days
            .extend(ts.iter().flatten().map(|t| t.div_euclid(MICROS_PER_DAY)));
        Ok(())
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let Some(state) = states.first() else {
            return exec_err!("purchase_interval: missing state");
        };
        let lists = state.as_list::<i32>();
        for i in 0..lists.len() {
            if lists.is_valid(i) {
                let days = lists.value(i);
                self.days
                    .extend(days.as_primitive::<Int64Type>().iter().flatten());
            }
        }
        Ok(())
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let days: Vec<ScalarValue> = self
            .days
            .iter()
            .map(|d| ScalarValue::Int64(Some(*d)))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &days,
            &DataType::Int64,
        ))])
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(median_gap(&self.days)))
    }
    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.days.len() * 3 * std::mem::size_of::<i64>()
    }
}

impl AggregateUDFImpl for PurchaseIntervalFunc {
    fn name(&self) -> &str {
        "purchase_interval"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(self.name(), &[("order_ts", Kind::Time)], 1, arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PurchaseIntervalAccumulator::default()))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new_list(
            format_state_name(args.name, "days"),
            Field::new_list_field(DataType::Int64, true),
            true,
        ))])
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fuzz::{Rng, times};
    use datafusion::arrow::array::TimestampMicrosecondArray;

    const DAY: i64 = MICROS_PER_DAY;
    const T0: i64 = 1_714_521_600_000_000;

    fn ts(v: &[Option<i64>]) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v.to_vec()).with_timezone("UTC"))
    }

    #[test]
    fn median_of_distinct_day_gaps() {
        let mut acc = PurchaseIntervalAccumulator::default();
        // Days 0, 0 (same day, later hour), 10, 30, 31 → gaps 10, 20, 1 → median 10.
        acc.update_batch(&[ts(&[
            Some(T0),
            Some(T0 + 5 * 3_600_000_000),
            Some(T0 + 10 * DAY),
            None,
        ])])
        .unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(10.0)));
        let mut other = PurchaseIntervalAccumulator::default();
        other
            .update_batch(&[ts(&[Some(T0 + 30 * DAY), Some(T0 + 31 * DAY)])])
            .unwrap();
        let state = other.state().unwrap();
        let arrays: Vec<ArrayRef> = state.iter().map(|s| s.to_array().unwrap()).collect();
        acc.merge_batch(&arrays).unwrap();
        // Gaps 10, 20, 1 → sorted 1, 10, 20 → 10.
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(10.0)));
        acc.update_batch(&[ts(&[Some(T0 + 61 * DAY)])]).unwrap();
        // Gaps 1, 10, 20, 30 → (10 + 20) / 2.
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(15.0)));
    }

    #[test]
    fn fewer_than_two_days_is_null() {
        let mut acc = PurchaseIntervalAccumulator::default();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
        acc.update_batch(&[ts(&[Some(T0), Some(T0 + 1)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(31);
        for n in [0usize, 1, 50] {
            let mut acc = PurchaseIntervalAccumulator::default();
            acc.update_batch(&[times(&mut rng, n)]).unwrap();
            let _ = acc.evaluate().unwrap();
        }
    }
}
