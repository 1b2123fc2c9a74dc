//! CRM functions: customer lifecycle stage. The rule lives in
//! [`crate::rules::lifecycle`].

mod lifecycle_stage;

pub use lifecycle_stage::LifecycleStageFunc;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![Arc::new(ScalarUDF::from(LifecycleStageFunc::new()))],
        ..Functions::default()
    }
}
