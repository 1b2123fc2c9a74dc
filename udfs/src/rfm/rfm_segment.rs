//! `rfm_segment(r, f, m)`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::rules::rfm::{fm_score, segment_rfm};
use crate::util::{Kind, all_scalar, arrays, as_i64, coerce_all, finish};

/// `rfm_segment(r, f, m) -> Utf8`
#[user_doc(
    doc_section(label = "CRM functions"),
    description = "The RFM segment of R, F, M scores (1–5, 5 best): one of Champions, Loyal, Potential Loyalist, New Customers, Promising, Need Attention, About To Sleep, At Risk, Can't Lose Them, Hibernating, Lost. The grid is R against FM = (F + M) / 2 rounded half up (F=1, M=2 → FM=2): Champions R5 FM5, R5 FM4, R4 FM5; Loyal R5 FM3, R4 FM4, R3 FM5, R3 FM4; Potential Loyalist R5 FM2, R4 FM2, R4 FM3, R3 FM3; New Customers R5 FM1; Promising R4 FM1, R3 FM1; Need Attention R3 FM2, R2 FM3, R2 FM2; About To Sleep R2 FM1; At Risk R2 FM5, R2 FM4, R1 FM3; Can't Lose Them R1 FM5, R1 FM4; Hibernating R1 FM2; Lost R1 FM1. Every one of the 125 inputs maps to exactly one segment. NULL in any argument gives NULL; a score outside 1–5 is an error.",
    syntax_example = "rfm_segment(r, f, m)",
    sql_example = r#"```sql
> SELECT rfm_segment(5, 4, 5);
Champions
> SELECT s['r'], rfm_segment(s['r'], s['f'], s['m']) FROM (SELECT rfm_score(recency_days, frequency, monetary) OVER () AS s FROM rfm_input);
```"#,
    argument(
        name = "r",
        description = "Recency score, integer 1–5 (5 = most recent)."
    ),
    argument(name = "f", description = "Frequency score, integer 1–5."),
    argument(name = "m", description = "Monetary score, integer 1–5.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct RfmSegmentFunc {
    signature: Signature,
}

impl Default for RfmSegmentFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl RfmSegmentFunc {
    /// Create the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for RfmSegmentFunc {
    fn name(&self) -> &str {
        "rfm_segment"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_all(
            self.name(),
            &[
                ("r", Kind::Integer),
                ("f", Kind::Integer),
                ("m", Kind::Integer),
            ],
            3,
            arg_types,
        )
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let scalar = all_scalar(&args.args);
        let a = arrays(&args.args, args.number_rows)?;
        let (r, f, m) = (as_i64(&a[0])?, as_i64(&a[1])?, as_i64(&a[2])?);
        let mut out = StringBuilder::with_capacity(r.len(), r.len() * 8);
        for i in 0..r.len() {
            if r.is_null(i) || f.is_null(i) || m.is_null(i) {
                out.append_null();
                continue;
            }
            for (name, v) in [("r", r.value(i)), ("f", f.value(i)), ("m", m.value(i))] {
                if !(1..=5).contains(&v) {
                    return exec_err!(
                        "rfm_segment: argument {name} must be a score from 1 to 5, got {v}"
                    );
                }
            }
            match fm_score(f.value(i), m.value(i)).and_then(|fm| segment_rfm(r.value(i), fm)) {
                Some(s) => out.append_value(s.as_str()),
                None => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), scalar)
    }
    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::fuzz::{Rng, i64s};
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::Field;
    use datafusion::common::config::ConfigOptions;

    fn call(args: Vec<ColumnarValue>, n: usize) -> Result<ColumnarValue> {
        let f = RfmSegmentFunc::new();
        f.invoke_with_args(ScalarFunctionArgs {
            arg_fields: (0..3)
                .map(|_| Arc::new(Field::new("a", DataType::Int64, true)))
                .collect(),
            number_rows: n,
            return_field: Arc::new(Field::new("r", DataType::Utf8, true)),
            config_options: Arc::new(ConfigOptions::default()),
            args,
        })
    }

    #[test]
    fn all_125_inputs_through_the_udf() {
        let mut r = vec![];
        let mut f = vec![];
        let mut m = vec![];
        for a in 1..=5 {
            for b in 1..=5 {
                for c in 1..=5 {
                    r.push(a);
                    f.push(b);
                    m.push(c);
                }
            }
        }
        let args = vec![
            ColumnarValue::Array(Arc::new(Int64Array::from(r.clone()))),
            ColumnarValue::Array(Arc::new(Int64Array::from(f.clone()))),
            ColumnarValue::Array(Arc::new(Int64Array::from(m.clone()))),
        ];
        let out = call(args, 125).unwrap().to_array(125).unwrap();
        let out = out.as_string::<i32>();
        assert_eq!(out.null_count(), 0);
        for i in 0..125 {
            let want = crate::rules::rfm::segment(r[i], f[i], m[i])
                .unwrap()
                .as_str();
            assert_eq!(out.value(i), want);
        }
        assert_eq!(out.value(0), "Lost");
        assert_eq!(out.value(124), "Champions");
    }

    #[test]
    fn out_of_range_names_argument_and_value() {
        let args = vec![
            ColumnarValue::from(datafusion::common::ScalarValue::Int64(Some(5))),
            ColumnarValue::from(datafusion::common::ScalarValue::Int64(Some(6))),
            ColumnarValue::from(datafusion::common::ScalarValue::Int64(Some(1))),
        ];
        let e = call(args, 1).unwrap_err().to_string();
        assert!(
            e.contains("rfm_segment: argument f must be a score from 1 to 5, got 6"),
            "{e}"
        );
    }

    #[test]
    fn fuzz_no_panics() {
        let mut rng = Rng(7);
        for n in [0usize, 1, 5, 100] {
            for _ in 0..20 {
                let args = (0..3)
                    .map(|_| ColumnarValue::Array(i64s(&mut rng, n)))
                    .collect();
                let _ = call(args, n);
            }
        }
    }
}
