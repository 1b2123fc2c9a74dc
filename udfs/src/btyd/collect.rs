//! The plumbing shared by the fitting aggregates (`bgnbd_fit`,
//! `paretonbd_fit`, `mbgnbd_fit`, `gamma_gamma_fit`): a [`FitSpec`] names the
//! input columns and the parameters and points at the model's fit; the
//! accumulator collects the non-NULL rows of the columns (and the constant
//! penalizer) and fits the model once, in `evaluate`, returning the struct
//! {params…, ll, n, converged}. Partial states are lists, merged by
//! concatenation, so the fit sees every row whatever the partitioning.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Accumulator;
use datafusion::logical_expr::utils::format_state_name;

use crate::rules::btyd::{FitError, Rfm};
use crate::util::{Kind, as_f64, coerce_all};

/// The name of the optional last argument of every fitting aggregate.
const OPTION: &str = "penalizer";

/// A model's fit, as the aggregate reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// Parameter values, in the order of [`FitSpec::params`].
    pub params: Vec<f64>,
    /// Total log-likelihood.
    pub ll: f64,
    /// Rows (customers, or repeat buyers) used.
    pub n: usize,
    /// Whether the optimiser met its tolerances.
    pub converged: bool,
}

/// What a fitting aggregate needs to know about its model.
#[derive(Debug)]
pub struct FitSpec {
    /// SQL name.
    pub name: &'static str,
    /// Input columns, all numbers (the penalizer follows, optional).
    pub columns: &'static [&'static str],
    /// Parameter names, the first fields of the result struct.
    pub params: &'static [&'static str],
    /// What `n` counts, for the non-convergence warning.
    pub counted: &'static str,
    /// The fit: collected columns and penalizer → result.
    pub fit: fn(&[Vec<f64>], f64) -> std::result::Result<Fitted, FitError>,
}

impl FitSpec {
    /// The argument types: every column and the penalizer are numbers.
    pub fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let kinds: Vec<(&str, Kind)> = self
            .columns
            .iter()
            .chain([&OPTION])
            .map(|c| (*c, Kind::Number))
            .collect();
        coerce_all(self.name, &kinds, self.columns.len(), types)
    }

    /// The result struct: {params…, ll, n, converged}.
    pub fn result_fields(&self) -> Fields {
        let mut fields: Vec<Field> = self
            .params
            .iter()
            .map(|p| Field::new(*p, DataType::Float64, false))
            .collect();
        fields.push(Field::new("ll", DataType::Float64, false));
        fields.push(Field::new("n", DataType::Int64, false));
        fields.push(Field::new("converged", DataType::Boolean, false));
        Fields::from(fields)
    }

    /// The result type.
    pub fn return_type(&self) -> DataType {
        DataType::Struct(self.result_fields())
    }

    /// State fields: one `List(Float64)` per column, then the penalizer.
    pub fn state_fields(&self) -> Vec<FieldRef> {
        let mut out: Vec<FieldRef> = self
            .columns
            .iter()
            .map(|c| {
                Arc::new(Field::new_list(
                    format_state_name(self.name, c),
                    Field::new_list_field(DataType::Float64, true),
                    true,
                ))
            })
            .collect();
        out.push(Arc::new(Field::new(
            format_state_name(self.name, OPTION),
            DataType::Float64,
            true,
        )));
        out
    }

    /// A fresh accumulator.
    pub fn accumulator(&'static self) -> Box<dyn Accumulator> {
        Box::new(CollectAccumulator {
            spec: self,
            cols: vec![Vec::new(); self.columns.len()],
            option: None,
        })
    }

    /// Fit the collected columns and build the result struct; logs a
    /// warning when the optimiser did not converge.
    fn finish(&self, cols: &[Vec<f64>], penalizer: Option<f64>) -> Result<ScalarValue> {
        let fit = match (self.fit)(cols, penalizer.unwrap_or(0.0)) {
            Ok(f) => f,
            Err(e) => return exec_err!("{}: {e}", self.name),
        };
        if !fit.converged {
            let params: Vec<String> = self
                .params
                .iter()
                .zip(&fit.params)
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            log::warn!(
                "{}: the optimiser did not converge on {} {} ({}); try a penalizer",
                self.name,
                fit.n,
                self.counted,
                params.join(", ")
            );
        }
        let mut arrays: Vec<ArrayRef> = fit
            .params
            .iter()
            .chain([&fit.ll])
            .map(|&v| Arc::new(Float64Array::from(vec![v])) as ArrayRef)
            .collect();
        arrays.push(Arc::new(Int64Array::from(vec![fit.n as i64])));
        arrays.push(Arc::new(BooleanArray::from(vec![fit.converged])));
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            self.result_fields(),
            arrays,
            None,
        )?)))
    }
}

