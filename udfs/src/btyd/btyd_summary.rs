//! `btyd_summary(order_ts, amount, observation_end, unit_days)` and
//! `btyd_holdout(order_ts, calibration_end, observation_end, unit_days)`
//! aggregates (they share the per-customer order accumulator).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::groups::{RowAccumulator, RowGroups, RowState};
use crate::rules::btyd::summary;
use crate::util::{Kind, as_f64, as_micros, coerce_all};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The result type of `btyd_summary`: {frequency, recency, t, monetary_value}.
pub fn summary_fields() -> Fields {
    Fields::from(vec![
        Field::new("frequency", DataType::Int64, false),
        Field::new("recency", DataType::Float64, false),
        Field::new("t", DataType::Float64, false),
        Field::new("monetary_value", DataType::Float64, false),
    ])
}

/// The result type of `btyd_holdout`: {frequency_holdout, duration_holdout}.
pub fn holdout_fields() -> Fields {
    Fields::from(vec![
        Field::new("frequency_holdout", DataType::Int64, false),
        Field::new("duration_holdout", DataType::Float64, false),
    ])
}

/// `btyd_summary(order_ts, amount, observation_end, unit_days) -> Struct`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "One customer's BTYD summary from their orders (use with GROUP BY customer): {frequency, recency, t, monetary_value}. Orders are bucketed by UTC calendar day (same-day orders are one purchase, values summed); orders after observation_end and rows with a NULL order_ts or amount are ignored. frequency = purchase days − 1 (repeat purchases); recency = first → last purchase day and t = first purchase day → observation_end day, both in units of unit_days days (1 = days, 7 = weeks); monetary_value = mean value of the repeat purchase days (0 when frequency is 0). NULL when the customer has no order up to observation_end. Errors on a negative amount or a non-positive unit_days.",
    syntax_example = "btyd_summary(order_ts, amount, observation_end, unit_days)",
    sql_example = r#"```sql
> SELECT customer_id, btyd_summary(order_ts, amount, TIMESTAMP '2025-12-31 23:59:59', 7) AS s FROM orders GROUP BY customer_id;
```"#,
    argument(name = "order_ts", description = "Order timestamp or date."),
    argument(name = "amount", description = "Order value (≥ 0)."),
    argument(
        name = "observation_end",
        description = "End of the observation period (timestamp or date, the same for every row)."
    ),
    argument(
        name = "unit_days",
        description = "Days per time unit of recency and t: 1 = days, 7 = weeks."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BtydSummaryFunc {
    signature: Signature,
}

/// `btyd_holdout(order_ts, calibration_end, observation_end, unit_days) -> Struct`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Hold-out counterpart of btyd_summary for calibration/hold-out validation: {frequency_holdout, duration_holdout} = purchase days (UTC) after the calibration_end day up to the observation_end day, and the hold-out length in units of unit_days days.",
    syntax_example = "btyd_holdout(order_ts, calibration_end, observation_end, unit_days)",
    sql_example = r#"```sql
