//! Input readers: CSV, JSON lines and Parquet, each producing [`RawChunk`]s of
//! at most `CHUNK_ROWS` rows with the source position of every row.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::convert::{PositionKind, RawChunk, map_columns};
use super::{Format, IngestOptions, RowError};
use crate::error::{Error, Result};
use crate::store::schema::TableDef;

/// Rows per chunk handed to conversion.
pub(crate) const CHUNK_ROWS: usize = 65_536;

/// Pick the format from the option or the file extension.
pub(crate) fn detect_format(path: &Path, explicit: Option<Format>) -> Result<Format> {
    if let Some(f) = explicit {
        return Ok(f);
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".csv") || name.ends_with(".tsv") || name.ends_with(".txt") {
        Ok(Format::Csv)
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") || name.ends_with(".json") {
        Ok(Format::Jsonl)
    } else if name.ends_with(".parquet") || name.ends_with(".pq") {
        Ok(Format::Parquet)
    } else {
        Err(Error::InputFile {
            file: path.display().to_string(),
            reason:
                "cannot tell the format from the extension (.csv, .jsonl, .parquet); pass --format"
                    .into(),
        })
    }
}

fn text_schema(names: &[String]) -> Arc<Schema> {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

/// Read CSV with a header row. `on_chunk` receives each chunk; `on_bytes` the bytes consumed.
pub(crate) fn read_csv<R: Read>(
    input: R,
    file: &str,
    def: &TableDef,
    opts: &IngestOptions,
    on_chunk: &mut dyn FnMut(RawChunk) -> Result<()>,
    on_bytes: &dyn Fn(u64),
) -> Result<()> {
    let file_name: Arc<str> = Arc::from(file);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(opts.delimiter)
        .has_headers(opts.header)
        .flexible(true)
        .from_reader(input);
    let names = if opts.header {
        let headers = reader
            .byte_headers()
            .map_err(|e| csv_error(file, e))?
            .clone();
        headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                std::str::from_utf8(h)
                    .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
                    .map_err(|_| Error::InputFile {
                        file: file.into(),
                        reason: format!("header field {} is not valid UTF-8", i + 1),
                    })
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        match &opts.columns {
            Some(cols) => cols.clone(),
            None => def.columns.iter().map(|c| c.name.to_string()).collect(),
        }
    };
    if names.is_empty() || (names.len() == 1 && names[0].is_empty()) {
        return Err(Error::InputFile {
            file: file.into(),
            reason: "empty file: expected a header row".into(),
        });
    }
    let mapping = Arc::new(map_columns(def, &names, opts.ignore_unknown, file)?);
    let schema = text_schema(&names);
    let width = names.len();
    let new_builders = || {
        (0..width)
            .map(|_| StringBuilder::with_capacity(CHUNK_ROWS, CHUNK_ROWS * 8))
            .collect::<Vec<_>>()
    };
    let mut builders = new_builders();
    let mut positions = Vec::with_capacity(CHUNK_ROWS);
    let mut bad = Vec::with_capacity(CHUNK_ROWS);
    let mut errors = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut last_offset = 0u64;

    let mut flush = |builders: &mut Vec<StringBuilder>,
                     positions: &mut Vec<u64>,
                     bad: &mut Vec<bool>,
                     errors: &mut Vec<RowError>|
     -> Result<()> {
        let columns: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        on_chunk(RawChunk {
            batch,
            mapping: mapping.clone(),
            positions: std::mem::take(positions),
            kind: PositionKind::Line,
            file: file_name.clone(),
            bad: std::mem::take(bad),
            errors: std::mem::take(errors),
            rows_to_come: 0,
        })
    };

    loop {
        let more = reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(file, e))?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
            continue; // blank line
        }
        let mut row_bad = false;
        if record.len() != width {
            row_bad = true;
            errors.push(RowError {
                file: file_name.clone(),
                position: PositionKind::Line.at(line),
                column: "(record)".into(),
                value: None,
                reason: format!(
                    "expected {width} fields as in the header, found {}",
                    record.len()
                ),
            });
        }
        for (i, b) in builders.iter_mut().enumerate() {
            match record.get(i) {
                None | Some(b"") => b.append_null(),
                Some(bytes) => match std::str::from_utf8(bytes) {
                    Ok(s) => b.append_value(s),
                    Err(_) => {
                        row_bad = true;
                        errors.push(RowError {
                            file: file_name.clone(),
                            position: PositionKind::Line.at(line),
                            column: names[i].clone(),
                            value: Some(String::from_utf8_lossy(bytes).into_owned()),
                            reason: "invalid UTF-8".into(),
                        });
                        b.append_null();
                    }
                },
            }
        }
        positions.push(line);
        bad.push(row_bad);
        if positions.len() >= CHUNK_ROWS {
            flush(&mut builders, &mut positions, &mut bad, &mut errors)?;
            let offset = reader.position().byte();
            on_bytes(offset - last_offset);
            last_offset = offset;
        }
    }
    if !positions.is_empty() {
        flush(&mut builders, &mut positions, &mut bad, &mut errors)?;
    }
    on_bytes(reader.position().byte() - last_offset);
    Ok(())
}

