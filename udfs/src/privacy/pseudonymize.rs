//! `pseudonymize(value, key)`.

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::util::{Kind, all_scalar, coerce_all, finish};

/// `pseudonymize(value, key) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Replaces a value by a stable keyed pseudonym: the lowercase hex HMAC-SHA256 of the value's UTF-8 bytes under the key's UTF-8 bytes (64 hex characters). The same value and key always give the same pseudonym, so joins on pseudonymized ids still work; without the key the value cannot be recovered or guessed by hashing candidates. NULL value or key gives NULL; an empty key is an error.",
    syntax_example = "pseudonymize(value, key)",
    sql_example = r#"```sql
> SELECT pseudonymize('what do ya want for nothing?', 'Jefe');
5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843
```"#,
    argument(
        name = "value",
        description = "The value to pseudonymize (string; cast other types, e.g. `CAST(customer_id AS VARCHAR)`)."
    ),
    argument(
        name = "key",
        description = "The secret key (non-empty string). Keep it out of SQL history: pass it from configuration."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PseudonymizeFunc {
    signature: Signature,
}

impl Default for PseudonymizeFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl PseudonymizeFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// Lowercase hex HMAC-SHA256(key, value), written into `out`.
pub fn hmac_hex(key: &[u8], value: &[u8], out: &mut String) -> Result<()> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(e) => return exec_err!("pseudonymize: argument key is not usable: {e}"),
    };
    mac.update(value);
    for b in mac.finalize().into_bytes() {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    Ok(())
}

impl ScalarUDFImpl for PseudonymizeFunc {
    fn name(&self) -> &str {
        "pseudonymize"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[("value", Kind::Text), ("key", Kind::Text)],
            2,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = all_scalar(&args.args);
        let n = args.number_rows;
        let [value, key] = take_function_args(self.name(), &args.args)?;
        let value = cast(&value.to_array(n)?, &DataType::Utf8)?;
        let key = cast(&key.to_array(n)?, &DataType::Utf8)?;
        let (value, key) = (value.as_string::<i32>(), key.as_string::<i32>());
        let mut out = StringBuilder::with_capacity(value.len(), value.len() * 64);
        let mut buf = String::with_capacity(64);
        for (v, k) in value.iter().zip(key.iter()) {
            match (v, k) {
                (_, Some("")) => {
                    return exec_err!("pseudonymize: argument key must not be empty");
                }
                (Some(v), Some(k)) => {
                    buf.clear();
                    hmac_hex(k.as_bytes(), v.as_bytes(), &mut buf)?;
                    out.append_value(&buf);
                }
                _ => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        let mut out = String::new();
        hmac_hex(b"Jefe", b"what do ya want for nothing?", &mut out).unwrap();
        assert_eq!(
            out,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc4231_test_case_1() {
        let mut out = String::new();
        hmac_hex(&[0x0b; 20], b"Hi There", &mut out).unwrap();
        assert_eq!(
            out,
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }
}
