//! CRM functions: consumption cycle (inter-purchase interval, next purchase,
//! due for repurchase), crm-formulas.md §4.7, and the calendar month a
//! purchase falls in (`month_start`).

mod due_for_repurchase;
mod month_start;
mod next_purchase_date;
mod purchase_interval;

pub use due_for_repurchase::DueForRepurchaseFunc;
pub use month_start::MonthStartFunc;
pub use next_purchase_date::NextPurchaseDateFunc;
pub use purchase_interval::PurchaseIntervalFunc;

use std::sync::Arc;

use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use crate::Functions;
use crate::util::MICROS_PER_DAY;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![
            Arc::new(ScalarUDF::from(NextPurchaseDateFunc::new())),
            Arc::new(ScalarUDF::from(DueForRepurchaseFunc::new())),
            Arc::new(ScalarUDF::from(MonthStartFunc::new())),
        ],
        aggregate: vec![Arc::new(AggregateUDF::from(PurchaseIntervalFunc::new()))],
        ..Functions::default()
    }
}

/// `last + interval_days` in µs, checking the interval and overflow.
pub(crate) fn next_date(func: &str, last: i64, interval_days: f64) -> Result<i64> {
    if !interval_days.is_finite() || interval_days < 0.0 {
        return exec_err!(
            "{func}: argument interval_days must be a finite number of days ≥ 0, got {interval_days}"
        );
    }
    let delta = (interval_days * MICROS_PER_DAY).round();
    if delta >= i64::MAX as f64 {
        return exec_err!("{func}: argument interval_days ({interval_days}) is too large");
    }
    match last.checked_add(delta as i64) {
        Some(t) => Ok(t),
        None => exec_err!(
            "{func}: last_order_ts + interval_days ({interval_days}) is out of the timestamp range"
        ),
    }
}
