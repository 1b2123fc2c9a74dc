//! `mbgnbd_expected_purchases(params, horizon, frequency, recency, t)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::common::{Arg, MBGNBD_FIELDS, coerce_args, mbgnbd_params, non_negative, rfm, run_rows};
use crate::rules::btyd::mbgnbd;

const SPEC: &[(&str, Arg)] = &[
    ("params", Arg::Params(MBGNBD_FIELDS)),
    ("horizon", Arg::Number),
    ("frequency", Arg::Number),
    ("recency", Arg::Number),
    ("t", Arg::Number),
];

/// `mbgnbd_expected_purchases(params, horizon, frequency, recency, t) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "MBG/NBD expected number of purchases E[Y(horizon) | frequency, recency, t] of this customer in the next `horizon` time units (conditional on their history; Wagner & Hoppe 2008, as lifetimes computes it). All times in the unit the parameters were fitted in (weeks when the summary used unit_days = 7).",
    syntax_example = "mbgnbd_expected_purchases(params, horizon, frequency, recency, t)",
    sql_example = r#"```sql
> SELECT mbgnbd_expected_purchases(fit.p, 52, s['frequency'], s['recency'], s['t']) FROM summaries CROSS JOIN fit;
```"#,
    argument(
        name = "params",
        description = "The struct returned by `mbgnbd_fit` (fields r, alpha, a, b)."
    ),
    argument(
        name = "horizon",
        description = "Length of the future period, in model time units (≥ 0)."
    ),
    argument(name = "frequency", description = "Repeat purchase days."),
    argument(
        name = "recency",
        description = "First → last purchase, in model time units."
    ),
    argument(
        name = "t",
        description = "First purchase → end of observation, in model time units."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MbgnbdExpectedPurchasesFunc {
    signature: Signature,
}

impl Default for MbgnbdExpectedPurchasesFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MbgnbdExpectedPurchasesFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MbgnbdExpectedPurchasesFunc {
    fn name(&self) -> &str {
        "mbgnbd_expected_purchases"
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
            let p = mbgnbd_params(name, "params", &v[..4])?;
            let h = non_negative(name, "horizon", v[4])?;
            let c = rfm(name, v[5], v[6], v[7])?;
            Ok(mbgnbd::expected_purchases(&p, h, &c))
        })
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
