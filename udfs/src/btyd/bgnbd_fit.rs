//! `bgnbd_fit(frequency, recency, t [, penalizer])` aggregate.

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::collect::{FitSpec, Fitted, rfm_rows};
use crate::rules::btyd::{FitError, bgnbd};

static SPEC: FitSpec = FitSpec {
    name: "bgnbd_fit",
    columns: &["frequency", "recency", "t"],
    params: &["r", "alpha", "a", "b"],
    counted: "customers",
    fit,
};

fn fit(cols: &[Vec<f64>], penalizer: f64) -> Result<Fitted, FitError> {
    let f = bgnbd::fit(&rfm_rows(cols), penalizer)?;
    let p = f.params;
    Ok(Fitted {
        params: vec![p.r, p.alpha, p.a, p.b],
        ll: f.ll,
        n: f.n,
        converged: f.converged,
    })
}

/// `bgnbd_fit(frequency, recency, t [, penalizer]) -> Struct`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Fits the BG/NBD model (Fader, Hardie & Lee 2005) by maximum likelihood and returns {r, alpha, a, b, ll, n, converged}: the parameters (alpha in the time unit of recency and t), the total log-likelihood, the customers used and whether the optimiser converged (a warning is logged when it did not). Rows with a NULL are skipped. Identical (frequency, recency, t) rows are grouped, so the cost depends on the distinct rows; from 50,000 distinct rows on, the optimiser starts from the fit of every 16th of them (the same maximum in a few full evaluations). Errors on fewer than 3 customers, when no customer has a repeat purchase, on negative values or recency > t.",
    syntax_example = "bgnbd_fit(frequency, recency, t [, penalizer])",
    sql_example = r#"```sql
> WITH s AS (SELECT customer_id, btyd_summary(order_ts, amount, TIMESTAMP '2025-12-31 23:59:59', 7) AS s FROM orders GROUP BY customer_id)
  SELECT bgnbd_fit(s['frequency'], s['recency'], s['t']) FROM s;
```"#,
    argument(
        name = "frequency",
        description = "Repeat purchase days (from btyd_summary)."
    ),
    argument(
        name = "recency",
        description = "First → last purchase, in model time units."
    ),
    argument(
        name = "t",
        description = "First purchase → end of observation, in model time units."
    ),
    argument(
        name = "penalizer",
        description = "Optional L2 penalty on the parameters, as in lifetimes' penalizer_coef (default 0)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BgnbdFitFunc {
    signature: Signature,
}

impl Default for BgnbdFitFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl BgnbdFitFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for BgnbdFitFunc {
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