/// (frequency, recency, t) rows from the first three collected columns.
pub fn rfm_rows(cols: &[Vec<f64>]) -> Vec<Rfm> {
    cols[0]
        .iter()
        .zip(&cols[1])
        .zip(&cols[2])
        .map(|((&x, &t_x), &t)| Rfm { x, t_x, t })
        .collect()
}

/// See the module documentation.
#[derive(Debug)]
struct CollectAccumulator {
    spec: &'static FitSpec,
    cols: Vec<Vec<f64>>,
    option: Option<f64>,
}

impl CollectAccumulator {
    /// Append the rows where no column is NULL.
    fn push_non_null_rows(&mut self, cols: &[Float64Array]) {
        for i in 0..cols.first().map_or(0, |c| c.len()) {
            if cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            for (dst, c) in self.cols.iter_mut().zip(cols) {
                dst.push(c.value(i));
            }
        }
    }

    fn set_option(&mut self, v: f64) -> Result<()> {
        match self.option {
            Some(o) if o != v => exec_err!(
                "{}: argument {OPTION} must be the same for every row, got {o} and {v}",
                self.spec.name
            ),
            _ => {
                self.option = Some(v);
                Ok(())
            }
        }
    }
}

impl Accumulator for CollectAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let k = self.cols.len();
        let cols: Vec<Float64Array> = values[..k].iter().map(as_f64).collect::<Result<_>>()?;
        if cols.iter().all(|c| c.null_count() == 0) {
            for (dst, c) in self.cols.iter_mut().zip(&cols) {
                dst.extend_from_slice(c.values());
            }
        } else {
            self.push_non_null_rows(&cols);
        }
        if let Some(opt) = values.get(k) {
            let opt = as_f64(opt)?;
            for v in opt.iter().flatten() {
                self.set_option(v)?;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.spec.finish(&self.cols, self.option)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.cols.iter().map(|c| c.capacity() * 8).sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut out: Vec<ScalarValue> = self
            .cols
            .iter_mut()
            .map(|c| {
                let values = Float64Array::from(std::mem::take(c));
                ScalarValue::List(Arc::new(ListArray::new(
                    Arc::new(Field::new_list_field(DataType::Float64, true)),
                    OffsetBuffer::from_lengths([values.len()]),
                    Arc::new(values),
                    None,
                )))
            })
            .collect();
        out.push(ScalarValue::Float64(self.option));
        Ok(out)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let k = self.cols.len();
        for (dst, st) in self.cols.iter_mut().zip(&states[..k]) {
            let list = st.as_list::<i32>();
            for i in 0..list.len() {
                if list.is_null(i) {
                    continue;
                }
                let v = list.value(i);
                let v = v.as_primitive::<Float64Type>();
                if v.null_count() == 0 {
                    dst.extend_from_slice(v.values());
                } else {
                    dst.extend(v.iter().map(|x| x.unwrap_or(f64::NAN)));
                }
            }
        }
        if let Some(opt) = states.get(k) {
            for v in as_f64(opt)?.iter().flatten() {
                self.set_option(v)?;
            }
        }
        Ok(())
    }
}