fn csv_error(file: &str, e: csv::Error) -> Error {
    let place = e
        .position()
        .map(|p| format!(" at line {}", p.line()))
        .unwrap_or_default();
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) => format!("read error{place}: {io}"),
        _ => format!("malformed CSV{place}: {e}"),
    };
    Error::InputFile {
        file: file.into(),
        reason,
    }
}

/// Read JSON lines: one object per line, keys are column names.
pub(crate) fn read_jsonl<R: Read>(
    input: R,
    file: &str,
    def: &TableDef,
    opts: &IngestOptions,
    on_chunk: &mut dyn FnMut(RawChunk) -> Result<()>,
    on_bytes: &dyn Fn(u64),
) -> Result<()> {
    let file_name: Arc<str> = Arc::from(file);
    let names: Vec<String> = def.columns.iter().map(|c| c.name.to_string()).collect();
    let schema = text_schema(&names);
    let mapping = Arc::new((0..names.len()).map(Some).collect::<Vec<_>>());
    let mut reader = BufReader::new(input);
    let mut builders: Vec<StringBuilder> = names.iter().map(|_| StringBuilder::new()).collect();
    let mut positions = Vec::new();
    let mut bad = Vec::new();
    let mut errors: Vec<RowError> = Vec::new();
    let mut line_buf = Vec::new();
    let mut line_no = 0u64;
    let mut text = String::new();
    loop {
        line_buf.clear();
        let n = reader
            .read_until(b'\n', &mut line_buf)
            .map_err(|e| Error::InputFile {
                file: file.into(),
                reason: format!("read error: {e}"),
            })?;
        if n == 0 {
            break;
        }
        on_bytes(n as u64);
        line_no += 1;
        let err = |column: &str, value: Option<String>, reason: String| RowError {
            file: file_name.clone(),
            position: PositionKind::Line.at(line_no),
            column: column.to_string(),
            value,
            reason,
        };
        let Ok(line) = std::str::from_utf8(&line_buf) else {
            errors.push(err("(record)", None, "invalid UTF-8".into()));
            for b in builders.iter_mut() {
                b.append_null();
            }
            positions.push(line_no);
            bad.push(true);
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let mut row_bad = false;
        let object = match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
        {
            Ok(o) => o,
            Err(e) => {
                row_bad = true;
                errors.push(err("(record)", None, format!("not a JSON object: {e}")));
                serde_json::Map::new()
            }
        };
        if !opts.ignore_unknown {
            for key in object.keys() {
                if def.column(key).is_none() {
                    return Err(Error::InputFile {
                        file: file.into(),
                        reason: format!(
                            "line {line_no}: unknown column '{key}' for table {}; pass --ignore-unknown to skip it",
                            def.name
                        ),
                    });
                }
            }
        }
        for (b, name) in builders.iter_mut().zip(&names) {
            match object.get(name) {
                None | Some(serde_json::Value::Null) => b.append_null(),
                Some(serde_json::Value::String(s)) if s.is_empty() => b.append_null(),
                Some(serde_json::Value::String(s)) => b.append_value(s),
                Some(serde_json::Value::Bool(v)) => {
                    b.append_value(if *v { "true" } else { "false" })
                }
                Some(serde_json::Value::Number(v)) => {
                    text.clear();
                    use std::fmt::Write;
                    let _ = write!(text, "{v}");
                    b.append_value(&text)
                }
                Some(other) => {
                    row_bad = true;
                    errors.push(err(
                        name,
                        Some(other.to_string()),
                        "expected a scalar value, not an array or object".into(),
                    ));
                    b.append_null();
                }
            }
        }
        positions.push(line_no);
        bad.push(row_bad);
        if positions.len() >= CHUNK_ROWS {
            let columns: Vec<ArrayRef> = builders
                .iter_mut()
                .map(|b| Arc::new(b.finish()) as ArrayRef)
                .collect();
            on_chunk(RawChunk {
                batch: RecordBatch::try_new(schema.clone(), columns)?,
                mapping: mapping.clone(),
                positions: std::mem::take(&mut positions),
                kind: PositionKind::Line,
                file: file_name.clone(),
                bad: std::mem::take(&mut bad),
                errors: std::mem::take(&mut errors),
                rows_to_come: 0,
            })?;
        }
    }
    if !positions.is_empty() || !errors.is_empty() {
        let columns: Vec<ArrayRef> = builders
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .collect();
        on_chunk(RawChunk {
            batch: RecordBatch::try_new(schema, columns)?,
            mapping,
            positions,
            kind: PositionKind::Line,
            file: file_name,
            bad,
            errors,
            rows_to_come: 0,
        })?;
    }
    Ok(())
}

/// Read a Parquet file; columns are matched by name and converted by type.
pub(crate) fn read_parquet(
    path: &Path,
    def: &TableDef,
    opts: &IngestOptions,
    on_chunk: &mut dyn FnMut(RawChunk) -> Result<()>,
    on_bytes: &dyn Fn(u64),
) -> Result<()> {
    let file = path.display().to_string();
    let file_name: Arc<str> = Arc::from(file.as_str());
    let handle = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(handle).map_err(|e| Error::InputFile {
            file: file.clone(),
            reason: format!("not a readable Parquet file: {e}"),
        })?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let names: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mapping = Arc::new(map_columns(def, &names, opts.ignore_unknown, &file)?);
    let reader = builder
        .with_batch_size(CHUNK_ROWS)
        .build()
        .map_err(|e| Error::InputFile {
            file: file.clone(),
            reason: format!("not a readable Parquet file: {e}"),
        })?;
    let mut next_row = 1u64;
    for batch in reader {
        let batch = batch.map_err(|e| Error::InputFile {
            file: file.clone(),
            reason: format!(
                "corrupt or truncated Parquet data after row {}: {e}",
                next_row - 1
            ),
        })?;
        let n = batch.num_rows() as u64;
        let positions: Vec<u64> = (next_row..next_row + n).collect();
        // The footer's count, but never more than one row per byte of file:
        // it only sizes a reservation, and a lying footer must not make that
        // reservation huge.
        let rows_to_come = total_rows.saturating_sub(next_row - 1).min(size);
        next_row += n;
        on_bytes(size * n / total_rows);
        on_chunk(RawChunk {
            batch,
            mapping: mapping.clone(),
            positions,
            kind: PositionKind::Row,
            file: file_name.clone(),
            bad: Vec::new(),
            errors: Vec::new(),
            rows_to_come,
        })?;
    }
    Ok(())
}
