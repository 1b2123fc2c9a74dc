//! `orders_before_last(order_ts, days)` aggregate.
//!
//! The churn warning's second input. As plain SQL it is a self-join of the
//! orders with each customer's last order and a second aggregation; as one
//! aggregate it is computed in the same pass as the customer's other
//! figures.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::groups::{RowAccumulator, RowGroups, RowState};
use crate::util::{Kind, as_f64, as_micros, coerce_all};

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// `orders_before_last(order_ts, days) -> Int64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Aggregate: how many of the group's orders fall in the `days` days (of 86,400 s) before its last order: order_ts ≥ last − days and order_ts < last (the last order's instant itself, and any order at that same instant, not counted). NULL when the group has no order or days is NULL; NULL timestamps are ignored. Group by customer (filtered to completed orders) to get churn_warning's orders_90d_before_last. Errors on a negative or non-finite days, or one that differs between rows.",
    syntax_example = "orders_before_last(order_ts, days)",
    sql_example = r#"```sql
> SELECT customer_id, orders_before_last(order_ts, 90) FROM orders WHERE status = 'completed' GROUP BY customer_id;
```"#,
    argument(
        name = "order_ts",
        description = "Order time (timestamp of any unit/zone, or date)."
    ),
    argument(
        name = "days",
        description = "Length of the window before the last order, in days (≥ 0, the same for every row)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OrdersBeforeLastFunc {
    signature: Signature,
}

impl Default for OrdersBeforeLastFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl OrdersBeforeLastFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// One group's order times (µs) and the window length.
#[derive(Debug, Default, Clone)]
struct BeforeLast {
    ts: Vec<i64>,
    days: Option<f64>,
}

impl BeforeLast {
    fn set_days(&mut self, days: f64) -> Result<()> {
        if !(days.is_finite() && days >= 0.0) {
            return exec_err!(
                "orders_before_last: argument days must be a non-negative number, got {days}"
            );
        }
        match self.days {
            Some(d) if d != days => exec_err!(
                "orders_before_last: argument days must be the same for every row, got {d} and {days}"
            ),
            _ => {
                self.days = Some(days);
                Ok(())
            }
        }
    }

    /// The count, or `None` for a group without orders or without a
    /// (non-NULL) window length.
    fn count(&self) -> Option<i64> {
        let last = *self.ts.iter().max()?;
        let window = (self.days? * MICROS_PER_DAY).round();
        // a window reaching past the earliest representable time counts everything before last
        let from = if window >= (last as f64 - i64::MIN as f64) {
            i64::MIN
        } else {
            last - window as i64
        };
        let n = self.ts.iter().filter(|&&t| t >= from && t < last).count();
        Some(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

/// One batch of arguments, converted.
struct Args {
    ts: Int64Array,
    days: Float64Array,
}

/// One batch of partial states, converted.
struct States {
    ts: ListArray,
    days: Float64Array,
}

impl RowState for BeforeLast {
    type Batch = Args;
    type States = States;

    fn prepare(&self, values: &[ArrayRef]) -> Result<Args> {
        let [ts, days] = values else {
            return exec_err!("orders_before_last: expected 2 arguments");
        };
        Ok(Args {
            ts: as_micros(ts)?,
            days: as_f64(days)?,
        })
    }

    fn update_row(&mut self, b: &Args, row: usize) -> Result<()> {
        if b.days.is_valid(row) {
            self.set_days(b.days.value(row))?;
        }
        if b.ts.is_valid(row) {
            self.ts.push(b.ts.value(row));
        }
        Ok(())
    }

    fn prepare_states(&self, states: &[ArrayRef]) -> Result<States> {
        let [ts, days] = states else {
            return exec_err!("orders_before_last: expected 2 state fields");
        };
        Ok(States {
            ts: ts.as_list::<i32>().clone(),
            days: days.as_primitive::<Float64Type>().clone(),
        })
    }

    fn merge_row(&mut self, s: &States, row: usize) -> Result<()> {
        if s.days.is_valid(row) {
            self.set_days(s.days.value(row))?;
        }
        if s.ts.is_valid(row) {
            let ts = s.ts.value(row);
            self.ts
                .extend_from_slice(ts.as_primitive::<Int64Type>().values());
        }
        Ok(())
    }

    fn evaluate_all(&self, groups: Vec<Self>) -> Result<ArrayRef> {
        Ok(Arc::new(
            groups.iter().map(BeforeLast::count).collect::<Int64Array>(),
        ))
    }

    fn state_all(&self, groups: Vec<Self>) -> Result<Vec<ArrayRef>> {
        let mut offsets = Vec::with_capacity(groups.len() + 1);
        offsets.push(0i32);
        let mut values: Vec<i64> = Vec::with_capacity(groups.iter().map(|g| g.ts.len()).sum());
        let mut days = Vec::with_capacity(groups.len());
        for g in groups {
            values.extend_from_slice(&g.ts);
            let Ok(end) = i32::try_from(values.len()) else {
                return exec_err!("orders_before_last: too many orders in one partial state");
            };
            offsets.push(end);
            days.push(g.days);
        }
        Ok(vec![
            Arc::new(ListArray::try_new(
                Arc::new(Field::new_list_field(DataType::Int64, true)),
                OffsetBuffer::new(offsets.into()),
                Arc::new(Int64Array::from(values)),
                None,
            )?),
            Arc::new(Float64Array::from(days)),
        ])
    }

    fn heap_size(&self) -> usize {
        self.ts.capacity() * size_of::<i64>()
    }
}

impl AggregateUDFImpl for OrdersBeforeLastFunc {
    fn name(&self) -> &str {
        "orders_before_last"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[("order_ts", Kind::Time), ("days", Kind::Number)],
            2,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RowAccumulator::new(BeforeLast::default())))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RowGroups::new(BeforeLast::default())))
    }
    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new_list(
                format_state_name(args.name, "ts"),
                Field::new_list_field(DataType::Int64, true),
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "days"),
                DataType::Float64,
                true,
            )),
        ])
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fuzz::utc_micros as ts;
    use datafusion::arrow::array::BooleanArray;
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::EmitTo;

    const DAY: i64 = 86_400_000_000;

    fn days(d: f64, n: usize) -> ArrayRef {
        Arc::new(Float64Array::from(vec![d; n]))
    }

    #[test]
    fn counts_the_window_before_the_last_order() {
        let last = 1_000 * DAY;
        let mut acc = RowAccumulator::new(BeforeLast::default());
        // exactly 90 days before (in), 90 days + 1 µs before (out), 1 µs
        // before (in), the last instant twice (out), NULL (ignored)
        let v = [
            Some(last - 90 * DAY),
            Some(last - 90 * DAY - 1),
            Some(last - 1),
            Some(last),
            Some(last),
            None,
        ];
        acc.update_batch(&[ts(&v), days(90.0, v.len())]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(Some(2)));
        // a partial state with a later order moves the window
        let mut other = RowAccumulator::new(BeforeLast::default());
        other
            .update_batch(&[ts(&[Some(last + 10 * DAY)]), days(90.0, 1)])
            .unwrap();
        let state: Vec<ArrayRef> = other
            .state()
            .unwrap()
            .iter()
            .map(|s| s.to_array().unwrap())
            .collect();
        acc.merge_batch(&state).unwrap();
        // window [last − 80 d, last + 10 d): last − 1 µs and last twice
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(Some(3)));
    }

    #[test]
    fn no_orders_is_null_and_a_lone_order_is_zero() {
        let mut acc = RowAccumulator::new(BeforeLast::default());
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(None));
        acc.update_batch(&[ts(&[None]), days(90.0, 1)]).unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(None));
        acc.update_batch(&[ts(&[Some(5 * DAY)]), days(90.0, 1)])
            .unwrap();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Int64(Some(0)));
        // a window wider than all of time counts every earlier order
        // no window length given: NULL, not a guess
        let mut no_days = RowAccumulator::new(BeforeLast::default());
        no_days
            .update_batch(&[
                ts(&[Some(0), Some(DAY)]),
                Arc::new(Float64Array::from(vec![None, None])),
            ])
            .unwrap();
        assert_eq!(no_days.evaluate().unwrap(), ScalarValue::Int64(None));
        let mut wide = RowAccumulator::new(BeforeLast::default());
        wide.update_batch(&[ts(&[Some(i64::MIN + 1), Some(0)]), days(1e300, 2)])
            .unwrap();
        assert_eq!(wide.evaluate().unwrap(), ScalarValue::Int64(Some(1)));
    }

    #[test]
    fn bad_days_are_errors() {
        for (d, want) in [
            (-1.0, "argument days must be a non-negative number, got -1"),
            (
                f64::NAN,
                "argument days must be a non-negative number, got NaN",
            ),
        ] {
            let mut acc = RowAccumulator::new(BeforeLast::default());
            let err = acc
                .update_batch(&[ts(&[Some(0)]), days(d, 1)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{err}");
        }
        let mut acc = RowAccumulator::new(BeforeLast::default());
        let err = acc
            .update_batch(&[
                ts(&[Some(0), Some(1)]),
                Arc::new(Float64Array::from(vec![90.0, 30.0])),
            ])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("argument days must be the same for every row, got 90 and 30"),
            "{err}"
        );
    }

    /// Groups with a FILTER, emitted as partial states and merged.
    #[test]
    fn groups_accumulator_filters_and_merges() {
        let t = ts(&[
            Some(100 * DAY),
            Some(95 * DAY),
            Some(50 * DAY),
            Some(99 * DAY),
            Some(7 * DAY),
            Some(30 * DAY),
        ]);
        let filter = BooleanArray::from(vec![true, true, true, false, true, true]);
        let mut a = RowGroups::new(BeforeLast::default());
        a.update_batch(&[t, days(10.0, 6)], &[0, 0, 0, 0, 1, 2], Some(&filter), 3)
            .unwrap();
        let state = a.state(EmitTo::All).unwrap();
        let mut b = RowGroups::new(BeforeLast::default());
        b.merge_batch(&state, &[0, 1, 2], 3).unwrap();
        let out = b.evaluate(EmitTo::All).unwrap();
        let out = out.as_primitive::<Int64Type>();
        // group 0: last 100, window [90, 100): 95 (99 filtered out) → 1;
        // groups 1 and 2: one order each → 0
        assert_eq!(out.values().to_vec(), vec![1, 0, 0]);
        assert_eq!(out.null_count(), 0);
    }
}
