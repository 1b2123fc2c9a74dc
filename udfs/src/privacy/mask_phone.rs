//! `mask_phone(phone)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, utils::take_function_args};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::util::{Kind, coerce_all};

/// `mask_phone(phone) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Masks a phone number for display. Counting characters: with 8 or more, keeps the first 3 and the last 4 and replaces the rest with `*` (`13812341234` → `138****1234`); with 3 to 7, keeps only the last 2; with 1 or 2, masks all. Separators such as `+`, `-` or spaces count as characters. NULL gives NULL.",
    syntax_example = "mask_phone(phone)",
    sql_example = r#"```sql
> SELECT mask_phone('13812341234');
138****1234
```"#,
    argument(name = "phone", description = "The phone number (string).")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskPhoneFunc {
    signature: Signature,
}

impl Default for MaskPhoneFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskPhoneFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The masking rule (see the documentation above).
pub fn mask_phone(s: &str, out: &mut String) {
    let n = s.chars().count();
    let (keep_head, keep_tail) = match n {
        0..=2 => (0, 0),
        3..=7 => (0, 2),
        _ => (3, 4),
    };
    for (i, c) in s.chars().enumerate() {
        if i < keep_head || i >= n - keep_tail {
            out.push(c);
        } else {
            out.push('*');
        }
    }
}

impl ScalarUDFImpl for MaskPhoneFunc {
    fn name(&self) -> &str {
        "mask_phone"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(self.name(), &[("phone", Kind::Text)], 1, arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [phone] = take_function_args(self.name(), &args.args)?;
        super::map_strings(phone, mask_phone)
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
        mask_phone(s, &mut out);
        out
    }

    #[test]
    fn masks_phone_numbers() {
        assert_eq!(m("13812341234"), "138****1234");
        assert_eq!(m("+8613812341234"), "+86*******1234");
        assert_eq!(m("12345678"), "123*5678");
        assert_eq!(m("1234567"), "*****67");
        assert_eq!(m("123"), "*23");
        assert_eq!(m("12"), "**");
        assert_eq!(m(""), "");
        assert_eq!(m("电话号码一二三四五"), "电话号**二三四五");
    }
}
