//! `gamma_gamma_expected_value(params, frequency, monetary_value)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::common::{Arg, GG_FIELDS, coerce_args, gg_params, non_negative, positive, run_rows};
use crate::rules::btyd::gamma_gamma;

const SPEC: &[(&str, Arg)] = &[
    ("params", Arg::Params(GG_FIELDS)),
    ("frequency", Arg::Number),
    ("monetary_value", Arg::Number),
];

/// `gamma_gamma_expected_value(params, frequency, monetary_value) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Gamma-Gamma expected value of one future purchase of this customer, E[M | frequency, monetary_value]: a weighted mean of the customer's observed mean repeat purchase value and the population mean p·v/(q−1) (which it equals for frequency 0). In the currency of monetary_value.",
    syntax_example = "gamma_gamma_expected_value(params, frequency, monetary_value)",
    sql_example = r#"```sql
> SELECT gamma_gamma_expected_value(gg.p, s['frequency'], s['monetary_value']) FROM summaries CROSS JOIN gg;
```"#,
    argument(
        name = "params",
        description = "The struct returned by `gamma_gamma_fit` (fields p, q, v)."
    ),
    argument(name = "frequency", description = "Repeat purchase days."),
    argument(
        name = "monetary_value",
        description = "Mean value of the repeat purchases (ignored when frequency is 0)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GammaGammaExpectedValueFunc {
    signature: Signature,
}

impl Default for GammaGammaExpectedValueFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl GammaGammaExpectedValueFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for GammaGammaExpectedValueFunc {
    fn name(&self) -> &str {
        "gamma_gamma_expected_value"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_args(self.name(), SPEC, arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = self.name();
        run_rows(name, SPEC, &args, |v| {
            let p = gg_params(name, "params", &v[..3])?;
            let x = non_negative(name, "frequency", v[3])?;
            let m = if x > 0.0 {
                positive(name, "monetary_value", v[4])?
            } else {
                0.0
            };
            Ok(gamma_gamma::expected_value(&p, x, m))
        })
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
