//! CRM functions: churn warning signals.

mod churn_warning;
mod orders_before_last;
mod overdue_ratio;

pub use churn_warning::ChurnWarningFunc;
pub use orders_before_last::OrdersBeforeLastFunc;
pub use overdue_ratio::OverdueRatioFunc;

use std::sync::Arc;

use datafusion::logical_expr::{AggregateUDF, ScalarUDF};

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![
            Arc::new(ScalarUDF::from(ChurnWarningFunc::new())),
            Arc::new(ScalarUDF::from(OverdueRatioFunc::new())),
        ],
        aggregate: vec![Arc::new(AggregateUDF::from(OrdersBeforeLastFunc::new()))],
        ..Functions::default()
    }
}
