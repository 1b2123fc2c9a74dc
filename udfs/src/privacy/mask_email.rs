//! `mask_email(email)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{Kind, coerce_all};

/// `mask_email(email) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Masks an e-mail address for display: the first character of the local part, `***`, then `@` and the domain unchanged (`alice@example.com` → `a***@example.com`). The last `@` separates local part and domain; an empty local part gives `***@domain`; a value without `@` is masked like a name (`a***`). NULL gives NULL.",
    syntax_example = "mask_email(email)",
    sql_example = r#"```sql
> SELECT mask_email('alice@example.com');
a***@example.com
```"#,
    argument(name = "email", description = "The e-mail address (string).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskEmailFunc {
    signature: Signature,
}

impl Default for MaskEmailFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskEmailFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The masking rule (see the documentation above).
pub fn mask_email(s: &str, out: &mut String) {
    match s.rfind('@') {
        Some(at) => {
            if let Some(c) = s[..at].chars().next() {
                out.push(c);
            }
            out.push_str("***");
            out.push_str(&s[at..]);
        }
        None => super::mask_name::mask_name(s, out),
    }
}

impl ScalarUDFImpl for MaskEmailFunc {
    fn name(&self) -> &str {
        "mask_email"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(self.name(), &[("email", Kind::Text)], 1, arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [email] = take_function_args(self.name(), &args.args)?;
        super::map_strings(email, mask_email)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        let mut out = String::new();
        mask_email(s, &mut out);
        out
    }

    #[test]
    fn masks_emails() {
        assert_eq!(m("alice@example.com"), "a***@example.com");
        assert_eq!(m("\"a@b\"@example.com"), "\"***@example.com");
        assert_eq!(m("@example.com"), "***@example.com");
        assert_eq!(m("noatsign"), "n***");
        assert_eq!(m("élodie@exemple.fr"), "é***@exemple.fr");
        assert_eq!(m(""), "");
    }
}
