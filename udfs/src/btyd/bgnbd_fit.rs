//! `bgnbd_fit(frequency, recency, t [, penalizer])` aggregate.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use super::collect::{CollectAccumulator, state_fields};
use crate::rules::btyd::{Rfm, bgnbd};
use crate::util::{Kind, coerce_all};

const NAME: &str = "bgnbd_fit";

/// The result type: {r, alpha, a, b, ll, n, converged}.
pub fn result_fields() -> Fields {
    Fields::from(vec![
        Field::new("r", DataType::Float64, false),
        Field::new("alpha", DataType::Float64, false),
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Float64, false),
        Field::new("ll", DataType::Float64, false),
        Field::new("n", DataType::Int64, false),
        Field::new("converged", DataType::Boolean, false),
    ])
}

/// `bgnbd_fit(frequency, recency, t [, penalizer]) -> Struct`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Fits the BG/NBD model (Fader, Hardie & Lee 2005) by maximum likelihood and returns {r, alpha, a, b, ll, n, converged}: the parameters (alpha in the time unit of recency and t), the total log-likelihood, the customers used and whether the optimiser converged (a warning is logged when it did not). Rows with a NULL are skipped. Identical (frequency, recency, t) rows are grouped, so the cost depends on the distinct rows. Errors on fewer than 3 customers, when no customer has a repeat purchase, on negative values or recency > t.",
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

fn finish(cols: &[Vec<f64>], penalizer: Option<f64>) -> Result<ScalarValue> {
    let rows: Vec<Rfm> = cols[0]
        .iter()
        .zip(&cols[1])
        .zip(&cols[2])
        .map(|((&x, &t_x), &t)| Rfm { x, t_x, t })
        .collect();
    let fit = match bgnbd::fit(&rows, penalizer.unwrap_or(0.0)) {
        Ok(f) => f,
        Err(e) => return exec_err!("{NAME}: {e}"),
    };
    if !fit.converged {
        log::warn!(
            "{NAME}: the optimiser did not converge on {} customers (r={}, alpha={}, a={}, b={}); try a penalizer",
            fit.n,
            fit.params.r,
            fit.params.alpha,
            fit.params.a,
            fit.params.b
        );
    }
    let f = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
    let arrays: Vec<ArrayRef> = vec![
        f(fit.params.r),
        f(fit.params.alpha),
        f(fit.params.a),
        f(fit.params.b),
        f(fit.ll),
        Arc::new(Int64Array::from(vec![fit.n as i64])),
        Arc::new(BooleanArray::from(vec![fit.converged])),
    ];
    Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
        result_fields(),
        arrays,
        None,
    )?)))
}

impl AggregateUDFImpl for BgnbdFitFunc {
    fn name(&self) -> &str {
        NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            NAME,
            &[
                ("frequency", Kind::Number),
                ("recency", Kind::Number),
                ("t", Kind::Number),
                ("penalizer", Kind::Number),
            ],
            3,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(result_fields()))
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CollectAccumulator::new(
            NAME,
            3,
            "penalizer",
            finish,
        )))
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(
            NAME,
            &["frequency", "recency", "t"],
            "penalizer",
        ))
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
