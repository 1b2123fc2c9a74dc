//! CRM functions: personal-data masking and keyed pseudonyms.
//!
//! `mask_phone`, `mask_email` and `mask_name` hide personal data for display
//! (the `viewer` role); `pseudonymize` replaces an identifier with a stable
//! keyed hash so that joins keep working without revealing the value.

mod mask_email;
mod mask_name;
mod mask_phone;
mod pseudonymize;

pub use mask_email::MaskEmailFunc;
pub use mask_name::MaskNameFunc;
pub use mask_phone::MaskPhoneFunc;
pub use pseudonymize::PseudonymizeFunc;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF};

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![
            Arc::new(ScalarUDF::from(MaskPhoneFunc::new())),
            Arc::new(ScalarUDF::from(MaskEmailFunc::new())),
            Arc::new(ScalarUDF::from(MaskNameFunc::new())),
            Arc::new(ScalarUDF::from(PseudonymizeFunc::new())),
        ],
        ..Functions::default()
    }
}

/// Apply a masking rule to a string argument, reusing one buffer for every row.
pub(crate) fn map_strings(
    arg: &ColumnarValue,
    rule: fn(&str, &mut String),
) -> Result<ColumnarValue> {
    let scalar = matches!(arg, ColumnarValue::Scalar(_));
    let array: ArrayRef = cast(&arg.to_array(1)?, &DataType::Utf8)?;
    let strings = array.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(strings.len(), strings.value_data().len() + 8);
    let mut buf = String::new();
    for v in strings.iter() {
        match v {
            Some(s) => {
                buf.clear();
                rule(s, &mut buf);
                out.append_value(&buf);
            }
            None => out.append_null(),
        }
    }
    crate::util::finish(Arc::new(out.finish()), scalar)
}
