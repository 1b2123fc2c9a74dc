//! CRM functions: RFM scores and segments.
//!
//! `rfm_score` (window, value-based quantiles), `rfm_score_fixed` (fixed
//! business edges), `rfm_segment` (the 11 named segments) and `value_class`
//! (the retail four-class view). The rules live in [`crate::rules::rfm`].

mod rfm_score;
mod rfm_score_fixed;
mod rfm_segment;
mod value_class;

pub use rfm_score::RfmScoreFunc;
pub use rfm_score_fixed::RfmScoreFixedFunc;
pub use rfm_segment::RfmSegmentFunc;
pub use value_class::ValueClassFunc;

use std::fmt::Write as _;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Builder, StringBuilder, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::logical_expr::{ScalarUDF, WindowUDF};

use crate::Functions;

/// The functions of this family.
pub fn functions() -> Functions {
    Functions {
        scalar: vec![
            Arc::new(ScalarUDF::from(RfmScoreFixedFunc::new())),
            Arc::new(ScalarUDF::from(RfmSegmentFunc::new())),
            Arc::new(ScalarUDF::from(ValueClassFunc::new())),
        ],
        window: vec![Arc::new(WindowUDF::from(RfmScoreFunc::new()))],
        ..Functions::default()
    }
}

/// The fields of the RFM struct: r, f, m (Int32) and code (Utf8).
pub fn rfm_fields() -> Fields {
    Fields::from(vec![
        Field::new("r", DataType::Int32, true),
        Field::new("f", DataType::Int32, true),
        Field::new("m", DataType::Int32, true),
        Field::new("code", DataType::Utf8, true),
    ])
}

/// The RFM struct type.
pub fn rfm_type() -> DataType {
    DataType::Struct(rfm_fields())
}

/// Builds the {r, f, m, code} struct column. The code is the three scores written
/// one after another (`"545"`); when a score has two digits (bins = 10) they are
/// joined with `-` (`"10-4-5"`). The code is NULL when any score is NULL.
pub struct RfmBuilder {
    r: Int32Builder,
    f: Int32Builder,
    m: Int32Builder,
    code: StringBuilder,
}

impl RfmBuilder {
    /// A builder for `n` rows.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            r: Int32Builder::with_capacity(n),
            f: Int32Builder::with_capacity(n),
            m: Int32Builder::with_capacity(n),
            code: StringBuilder::with_capacity(n, n * 3),
        }
    }

    /// Append one row.
    pub fn append(&mut self, r: Option<i32>, f: Option<i32>, m: Option<i32>) {
        self.r.append_option(r);
        self.f.append_option(f);
        self.m.append_option(m);
        match (r, f, m) {
            (Some(r), Some(f), Some(m)) => {
                // Writing into the builder's value buffer cannot fail.
                let _ = if r > 9 || f > 9 || m > 9 {
                    write!(self.code, "{r}-{f}-{m}")
                } else {
                    write!(self.code, "{r}{f}{m}")
                };
                self.code.append_value("");
            }
            _ => self.code.append_null(),
        }
    }

    /// The finished struct array.
    pub fn finish(mut self) -> ArrayRef {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.r.finish()),
            Arc::new(self.f.finish()),
            Arc::new(self.m.finish()),
            Arc::new(self.code.finish()),
        ];
        Arc::new(StructArray::new(rfm_fields(), columns, None))
    }
}
