//! Columnar conversion of raw input (text columns from CSV/JSON, typed columns
//! from Parquet) into a canonical table's Arrow schema, collecting one
//! [`RowError`] per bad value instead of stopping at the first.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringArray,
    TimestampMicrosecondBuilder, new_null_array,
};
use datafusion::arrow::compute::{CastOptions, cast, cast_with_options, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::parse;
use super::{Position, RowError};
use crate::error::{Error, Result};
use crate::store::schema::{ColumnDef, ColumnType, MONEY_PRECISION, MONEY_SCALE, TableDef};

/// Rows read from one input, before conversion.
pub(crate) struct RawChunk {
    /// Source columns, in source order.
    pub batch: RecordBatch,
    /// For each canonical column, its index in `batch` (None: absent → NULL).
    pub mapping: Arc<Vec<Option<usize>>>,
    /// Source position (line or row number) of every row.
    pub positions: Vec<u64>,
    /// How positions are counted.
    pub kind: PositionKind,
    /// The input's name, for messages.
    pub file: Arc<str>,
    /// Rows already found bad while reading (wrong field count, bad UTF-8 …).
    pub bad: Vec<bool>,
    /// The errors behind `bad`.
    pub errors: Vec<RowError>,
    /// Rows of this input from this chunk on, when the input says (Parquet
    /// metadata); 0 when unknown. Lets the key check size its map once.
    pub rows_to_come: u64,
}

/// Whether positions are text lines or record numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PositionKind {
    /// 1-based line of a text file.
    Line,
    /// 1-based row of a Parquet file.
    Row,
}

impl PositionKind {
    pub(crate) fn at(self, n: u64) -> Position {
        match self {
            PositionKind::Line => Position::Line(n),
            PositionKind::Row => Position::Row(n),
        }
    }
}

/// The result of converting one chunk.
pub(crate) struct Converted {
    /// The good rows, in the canonical schema.
    pub batch: RecordBatch,
    /// Source positions of the good rows.
    pub positions: Vec<u64>,
    /// Every error found in the chunk.
    pub errors: Vec<RowError>,
    /// Number of rows rejected.
    pub rejected: usize,
}

/// Match source column names to a table's columns.
pub(crate) fn map_columns(
    def: &TableDef,
    source: &[String],
    ignore_unknown: bool,
    file: &str,
) -> Result<Vec<Option<usize>>> {
    let bad = |reason: String| Error::InputFile {
        file: file.to_string(),
        reason,
    };
    for (i, name) in source.iter().enumerate() {
        if source[..i].contains(name) {
            return Err(bad(format!("column '{name}' appears twice in the header")));
        }
    }
    let unknown: Vec<&str> = source
        .iter()
        .filter(|n| def.column(n).is_none())
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() && !ignore_unknown {
        return Err(bad(format!(
            "unknown column(s) {} for table {} (columns are: {}); pass --ignore-unknown to skip them",
            unknown
                .iter()
                .map(|u| format!("'{u}'"))
                .collect::<Vec<_>>()
                .join(", "),
            def.name,
            def.columns
                .iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mapping: Vec<Option<usize>> = def
        .columns
        .iter()
        .map(|c| source.iter().position(|s| s == c.name))
        .collect();
    let missing: Vec<&str> = def
        .columns
        .iter()
        .zip(&mapping)
        .filter(|(c, m)| m.is_none() && !c.nullable)
        .map(|(c, _)| c.name)
        .collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "required column(s) {} of table {} missing from the input",
            missing.join(", "),
            def.name
        )));
    }
    Ok(mapping)
}

/// Convert a raw chunk into the canonical schema of `def`.
pub(crate) fn convert(def: &TableDef, raw: RawChunk) -> Result<Converted> {
    let rows = raw.batch.num_rows();
    let mut bad = raw.bad;
    bad.resize(rows, false);
    let mut errors = raw.errors;
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(def.columns.len());
    for (col, src) in def.columns.iter().zip(raw.mapping.iter()) {
        let array = match src {
            None => new_null_array(&col.ty.arrow_type(), rows),
            Some(i) => {
                let mut on_error = |row: usize, value: Option<String>, reason: String| {
                    bad[row] = true;
                    errors.push(RowError {
                        file: raw.file.clone(),
                        position: raw.kind.at(raw.positions[row]),
                        column: col.name.to_string(),
                        value,
                        reason,
                    });
                };
                // a column that cannot be cast at all is a file error: name the file
                convert_column(col, raw.batch.column(*i), &mut on_error).map_err(|e| match e {
                    Error::InputFile { file, reason } if file.is_empty() => Error::InputFile {
                        file: raw.file.to_string(),
                        reason,
                    },
                    other => other,
                })?
            }
        };
        // NOT NULL and closed vocabularies.
        if !col.nullable && array.null_count() > 0 {
            for (row, row_bad) in bad.iter_mut().enumerate() {
                if array.is_null(row) && !*row_bad {
                    *row_bad = true;
                    errors.push(RowError {
                        file: raw.file.clone(),
                        position: raw.kind.at(raw.positions[row]),
                        column: col.name.to_string(),
                        value: None,
                        reason: format!(
                            "missing value; column is NOT NULL ({})",
                            col.ty.sql_name()
                        ),
                    });
                }
            }
        }
        if let Some(allowed) = col.allowed {
            let strings = array.as_string::<i32>();
            for (row, row_bad) in bad.iter_mut().enumerate() {
                if strings.is_valid(row) && !allowed.contains(&strings.value(row)) {
                    *row_bad = true;
                    errors.push(RowError {
                        file: raw.file.clone(),
                        position: raw.kind.at(raw.positions[row]),
                        column: col.name.to_string(),
                        value: Some(strings.value(row).to_string()),
                        reason: format!("expected one of {}", allowed.join(", ")),
                    });
                }
            }
        }
        columns.push(array);
    }
    let rejected = bad.iter().filter(|b| **b).count();
    if rejected == 0 {
        let batch = RecordBatch::try_new(def.arrow_schema(), columns)?;
        return Ok(Converted {
            batch,
            positions: raw.positions,
            errors,
            rejected,
        });
    }
    // Bad rows may hold NULLs in NOT NULL columns: filter them out under a
    // nullable schema, then apply the canonical one.
    let schema = def.arrow_schema();
    let nullable = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    let keep = BooleanArray::from(bad.iter().map(|b| !b).collect::<Vec<bool>>());
    let filtered = filter_record_batch(&RecordBatch::try_new(nullable, columns)?, &keep)?;
    let batch = RecordBatch::try_new(schema, filtered.columns().to_vec())?;
    let positions = raw
        .positions
        .iter()
        .zip(&bad)
        .filter(|(_, b)| !**b)
        .map(|(p, _)| *p)
        .collect();
    errors.sort_by_key(|e| e.position.number());
    Ok(Converted {
        batch,
        positions,
        errors,
        rejected,
    })
}

