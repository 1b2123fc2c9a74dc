//! `mbgnbd_p_alive(params, frequency, recency, t)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::common::{Arg, MBGNBD_FIELDS, coerce_args, mbgnbd_params, rfm, run_rows};
use crate::rules::btyd::mbgnbd;

const SPEC: &[(&str, Arg)] = &[
    ("params", Arg::Params(MBGNBD_FIELDS)),
    ("frequency", Arg::Number),
    ("recency", Arg::Number),
    ("t", Arg::Number),
];

/// `mbgnbd_p_alive(params, frequency, recency, t) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "MBG/NBD probability that the customer is still alive at the end of observation, P(alive | frequency, recency, t) = 1 / (1 + a/(b + frequency) ((alpha + t)/(alpha + recency))^(r + frequency)), between 0 and 1; below 1 also for customers without repeat purchases (they may have dropped out at their first purchase). `recency` and `t` in the time unit the parameters were fitted in.",
    syntax_example = "mbgnbd_p_alive(params, frequency, recency, t)",
    sql_example = r#"```sql
> WITH fit AS (SELECT mbgnbd_fit(s['frequency'], s['recency'], s['t']) AS p FROM summaries)
  SELECT customer_id, mbgnbd_p_alive(fit.p, s['frequency'], s['recency'], s['t']) FROM summaries CROSS JOIN fit;
```"#,
    argument(
        name = "params",
        description = "The struct returned by `mbgnbd_fit` (fields r, alpha, a, b)."
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
pub struct MbgnbdPAliveFunc {
    signature: Signature,
}

impl Default for MbgnbdPAliveFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MbgnbdPAliveFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MbgnbdPAliveFunc {
    fn name(&self) -> &str {
        "mbgnbd_p_alive"
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
            let c = rfm(name, v[4], v[5], v[6])?;
            Ok(mbgnbd::p_alive(&p, &c))
        })
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
