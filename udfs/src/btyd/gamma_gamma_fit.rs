//! `gamma_gamma_fit(frequency, monetary_value [, penalizer])` aggregate.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::collect::{FitSpec, Fitted};
use crate::rules::btyd::{FitError, gamma_gamma};

static SPEC: FitSpec = FitSpec {
    name: "gamma_gamma_fit",
    columns: &["frequency", "monetary_value"],
    params: &["p", "q", "v"],
    counted: "repeat buyers",
    fit,
};

fn fit(cols: &[Vec<f64>], penalizer: f64) -> Result<Fitted, FitError> {
    let rows: Vec<(f64, f64)> = cols[0]
        .iter()
        .copied()
        .zip(cols[1].iter().copied())
        .collect();
    let f = gamma_gamma::fit(&rows, penalizer)?;
    let p = f.params;
    Ok(Fitted {
        params: vec![p.p, p.q, p.v],
        ll: f.ll,
        n: f.n,
        converged: f.converged,
    })
}

/// `gamma_gamma_fit(frequency, monetary_value [, penalizer]) -> Struct`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Fits the Gamma-Gamma spend model by maximum likelihood on the repeat buyers (rows with frequency > 0; others are skipped, as are NULLs) and returns {p, q, v, ll, n, converged}; q > 1 is enforced so that expected values are finite. n is the number of repeat buyers used. From 50,000 repeat buyers on, the optimiser starts from the fit of every 16th of them (the same maximum in a few full evaluations). Errors on fewer than 3 repeat buyers, negative frequencies or a non-positive monetary_value for a repeat buyer.",
    syntax_example = "gamma_gamma_fit(frequency, monetary_value [, penalizer])",
    sql_example = r#"```sql
> SELECT gamma_gamma_fit(s['frequency'], s['monetary_value']) FROM summaries;
```"#,
    argument(
        name = "frequency",
        description = "Repeat purchase days (from btyd_summary)."
    ),
    argument(
        name = "monetary_value",
        description = "Mean value of the repeat purchases."
    ),
    argument(
        name = "penalizer",
        description = "Optional L2 penalty on the parameters, as in lifetimes' penalizer_coef (default 0)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GammaGammaFitFunc {
    signature: Signature,
}

impl Default for GammaGammaFitFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl GammaGammaFitFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for GammaGammaFitFunc {
    fn name(&self) -> &str {
        SPEC.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        SPEC.coerce_types(arg_types)
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(SPEC.return_type())
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(SPEC.accumulator())
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(SPEC.state_fields())
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
