//! `paretonbd_expected_purchases(params, horizon, frequency, recency, t)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::common::{
    Arg, PARETONBD_FIELDS, coerce_args, non_negative, pareto_result, paretonbd_params, rfm,
    run_rows,
};
use crate::rules::btyd::paretonbd;

const SPEC: &[(&str, Arg)] = &[
    ("params", Arg::Params(PARETONBD_FIELDS)),
    ("horizon", Arg::Number),
    ("frequency", Arg::Number),
    ("recency", Arg::Number),
    ("t", Arg::Number),
];

/// `paretonbd_expected_purchases(params, horizon, frequency, recency, t) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Pareto/NBD expected number of purchases E[Y(horizon) | frequency, recency, t] of this customer in the next `horizon` time units (conditional on their history; Fader & Hardie's eq. 41, as lifetimes computes it). All times in the unit the parameters were fitted in (weeks when the summary used unit_days = 7). Errors where paretonbd_p_alive does.",
    syntax_example = "paretonbd_expected_purchases(params, horizon, frequency, recency, t)",
    sql_example = r#"```sql
> SELECT paretonbd_expected_purchases(fit.p, 52, s['frequency'], s['recency'], s['t']) FROM summaries CROSS JOIN fit;
```"#,
    argument(
        name = "params",
        description = "The struct returned by `paretonbd_fit` (fields r, alpha, s, beta)."
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
pub struct ParetonbdExpectedPurchasesFunc {
    signature: Signature,
}

impl Default for ParetonbdExpectedPurchasesFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ParetonbdExpectedPurchasesFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ParetonbdExpectedPurchasesFunc {
    fn name(&self) -> &str {
        "paretonbd_expected_purchases"
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
            let p = paretonbd_params(name, "params", &v[..4])?;
            let h = non_negative(name, "horizon", v[4])?;
            let c = rfm(name, v[5], v[6], v[7])?;
            pareto_result(name, paretonbd::expected_purchases(&p, h, &c), &p, &c)
        })
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
