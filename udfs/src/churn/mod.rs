//! CRM functions: churn.

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions::default()
}
