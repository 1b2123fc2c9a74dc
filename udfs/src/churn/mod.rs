//! CRM functions: churn warning signals.

mod churn_warning;
mod overdue_ratio;

pub use churn_warning::ChurnWarningFunc;
pub use overdue_ratio::OverdueRatioFunc;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![
            Arc::new(ScalarUDF::from(ChurnWarningFunc::new())),
            Arc::new(ScalarUDF::from(OverdueRatioFunc::new())),
        ],
        ..Functions::default()
    }
}
