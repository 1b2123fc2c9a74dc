//! `gamma_gamma_fit(frequency, monetary_value [, penalizer])` aggregate.

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
use crate::rules::btyd::gamma_gamma;
use crate::util::{Kind, coerce_all};

const NAME: &str = "gamma_gamma_fit";

/// The result type: {p, q, v, ll, n, converged}.
pub fn result_fields() -> Fields {
    Fields::from(vec![
        Field::new("p", DataType::Float64, false),
        Field::new("q", DataType::Float64, false),
        Field::new("v", DataType::Float64, false),
        Field::new("ll", DataType::Float64, false),
        Field::new("n", DataType::Int64, false),
        Field::new("converged", DataType::Boolean, false),
    ])
}

/// `gamma_gamma_fit(frequency, monetary_value [, penalizer]) -> Struct`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "Fits the Gamma-Gamma spend model by maximum likelihood on the repeat buyers (rows with frequency > 0; others are skipped, as are NULLs) and returns {p, q, v, ll, n, converged}; q > 1 is enforced so that expected values are finite. n is the number of repeat buyers used. Errors on fewer than 3 repeat buyers, negative frequencies or a non-positive monetary_value for a repeat buyer.",
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

fn finish(cols: &[Vec<f64>], penalizer: Option<f64>) -> Result<ScalarValue> {
    let rows: Vec<(f64, f64)> = cols[0]
        .iter()
        .copied()
        .zip(cols[1].iter().copied())
        .collect();
    let fit = match gamma_gamma::fit(&rows, penalizer.unwrap_or(0.0)) {
        Ok(f) => f,
        Err(e) => return exec_err!("{NAME}: {e}"),
    };
    if !fit.converged {
        log::warn!(
            "{NAME}: the optimiser did not converge on {} repeat buyers (p={}, q={}, v={}); try a penalizer",
            fit.n,
            fit.params.p,
            fit.params.q,
            fit.params.v
        );
    }
    let f = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
    let arrays: Vec<ArrayRef> = vec![
        f(fit.params.p),
        f(fit.params.q),
        f(fit.params.v),
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

impl AggregateUDFImpl for GammaGammaFitFunc {
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
                ("monetary_value", Kind::Number),
                ("penalizer", Kind::Number),
            ],
            2,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(result_fields()))
    }
    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CollectAccumulator::new(
            NAME,
            2,
            "penalizer",
            finish,
        )))
    }
    fn state_fields(&self, _args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(
            NAME,
            &["frequency", "monetary_value"],
            "penalizer",
        ))
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}
