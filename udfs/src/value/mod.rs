//! CRM functions: multi-dimensional customer value score (crm-formulas.md §4.8).

mod value_score;

pub use value_score::ValueScoreFunc;

use std::sync::Arc;

use datafusion::logical_expr::WindowUDF;

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        window: vec![Arc::new(WindowUDF::from(ValueScoreFunc::new()))],
        ..Functions::default()
    }
}
