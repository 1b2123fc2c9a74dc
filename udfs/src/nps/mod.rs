//! CRM functions: Net Promoter Score.

// One file per SQL function, named after it, even when the family has one member.
#[allow(clippy::module_inception)]
mod nps;

pub use nps::NpsFunc;

use std::sync::Arc;

use datafusion::logical_expr::AggregateUDF;

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        aggregate: vec![Arc::new(AggregateUDF::from(NpsFunc::new()))],
        ..Functions::default()
    }
}
