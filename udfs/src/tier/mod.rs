//! CRM functions: tier.

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions::default()
}