type OnError<'a> = dyn FnMut(usize, Option<String>, String) + 'a;

fn convert_column(
    col: &ColumnDef,
    source: &ArrayRef,
    on_error: &mut OnError<'_>,
) -> Result<ArrayRef> {
    let target = col.ty.arrow_type();
    let is_text = matches!(
        source.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if is_text && col.ty != ColumnType::Text {
        let utf8 = cast(source, &DataType::Utf8)?;
        let strings = utf8.as_string::<i32>();
        return Ok(parse_strings(col.ty, strings, on_error));
    }
    if source.data_type() == &target {
        return Ok(source.clone());
    }
    if let (DataType::Timestamp(unit, _), DataType::Timestamp(..)) = (source.data_type(), &target) {
        // A naive timestamp is taken as UTC, any zone is converted to UTC.
        let utc = cast(source, &DataType::Timestamp(*unit, Some("UTC".into())))?;
        return cast_checked(&utc, source, &target, col, on_error);
    }
    cast_checked(source, source, &target, col, on_error)
}

/// Cast with nulls for failures, reporting every value that did not convert.
fn cast_checked(
    input: &ArrayRef,
    original: &ArrayRef,
    target: &DataType,
    col: &ColumnDef,
    on_error: &mut OnError<'_>,
) -> Result<ArrayRef> {
    let out = cast_with_options(
        input,
        target,
        &CastOptions {
            safe: true,
            ..Default::default()
        },
    )
    .map_err(|e| Error::InputFile {
        file: String::new(),
        reason: format!(
            "column {} of type {} cannot be loaded as {}: {e}",
            col.name,
            original.data_type(),
            col.ty.sql_name()
        ),
    })?;
    if out.null_count() > input.null_count() {
        let formatter = ArrayFormatter::try_new(original.as_ref(), &FormatOptions::default())?;
        for row in 0..out.len() {
            if out.is_null(row) && input.is_valid(row) {
                on_error(
                    row,
                    Some(formatter.value(row).to_string()),
                    format!(
                        "cannot be converted from {} to {}",
                        original.data_type(),
                        col.ty.sql_name()
                    ),
                );
            }
        }
    }
    Ok(out)
}

fn parse_strings(ty: ColumnType, strings: &StringArray, on_error: &mut OnError<'_>) -> ArrayRef {
    let n = strings.len();
    macro_rules! parse_into {
        ($builder:expr, $parse:path) => {{
            let mut b = $builder;
            for row in 0..n {
                if strings.is_null(row) {
                    b.append_null();
                    continue;
                }
                let s = strings.value(row);
                match $parse(s) {
                    Ok(v) => b.append_value(v),
                    Err(reason) => {
                        on_error(row, Some(s.to_string()), reason);
                        b.append_null();
                    }
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    match ty {
        ColumnType::Int64 => parse_into!(Int64Builder::with_capacity(n), parse::parse_i64),
        ColumnType::Int32 => parse_into!(Int32Builder::with_capacity(n), parse::parse_i32),
        ColumnType::Float64 => parse_into!(Float64Builder::with_capacity(n), parse::parse_f64),
        ColumnType::Boolean => parse_into!(BooleanBuilder::with_capacity(n), parse::parse_bool),
        ColumnType::Date => parse_into!(Date32Builder::with_capacity(n), parse::parse_date),
        ColumnType::Timestamp => parse_into!(
            TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            parse::parse_timestamp
        ),
        ColumnType::Money => parse_into!(
            Decimal128Builder::with_capacity(n)
                .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
                .unwrap_or_else(|_| Decimal128Builder::with_capacity(n)),
            parse::parse_money
        ),
        ColumnType::Text => Arc::new(strings.clone()),
    }
}
