//! `purchase_interval(order_ts)` aggregate.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::groups::{RowAccumulator, RowGroups, RowState};
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

/// Median gap in days between consecutive distinct days (`days` is sorted
/// and deduplicated in place); `None` with fewer than two distinct days.
pub fn median_gap(days: &mut Vec<i64>) -> Option<f64> {
    days.sort_unstable();
    days.dedup();
    let mut gaps: Vec<i64> = days.windows(2).map(|w| w[1] - w[0]).collect();
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

/// One customer's purchase days (UTC days since the epoch, unsorted, with
/// repeats until evaluated).
#[derive(Debug, Default, Clone)]
struct PurchaseIntervalAccumulator {
    days: Vec<i64>,
}

impl RowState for PurchaseIntervalAccumulator {
    type Batch = Int64Array;
    type States = ListArray;

    fn prepare(&self, values: &[ArrayRef]) -> Result<Int64Array> {
        let Some(ts) = values.first() else {
            return exec_err!("purchase_interval: missing argument order_ts");
        };
        as_micros(ts)
    }

    fn update_row(&mut self, ts: &Int64Array, row: usize) -> Result<()> {
        if ts.is_valid(row) {
            let day = ts.value(row).div_euclid(MICROS_PER_DAY);
            // orders of a customer often arrive in time order: skip repeats cheaply
            if self.days.last() != Some(&day) {
                self.days.push(day);
            }
        }
        Ok(())
    }

    fn prepare_states(&self, states: &[ArrayRef]) -> Result<ListArray> {
        let Some(state) = states.first() else {
            return exec_err!("purchase_interval: missing state");
        };
        Ok(state.as_list::<i32>().clone())
    }

    fn merge_row(&mut self, lists: &ListArray, row: usize) -> Result<()> {
        if lists.is_valid(row) {
            let days = lists.value(row);
            self.days
                .extend(days.as_primitive::<Int64Type>().iter().flatten());
        }
        Ok(())
    }

    fn evaluate_all(&self, groups: Vec<Self>) -> Result<ArrayRef> {
        Ok(Arc::new(
            groups
                .into_iter()
                .map(|mut g| median_gap(&mut g.days))
                .collect::<Float64Array>(),
        ))
    }

    fn state_all(&self, groups: Vec<Self>) -> Result<Vec<ArrayRef>> {
        let mut offsets = Vec::with_capacity(groups.len() + 1);
        offsets.push(0i32);
        let mut values: Vec<i64> = Vec::new();
        for mut g in groups {
            g.days.sort_unstable();
            g.days.dedup();
            values.extend(g.days);
            let Ok(end) = i32::try_from(values.len()) else {
                return exec_err!("purchase_interval: too many days in one partial state");
            };
            offsets.push(end);
        }
        Ok(vec![Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            OffsetBuffer::new(offsets.into()),
            Arc::new(Int64Array::from(values)),
            None,
        )?)])
    }

    fn heap_size(&self) -> usize {
        self.days.capacity() * size_of::<i64>()
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
        Ok(Box::new(RowAccumulator::new(
            PurchaseIntervalAccumulator::default(),
        )))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RowGroups::new(
            PurchaseIntervalAccumulator::default(),
        )))
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
    use crate::util::fuzz::{Rng, times, utc_micros as ts};
    use datafusion::common::ScalarValue;

    const DAY: i64 = MICROS_PER_DAY;
    const T0: i64 = 1_714_521_600_000_000;

    #[test]
    fn median_of_distinct_day_gaps() {
        let mut acc = RowAccumulator::new(PurchaseIntervalAccumulator::default());
        // Days 0, 0 (same day, later hour), 10, 30, 31 → gaps 10, 20, 1 → median 10.
        acc.update_batch(&[ts(&[
            Some(T0),
            Some(T0 + 5 * 3_600_000_000),
            Some(T0 + 10 * DAY),
            None,
        ])])
        .unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(10.0)));
        let mut other = RowAccumulator::new(PurchaseIntervalAccumulator::default());
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
        let mut acc = RowAccumulator::new(PurchaseIntervalAccumulator::default());
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
        acc.update_batch(&[ts(&[Some(T0), Some(T0 + 1)])]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(None));
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(31);
        for n in [0usize, 1, 50] {
            let mut acc = RowAccumulator::new(PurchaseIntervalAccumulator::default());
            acc.update_batch(&[times(&mut rng, n)]).unwrap();
            let _ = acc.evaluate().unwrap();
        }
    }
}

#[cfg(test)]
mod groups_tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, TimestampMicrosecondArray};
    use datafusion::logical_expr::EmitTo;

    const DAY: i64 = MICROS_PER_DAY;

    /// Groups with a FILTER and merged partial states: group 0 has days
    /// 0, 10, 30 (gaps 10, 20 → 15), group 1 one day (NULL).
    #[test]
    fn groups_accumulator_filters_and_merges() {
        let ts: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![
                0,
                30 * DAY,
                4 * DAY,
                10 * DAY,
                2 * DAY,
                10 * DAY + 5,
            ])
            .with_timezone("UTC"),
        );
        let filter = BooleanArray::from(vec![true, true, true, true, false, true]);
        let mut a = RowGroups::new(PurchaseIntervalAccumulator::default());
        a.update_batch(
            std::slice::from_ref(&ts),
            &[0, 0, 1, 0, 1, 0],
            Some(&filter),
            2,
        )
        .unwrap();
        let state = a.state(EmitTo::All).unwrap();
        let mut b = RowGroups::new(PurchaseIntervalAccumulator::default());
        b.merge_batch(&state, &[0, 1], 2).unwrap();
        b.merge_batch(&state, &[0, 1], 2).unwrap(); // the same days again change nothing
        let out = b.evaluate(EmitTo::All).unwrap();
        let out = out.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(out.value(0), 15.0);
        assert!(out.is_null(1));
    }
}
