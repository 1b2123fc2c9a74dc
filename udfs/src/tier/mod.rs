//! CRM functions: membership tiers. The rule lives in [`crate::rules::tier`].

mod member_tier;

pub use member_tier::MemberTierFunc;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![Arc::new(ScalarUDF::from(MemberTierFunc::new()))],
        ..Functions::default()
    }
}
