//! `mbgnbd_probability_of_n(params, horizon, n)`.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::common::{
    Arg, MBGNBD_FIELDS, coerce_args, mbgnbd_params, non_negative, positive, run_rows,
};
use crate::rules::btyd::mbgnbd;

const SPEC: &[(&str, Arg)] = &[
    ("params", Arg::Params(MBGNBD_FIELDS)),
    ("horizon", Arg::Number),
    ("n", Arg::Number),
];

/// `mbgnbd_probability_of_n(params, horizon, n) -> Float64`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "MBG/NBD probability P(N(horizon) = n) that a customer drawn at random from the population makes exactly `n` repeat purchases in the first `horizon` time units after their first purchase (a population quantity, not conditional on a customer's history; as lifetimes' probability_of_n_purchases_up_to_time).",
    syntax_example = "mbgnbd_probability_of_n(params, horizon, n)",
    sql_example = r#"```sql
> SELECT n, mbgnbd_probability_of_n(fit.p, 39, n) FROM fit CROSS JOIN (VALUES (0), (1), (2)) AS v(n);
```"#,
    argument(
        name = "params",
        description = "The struct returned by `mbgnbd_fit` (fields r, alpha, a, b)."
    ),
    argument(
        name = "horizon",
        description = "Length of the period, in model time units (> 0)."
    ),
    argument(
        name = "n",
        description = "Number of repeat purchases (whole number ≥ 0)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MbgnbdProbabilityOfNFunc {
    signature: Signature,
}

impl Default for MbgnbdProbabilityOfNFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl MbgnbdProbabilityOfNFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MbgnbdProbabilityOfNFunc {
    fn name(&self) -> &str {
        "mbgnbd_probability_of_n"
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
            let h = positive(name, "horizon", v[4])?;
            let n = non_negative(name, "n", v[5])?;
            if n.fract() != 0.0 || n > 1e6 {
                return exec_err!(
                    "{name}: argument n must be a whole number up to 1,000,000, got {n}"
                );
            }
            Ok(mbgnbd::probability_of_n(&p, h, n as u64))
        })
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
