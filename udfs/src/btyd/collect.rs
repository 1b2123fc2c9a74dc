//! The accumulator of the fitting aggregates: it collects the non-NULL rows
//! of k numeric columns (and one constant option such as the penalizer) and
//! fits the model once, in `evaluate`. Partial states are lists, merged by
//! concatenation, so the fit sees every row whatever the partitioning.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::Accumulator;
use datafusion::logical_expr::utils::format_state_name;

use crate::util::as_f64;

/// Turns the collected columns and the option into the result.
pub type Finish = fn(&[Vec<f64>], Option<f64>) -> Result<ScalarValue>;

/// State fields: one `List(Float64)` per column, then the option.
pub fn state_fields(func: &str, columns: &[&str], option: &str) -> Vec<FieldRef> {
    let mut out: Vec<FieldRef> = columns
        .iter()
        .map(|c| {
            Arc::new(Field::new_list(
                format_state_name(func, c),
                Field::new_list_field(DataType::Float64, true),
                true,
            ))
        })
        .collect();
    out.push(Arc::new(Field::new(
        format_state_name(func, option),
        DataType::Float64,
        true,
    )));
    out
}

/// See the module documentation.
#[derive(Debug)]
pub struct CollectAccumulator {
    func: &'static str,
    option_name: &'static str,
    cols: Vec<Vec<f64>>,
    option: Option<f64>,
    finish: Finish,
}

impl CollectAccumulator {
    /// An empty accumulator for `k` columns.
    pub fn new(func: &'static str, k: usize, option_name: &'static str, finish: Finish) -> Self {
        Self {
            func,
            option_name,
            cols: vec![Vec::new(); k],
            option: None,
            finish,
        }
    }

    fn set_option(&mut self, v: f64) -> Result<()> {
        match self.option {
            Some(o) if o != v => exec_err!(
                "{}: argument {} must be the same for every row, got {o} and {v}",
                self.func,
                self.option_name
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
        for i in 0..cols.first().map_or(0, |c| c.len()) {
            if cols.iter().any(|c| c.is_null(i)) {
                continue;
            }
            for (dst, c) in self.cols.iter_mut().zip(&cols) {
                dst.push(c.value(i));
            }
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
        (self.finish)(&self.cols, self.option)
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.cols.iter().map(|c| c.capacity() * 8).sum::<usize>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut out: Vec<ScalarValue> = self
            .cols
            .iter_mut()
            .map(|c| {
                let values = std::mem::take(c);
                let list = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
                    values.into_iter().map(Some),
                )]);
                ScalarValue::List(Arc::new(list))
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
                dst.extend(v.iter().map(|x| x.unwrap_or(f64::NAN)));
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
