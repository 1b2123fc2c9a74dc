//! CRM functions: value.

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions::default()
}
