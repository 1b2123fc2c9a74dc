//! `btyd_summary(order_ts, amount, observation_end, unit_days)` and
//! `btyd_holdout(order_ts, calibration_end, observation_end, unit_days)`
//! aggregates (they share the per-customer order accumulator).

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

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
        Ok(Box::new(OrdersAccumulator::new("btyd_summary", false)))
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
        Ok(Box::new(OrdersAccumulator::new("btyd_holdout", true)))
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(self.name()))
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// One customer's orders as (UTC day, amount), and the constant arguments.
#[derive(Debug)]
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
}

impl Accumulator for OrdersAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let func = self.func;
        let ts = as_micros(&values[0])?;
        let (amount, cal) = if self.holdout {
            (None, Some(as_micros(&values[1])?))
        } else {
            (Some(as_f64(&values[1])?), None)
        };
        let end = as_micros(&values[2])?;
        let unit = as_f64(&values[3])?;
        for i in 0..ts.len() {
            if end.is_null(i) || unit.is_null(i) {
                continue;
            }
            let end_us = end.value(i);
            same(
                func,
                "observation_end",
                &mut self.end_day,
                end_us.div_euclid(MICROS_PER_DAY),
            )?;
            let u = unit.value(i);
            if !(u.is_finite() && u > 0.0) {
                return exec_err!("{func}: argument unit_days must be positive, got {u}");
            }
            same(func, "unit_days", &mut self.unit_days, u)?;
            if let Some(cal) = &cal
                && !cal.is_null(i)
            {
                same(
                    func,
                    "calibration_end",
                    &mut self.cal_day,
                    cal.value(i).div_euclid(MICROS_PER_DAY),
                )?;
            }
            if ts.is_null(i) || ts.value(i) > end_us {
                continue;
            }
            let v = match &amount {
                Some(a) if a.is_null(i) => continue,
                Some(a) => a.value(i),
                None => 0.0,
            };
            if !(v.is_finite() && v >= 0.0) {
                return exec_err!("{func}: argument amount must be non-negative, got {v}");
            }
            self.orders
                .push((ts.value(i).div_euclid(MICROS_PER_DAY), v));
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (Some(end_day), Some(unit)) = (self.end_day, self.unit_days) else {
            let fields = if self.holdout {
                holdout_fields()
            } else {
                summary_fields()
            };
            return ScalarValue::try_from(DataType::Struct(fields));
        };
        let f = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
        let i = |v: f64| Arc::new(Int64Array::from(vec![v as i64])) as ArrayRef;
        if self.holdout {
            let Some(cal_day) = self.cal_day else {
                return ScalarValue::try_from(DataType::Struct(holdout_fields()));
            };
            if cal_day > end_day {
                return exec_err!(
                    "{}: argument calibration_end must not be after observation_end",
                    self.func
                );
            }
            let (freq, dur) = summary::holdout(&mut self.orders, cal_day, end_day, unit);
            return Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
                holdout_fields(),
                vec![i(freq), f(dur)],
                None,
            )?)));
        }
        match summary::summarise(&mut self.orders, end_day, unit) {
            None => ScalarValue::try_from(DataType::Struct(summary_fields())),
            Some(s) => Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
                summary_fields(),
                vec![i(s.frequency), f(s.recency), f(s.t), f(s.monetary_value)],
                None,
            )?))),
        }
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.orders.capacity() * 16
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let orders = std::mem::take(&mut self.orders);
        let days = ListArray::from_iter_primitive::<Int64Type, _, _>([Some(
            orders.iter().map(|o| Some(o.0)),
        )]);
        let amounts = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
            orders.iter().map(|o| Some(o.1)),
        )]);
        Ok(vec![
            ScalarValue::List(Arc::new(days)),
            ScalarValue::List(Arc::new(amounts)),
            ScalarValue::Int64(self.end_day),
            ScalarValue::Int64(self.cal_day),
            ScalarValue::Float64(self.unit_days),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let func = self.func;
        let days = states[0].as_list::<i32>();
        let amounts = states[1].as_list::<i32>();
        for r in 0..days.len() {
            if days.is_null(r) || amounts.is_null(r) {
                continue;
            }
            let d = days.value(r);
            let a = amounts.value(r);
            let d = d.as_primitive::<Int64Type>();
            let a = a.as_primitive::<Float64Type>();
            self.orders
                .extend(d.values().iter().copied().zip(a.values().iter().copied()));
        }
        for v in states[2].as_primitive::<Int64Type>().iter().flatten() {
            same(func, "observation_end", &mut self.end_day, v)?;
        }
        for v in states[3].as_primitive::<Int64Type>().iter().flatten() {
            same(func, "calibration_end", &mut self.cal_day, v)?;
        }
        for v in states[4].as_primitive::<Float64Type>().iter().flatten() {
            same(func, "unit_days", &mut self.unit_days, v)?;
        }
        Ok(())
    }
}
