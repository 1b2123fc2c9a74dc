//! `paretonbd_p_alive(params, frequency, recency, t)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::common::{
    Arg, PARETONBD_FIELDS, coerce_args, pareto_result, paretonbd_params, rfm, run_rows,
};
use crate::rules::btyd::paretonbd;

const SPEC: &[(&str, Arg)] = &[
    ("params", Arg::Params(PARETONBD_FIELDS)),
    ("frequency", Arg::Number),
    ("recency", Arg::Number),
    ("t", Arg::Number),
];

/// `paretonbd_p_alive(params, frequency, recency, t) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Pareto/NBD probability that the customer is still alive (their exponential lifetime has not ended) at the end of observation, P(alive | frequency, recency, t), between 0 and 1; 1 when recency = t. `recency` and `t` in the time unit the parameters were fitted in. Errors when the parameters are so extreme (min(alpha, beta) + recency below about 1/2,500 of max(alpha, beta) + recency) that the hypergeometric series cannot be summed.",
    syntax_example = "paretonbd_p_alive(params, frequency, recency, t)",
    sql_example = r#"```sql
> WITH fit AS (SELECT paretonbd_fit(s['frequency'], s['recency'], s['t']) AS p FROM summaries)
  SELECT customer_id, paretonbd_p_alive(fit.p, s['frequency'], s['recency'], s['t']) FROM summaries CROSS JOIN fit;
```"#,
    argument(
        name = "params",
        description = "The struct returned by `paretonbd_fit` (fields r, alpha, s, beta)."
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
pub struct ParetonbdPAliveFunc {
    signature: Signature,
}

impl Default for ParetonbdPAliveFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ParetonbdPAliveFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ParetonbdPAliveFunc {
    fn name(&self) -> &str {
        "paretonbd_p_alive"
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
            let c = rfm(name, v[4], v[5], v[6])?;
            pareto_result(name, paretonbd::p_alive(&p, &c), &p, &c)
        })
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