> SELECT customer_id, btyd_holdout(order_ts, DATE '2025-06-30', DATE '2025-12-31', 7) FROM orders GROUP BY customer_id;
```"#,
    argument(name = "order_ts", description = "Order timestamp or date."),
    argument(
        name = "calibration_end",
        description = "End of the calibration period."
    ),
    argument(name = "observation_end", description = "End of the hold-out period."),
    argument(
        name = "unit_days",
        description = "Days per time unit: 1 = days, 7 = weeks."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BtydHoldoutFunc {
    signature: Signature,
}

macro_rules! ctor {
    ($t:ident) => {
        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }
        impl $t {
            /// Create the function.
            pub fn new() -> Self {
                Self {
                    signature: Signature::user_defined(Volatility::Immutable),
                }
            }
        }
    };
}
ctor!(BtydSummaryFunc);
ctor!(BtydHoldoutFunc);

fn state_fields(func: &str) -> Vec<FieldRef> {
    vec![
        Arc::new(Field::new_list(
            format_state_name(func, "days"),
            Field::new_list_field(DataType::Int64, true),
            true,
        )),
        Arc::new(Field::new_list(
            format_state_name(func, "amounts"),
            Field::new_list_field(DataType::Float64, true),
            true,
        )),
        Arc::new(Field::new(
            format_state_name(func, "end_day"),
            DataType::Int64,
            true,
        )),
        Arc::new(Field::new(
            format_state_name(func, "cal_day"),
            DataType::Int64,
            true,
        )),
        Arc::new(Field::new(
            format_state_name(func, "unit_days"),
            DataType::Float64,
            true,
        )),
    ]
}

impl AggregateUDFImpl for BtydSummaryFunc {
    fn name(&self) -> &str {
        "btyd_summary"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("order_ts", Kind::Time),
                ("amount", Kind::Number),
                ("observation_end", Kind::Time),
                ("unit_days", Kind::Number),
            ],
            4,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(summary_fields()))
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RowAccumulator::new(OrdersAccumulator::new(
            "btyd_summary",
            false,
        ))))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RowGroups::new(OrdersAccumulator::new(
            "btyd_summary",
            false,
        ))))
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(self.name()))
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

impl AggregateUDFImpl for BtydHoldoutFunc {
    fn name(&self) -> &str {
        "btyd_holdout"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("order_ts", Kind::Time),
                ("calibration_end", Kind::Time),
                ("observation_end", Kind::Time),
                ("unit_days", Kind::Number),
            ],
            4,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(holdout_fields()))
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(RowAccumulator::new(OrdersAccumulator::new(
            "btyd_holdout",
            true,
        ))))
    }
    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }
    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(RowGroups::new(OrdersAccumulator::new(
            "btyd_holdout",
            true,
        ))))
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(self.name()))
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// One customer's orders as (UTC day, amount), and the constant arguments.
#[derive(Debug, Clone)]
struct OrdersAccumulator {
    func: &'static str,
    holdout: bool,
    orders: Vec<(i64, f64)>,
    end_day: Option<i64>,
    cal_day: Option<i64>,
    unit_days: Option<f64>,
}

fn same<T: PartialEq + Copy + std::fmt::Display>(
    func: &str,
    arg: &str,
    slot: &mut Option<T>,
    v: T,
) -> Result<()> {
    match *slot {
        Some(o) if o != v => {
            exec_err!("{func}: argument {arg} must be the same for every row, got {o} and {v}")
        }
        _ => {
            *slot = Some(v);
            Ok(())
        }
    }
}

/// One batch of arguments, converted.
struct OrdersBatch {
    ts: Int64Array,
    amount: Option<Float64Array>,
    cal: Option<Int64Array>,
    end: Int64Array,
    unit: Float64Array,
}

/// One batch of partial states, converted.
struct OrdersStates {
    days: ListArray,
    amounts: ListArray,
    end_day: Int64Array,
    cal_day: Int64Array,
    unit_days: Float64Array,
}

/// The two results' arrays, built group by group.
enum Results {
    Summary {
        frequency: Vec<i64>,
        recency: Vec<f64>,
        t: Vec<f64>,
        monetary: Vec<f64>,
        valid: Vec<bool>,
    },
    Holdout {
        frequency: Vec<i64>,
        duration: Vec<f64>,
        valid: Vec<bool>,
    },
}

impl Results {
    fn new(holdout: bool, n: usize) -> Self {
        if holdout {
            Results::Holdout {
                frequency: Vec::with_capacity(n),
                duration: Vec::with_capacity(n),
                valid: Vec::with_capacity(n),
            }
        } else {
            Results::Summary {
                frequency: Vec::with_capacity(n),
                recency: Vec::with_capacity(n),
                t: Vec::with_capacity(n),
                monetary: Vec::with_capacity(n),
                valid: Vec::with_capacity(n),
            }
        }
    }

    fn finish(self) -> Result<ArrayRef> {
        // A NULL summary has NULL fields too, so that `s['frequency']` of a
        // customer without orders is NULL, not 0.
        fn nulls(valid: &[bool]) -> Option<NullBuffer> {
            Some(NullBuffer::from(valid.to_vec()))
        }
        let (f64s, i64s) = (
            |v: Vec<f64>, valid: &[bool]| {
                Arc::new(Float64Array::new(v.into(), nulls(valid))) as ArrayRef
            },
            |v: Vec<i64>, valid: &[bool]| {
                Arc::new(Int64Array::new(v.into(), nulls(valid))) as ArrayRef
            },
        );
        Ok(Arc::new(match self {
            Results::Summary {
                frequency,
                recency,
                t,
                monetary,
                valid,
            } => StructArray::try_new(
                summary_fields(),
                vec![
                    i64s(frequency, &valid),
                    f64s(recency, &valid),
                    f64s(t, &valid),
                    f64s(monetary, &valid),
                ],
                nulls(&valid),
            )?,
            Results::Holdout {
                frequency,
                duration,
                valid,
            } => StructArray::try_new(
                holdout_fields(),
                vec![i64s(frequency, &valid), f64s(duration, &valid)],
                nulls(&valid),
            )?,
        }))
    }
}

impl OrdersAccumulator {
    fn new(func: &'static str, holdout: bool) -> Self {
        Self {
            func,
            holdout,
            orders: Vec::new(),
            end_day: None,
            cal_day: None,
            unit_days: None,
        }
    }

    /// This customer's result into `out` (a NULL row when there is nothing
    /// to summarise).
    fn finish_into(&mut self, out: &mut Results) -> Result<()> {
        match out {
            Results::Summary {
                frequency,
                recency,
                t,
                monetary,
                valid,
            } => {
                let s = match (self.end_day, self.unit_days) {
                    (Some(end_day), Some(unit)) => {
                        summary::summarise(&mut self.orders, end_day, unit)
                    }
                    _ => None,
                };
                valid.push(s.is_some());
                let s = s.unwrap_or(summary::Summary {
                    frequency: 0.0,
                    recency: 0.0,
                    t: 0.0,
                    monetary_value: 0.0,
                });
                frequency.push(s.frequency as i64);
                recency.push(s.recency);
                t.push(s.t);
                monetary.push(s.monetary_value);
            }
            Results::Holdout {
                frequency,
                duration,
                valid,
            } => {
                let r = match (self.end_day, self.unit_days, self.cal_day) {
                    (Some(end_day), Some(unit), Some(cal_day)) => {
                        if cal_day > end_day {
                            return exec_err!(
                                "{}: argument calibration_end must not be after observation_end",
                                self.func
                            );
                        }
                        Some(summary::holdout(&mut self.orders, cal_day, end_day, unit))
                    }
                    _ => None,
                };
                valid.push(r.is_some());
                let (f, d) = r.unwrap_or((0.0, 0.0));
                frequency.push(f as i64);
                duration.push(d);
            }
        }
        Ok(())
    }
}

impl RowState for OrdersAccumulator {
    type Batch = OrdersBatch;
    type States = OrdersStates;

    fn prepare(&self, values: &[ArrayRef]) -> Result<OrdersBatch> {
        let [ts, second, end, unit] = values else {
            return exec_err!("{}: expected 4 arguments", self.func);
        };
        let (amount, cal) = if self.holdout {
            (None, Some(as_micros(second)?))
        } else {
            (Some(as_f64(second)?), None)
        };
        Ok(OrdersBatch {
            ts: as_micros(ts)?,
            amount,
            cal,
            end: as_micros(end)?,
            unit: as_f64(unit)?,
        })
    }

    fn update_row(&mut self, b: &OrdersBatch, i: usize) -> Result<()> {
        let func = self.func;
        if b.end.is_null(i) || b.unit.is_null(i) {
            return Ok(());
        }
        let end_us = b.end.value(i);
        same(
            func,
            "observation_end",
            &mut self.end_day,
            end_us.div_euclid(MICROS_PER_DAY),
        )?;
        let u = b.unit.value(i);
        if !(u.is_finite() && u > 0.0) {
            return exec_err!("{func}: argument unit_days must be positive, got {u}");
        }
        same(func, "unit_days", &mut self.unit_days, u)?;
        if let Some(cal) = &b.cal
            && !cal.is_null(i)
        {
            same(
                func,
                "calibration_end",
                &mut self.cal_day,
                cal.value(i).div_euclid(MICROS_PER_DAY),
            )?;
        }
        if b.ts.is_null(i) || b.ts.value(i) > end_us {
            return Ok(());
        }
        let v = match &b.amount {
            Some(a) if a.is_null(i) => return Ok(()),
            Some(a) => a.value(i),
            None => 0.0,
        };
        if !(v.is_finite() && v >= 0.0) {
            return exec_err!("{func}: argument amount must be non-negative, got {v}");
        }
        self.orders
            .push((b.ts.value(i).div_euclid(MICROS_PER_DAY), v));
        Ok(())
    }

    fn prepare_states(&self, states: &[ArrayRef]) -> Result<OrdersStates> {
        let [days, amounts, end_day, cal_day, unit_days] = states else {
            return exec_err!("{}: expected 5 state fields", self.func);
        };
        Ok(OrdersStates {
            days: days.as_list::<i32>().clone(),
            amounts: amounts.as_list::<i32>().clone(),
            end_day: end_day.as_primitive::<Int64Type>().clone(),
            cal_day: cal_day.as_primitive::<Int64Type>().clone(),
            unit_days: unit_days.as_primitive::<Float64Type>().clone(),
        })
    }

    fn merge_row(&mut self, s: &OrdersStates, r: usize) -> Result<()> {
        let func = self.func;
        if s.days.is_valid(r) && s.amounts.is_valid(r) {
            let d = s.days.value(r);
            let a = s.amounts.value(r);
            let d = d.as_primitive::<Int64Type>();
            let a = a.as_primitive::<Float64Type>();
            self.orders
                .extend(d.values().iter().copied().zip(a.values().iter().copied()));
        }
        if s.end_day.is_valid(r) {
            same(
                func,
                "observation_end",
                &mut self.end_day,
                s.end_day.value(r),
            )?;
        }
        if s.cal_day.is_valid(r) {
            same(
                func,
                "calibration_end",
                &mut self.cal_day,
                s.cal_day.value(r),
            )?;
        }
        if s.unit_days.is_valid(r) {
            same(func, "unit_days", &mut self.unit_days, s.unit_days.value(r))?;
        }
        Ok(())
    }

    fn evaluate_all(&self, groups: Vec<Self>) -> Result<ArrayRef> {
        let mut out = Results::new(self.holdout, groups.len());
        for mut g in groups {
            g.finish_into(&mut out)?;
        }
        out.finish()
    }

    fn state_all(&self, groups: Vec<Self>) -> Result<Vec<ArrayRef>> {
        let rows: usize = groups.iter().map(|g| g.orders.len()).sum();
        let mut offsets = Vec::with_capacity(groups.len() + 1);
        offsets.push(0i32);
        let (mut days, mut amounts) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        let mut end_day = Vec::with_capacity(groups.len());
        let mut cal_day = Vec::with_capacity(groups.len());
        let mut unit_days = Vec::with_capacity(groups.len());
        for g in groups {
            for (d, a) in g.orders {
                days.push(d);
                amounts.push(a);
            }
            let Ok(end) = i32::try_from(days.len()) else {
                return exec_err!("{}: too many orders in one partial state", self.func);
            };
            offsets.push(end);
            end_day.push(g.end_day);
            cal_day.push(g.cal_day);
            unit_days.push(g.unit_days);
        }
        let offsets = OffsetBuffer::new(offsets.into());
        let list = |values: ArrayRef, ty: DataType| -> Result<ArrayRef> {
            Ok(Arc::new(ListArray::try_new(
                Arc::new(Field::new_list_field(ty, true)),
                offsets.clone(),
                values,
                None,
            )?))
        };
        Ok(vec![
            list(Arc::new(Int64Array::from(days)), DataType::Int64)?,
            list(Arc::new(Float64Array::from(amounts)), DataType::Float64)?,
            Arc::new(Int64Array::from(end_day)),
            Arc::new(Int64Array::from(cal_day)),
            Arc::new(Float64Array::from(unit_days)),
        ])
    }

    fn heap_size(&self) -> usize {
        self.orders.capacity() * size_of::<(i64, f64)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{BooleanArray, TimestampMicrosecondArray};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::EmitTo;

    const DAY: i64 = MICROS_PER_DAY;

    fn args(ts: &[i64], amount: &[f64], end: i64) -> Vec<ArrayRef> {
        let n = ts.len();
        vec![
            Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")),
            Arc::new(Float64Array::from(amount.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(vec![end; n]).with_timezone("UTC")),
            Arc::new(Float64Array::from(vec![7.0; n])),
        ]
    }

    /// The groups accumulator (with a FILTER, partial states merged, first
    /// groups emitted early) gives each group what the plain accumulator
    /// gives it.
    #[test]
    fn groups_equal_single_accumulators() {
        // group 0: days 0, 0, 7, 30; group 1: day 3 only; group 2: nothing kept
        let ts = [0, DAY / 2, 7 * DAY, 3 * DAY, 30 * DAY, 5 * DAY, 99 * DAY];
        let amount = [10.0, 5.0, 7.0, 1.0, 20.0, 4.0, 2.0];
        let groups = [0, 0, 0, 1, 0, 2, 1];
        let filter = BooleanArray::from(vec![true, true, true, true, true, false, true]);
        let end = 40 * DAY;
        let values = args(&ts, &amount, end);

        let mut expected = Vec::new();
        for g in 0..3 {
            let mut acc = RowAccumulator::new(OrdersAccumulator::new("btyd_summary", false));
            let rows: Vec<usize> = (0..ts.len())
                .filter(|&i| groups[i] == g && filter.value(i))
                .collect();
            let t: Vec<i64> = rows.iter().map(|&i| ts[i]).collect();
            let a: Vec<f64> = rows.iter().map(|&i| amount[i]).collect();
            acc.update_batch(&args(&t, &a, end)).unwrap();
            expected.push(acc.evaluate().unwrap());
        }
        assert!(expected[2].is_null());
        // ... and so are its fields (`s['frequency']` of a customer without orders)
        let ScalarValue::Struct(null) = &expected[2] else {
            panic!("not a struct")
        };
        assert!(null.column(0).is_null(0));

        let mut partial = RowGroups::new(OrdersAccumulator::new("btyd_summary", false));
        partial
            .update_batch(&values, &groups, Some(&filter), 3)
            .unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        // merged into a final accumulator whose groups are numbered 2, 0, 1
        let mut fin = RowGroups::new(OrdersAccumulator::new("btyd_summary", false));
        fin.merge_batch(&state, &[2, 0, 1], 3).unwrap();
        let first = fin.evaluate(EmitTo::First(1)).unwrap();
        let rest = fin.evaluate(EmitTo::All).unwrap();
        let got: Vec<ScalarValue> = [(&first, 0), (&rest, 0), (&rest, 1)]
            .iter()
            .map(|(a, i)| ScalarValue::try_from_array(a, *i).unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                expected[1].clone(),
                expected[2].clone(),
                expected[0].clone()
            ]
        );
        // group 0: purchase days 0 (15.00), 7, 30 → frequency 2, monetary (7 + 20) / 2
        let ScalarValue::Struct(s) = &expected[0] else {
            panic!("not a struct")
        };
        assert_eq!(s.column(0).as_primitive::<Int64Type>().value(0), 2);
        assert_eq!(s.column(3).as_primitive::<Float64Type>().value(0), 13.5);
    }
}
