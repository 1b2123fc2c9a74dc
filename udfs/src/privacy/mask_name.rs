//! `mask_name(name)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{Kind, coerce_all};

/// `mask_name(name) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Masks a person's name for display: the first character followed by `***` (`Alice Smith` → `A***`, `王小明` → `王***`). Leading spaces are skipped; an empty or blank name gives an empty string. NULL gives NULL.",
    syntax_example = "mask_name(name)",
    sql_example = r#"```sql
> SELECT mask_name('Alice Smith');
A***
```"#,
    argument(name = "name", description = "The name (string).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskNameFunc {
    signature: Signature,
}

impl Default for MaskNameFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskNameFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The masking rule (see the documentation above).
pub fn mask_name(s: &str, out: &mut String) {
    if let Some(c) = s.trim_start().chars().next() {
        out.push(c);
        out.push_str("***");
    }
}

impl ScalarUDFImpl for MaskNameFunc {
    fn name(&self) -> &str {
        "mask_name"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(self.name(), &[("name", Kind::Text)], 1, arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [name] = take_function_args(self.name(), &args.args)?;
        super::map_strings(name, mask_name)
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
        mask_name(s, &mut out);
        out
    }

    #[test]
    fn masks_names() {
        assert_eq!(m("Alice Smith"), "A***");
        assert_eq!(m("王小明"), "王***");
        assert_eq!(m("  bob"), "b***");
        assert_eq!(m(""), "");
        assert_eq!(m("   "), "");
    }
}
