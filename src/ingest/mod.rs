//! Validated, atomic loads into the canonical tables.
//!
//! A load reads every input (CSV, JSON lines, Parquet), converts each value to
//! the column's type, checks NOT NULL columns, closed vocabularies and key
//! uniqueness, and only then commits — as exactly one Delta commit. A bad value
//! fails the whole load (nothing is written) unless a reject file is given, in
//! which case bad rows go there with their reasons and the good rows commit.
//! A process killed at any moment leaves the table as it was: files written
//! before the commit are not part of any table version.
//!
//! Keys: for append tables, rows whose key is already stored are skipped and
//! counted as duplicates (loading the same file twice adds nothing); customers
//! are upserted with Delta MERGE, a row replacing the stored one only when its
//! `updated_at` is newer. A key repeated within one load is a bad row.

mod convert;
pub mod parse;
mod read;

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::datasource::MemTable;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;
use deltalake::protocol::SaveMode;
use indicatif::ProgressBar;
use tracing::{info, info_span};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::schema::{self, KeyPolicy, TableDef};
use convert::{RawChunk, convert};

/// Input file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// How to read and load the input.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Field delimiter for CSV.
    pub delimiter: u8,
    /// Whether CSV input starts with a header row.
    pub header: bool,
    /// Column names of header-less CSV input (default: the table's columns in order).
    pub columns: Option<Vec<String>>,
    /// Skip input columns the table does not have instead of failing.
    pub ignore_unknown: bool,
    /// Write bad rows here (CSV) and commit the good ones.
    pub reject_file: Option<PathBuf>,
    /// Force a format instead of guessing from the extension.
    pub format: Option<Format>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            delimiter: b',',
            header: true,
            columns: None,
            ignore_unknown: false,
            reject_file: None,
            format: None,
        }
    }
}

/// Where in its input a row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line of a text file (the line the record starts on).
    Line(u64),
    /// 1-based row of a Parquet file.
    Row(u64),
}

impl Position {
    /// The number, whatever its kind.
    pub fn number(self) -> u64 {
        match self {
            Position::Line(n) | Position::Row(n) => n,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// One bad value (or bad record) in the input.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// Input name (file path, or "STDIN").
    pub file: Arc<str>,
    /// Line or row.
    pub position: Position,
    /// Column name, or "(record)" for the record as a whole.
    pub column: String,
    /// The offending value as it appeared, when there was one.
    pub value: Option<String>,
    /// What was expected.
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}, column {}", self.file, self.position, self.column)?;
        if let Some(v) = &self.value {
            let shown: String = v.chars().take(80).collect();
            let ellipsis = if v.chars().count() > 80 { "…" } else { "" };
            write!(f, ", value {shown:?}{ellipsis}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Table loaded.
    pub table: String,
    /// Rows read from the input.
    pub rows_read: u64,
    /// New rows added.
    pub inserted: u64,
    /// Stored rows replaced by newer ones (customers).
    pub updated: u64,
    /// Rows skipped: key already stored (append tables) or not newer (customers).
    pub duplicates: u64,
    /// Bad rows written to the reject file.
    pub rejected: u64,
    /// The table version committed, if anything was committed.
    pub version: Option<u64>,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} rows read, {} inserted, {} updated, {} duplicates skipped, {} rejected",
            self.table, self.rows_read, self.inserted, self.updated, self.duplicates, self.rejected
        )?;
        match self.version {
            Some(v) => write!(f, " (table version {v})"),
            None => write!(f, " (nothing to commit)"),
        }
    }
}

/// At most this many errors are kept in an [`Error::BadInput`] message.
const MAX_REPORTED_ERRORS: usize = 20;

/// Load files into a table as one atomic commit.
pub async fn ingest_files(
    store: &Store,
    table: &str,
    files: &[PathBuf],
    opts: &IngestOptions,
    progress: &ProgressBar,
) -> Result<LoadReport> {
    let def = schema::table(table).ok_or_else(|| Error::UnknownTable(table.to_string()))?;
    if files.is_empty() {
        return Err(Error::Usage("no input files given".into()));
    }
    let mut formats = Vec::new();
    let mut total_bytes = 0;
    for f in files {
        formats.push(read::detect_format(f, opts.format)?);
        total_bytes += std::fs::metadata(f).map_err(|e| Error::io(f, e))?.len();
    }
    progress.set_length(total_bytes);
    let span = info_span!("ingest", table = def.name, files = files.len());
    let _enter = span.enter();
    let mut collector = Collector::new(def);
    for (path, format) in files.iter().zip(formats) {
        read_file(path, format, def, opts, &mut collector, progress)?;
    }
    progress.finish_and_clear();
    drop(_enter);
    collector.finish(store, opts).await
}

/// Load CSV bytes (e.g. from `COPY … FROM STDIN`) into a table as one atomic commit.
pub async fn ingest_bytes(
    store: &Store,
    table: &str,
    data: &[u8],
    opts: &IngestOptions,
) -> Result<LoadReport> {
    let def = schema::table(table).ok_or_else(|| Error::UnknownTable(table.to_string()))?;
    let mut collector = Collector::new(def);
    match opts.format.unwrap_or(Format::Csv) {
        Format::Csv => {
            read::read_csv(data, "STDIN", def, opts, &mut |c| collector.add(c), &|_| {})?
        }
        Format::Jsonl => {
            read::read_jsonl(data, "STDIN", def, opts, &mut |c| collector.add(c), &|_| {})?
        }
        Format::Parquet => return Err(Error::Usage("Parquet input must come from a file".into())),
    }
    collector.finish(store, opts).await
}

fn read_file(
    path: &Path,
    format: Format,
    def: &TableDef,
    opts: &IngestOptions,
    collector: &mut Collector,
    progress: &ProgressBar,
) -> Result<()> {
    let name = path.display().to_string();
    let on_bytes = |n: u64| progress.inc(n);
    let mut on_chunk = |c: RawChunk| collector.add(c);
    match format {
        Format::Parquet => read::read_parquet(path, def, opts, &mut on_chunk, &on_bytes),
        Format::Csv | Format::Jsonl => {
            let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            let input: Box<dyn Read> = Box::new(std::io::BufReader::with_capacity(1 << 20, file));
            if format == Format::Csv {
                read::read_csv(input, &name, def, opts, &mut on_chunk, &on_bytes)
            } else {
                read::read_jsonl(input, &name, def, opts, &mut on_chunk, &on_bytes)
            }
        }
    }
}

/// Accumulates converted chunks, errors and the keys seen in this load.
struct Collector {
    def: &'static TableDef,
    batches: Vec<RecordBatch>,
    errors: Vec<RowError>,
    rejected_rows: u64,
    rows_read: u64,
    keys: HashMap<(i64, i64), (Arc<str>, Position)>,
}

impl Collector {
    fn new(def: &'static TableDef) -> Self {
        Collector {
            def,
            batches: Vec::new(),
            errors: Vec::new(),
            rejected_rows: 0,
            rows_read: 0,
            keys: HashMap::new(),
        }
    }

    fn add(&mut self, raw: RawChunk) -> Result<()> {
        self.rows_read += raw.batch.num_rows() as u64;
        let file = raw.file.clone();
        let kind = raw.kind;
        let converted = convert(self.def, raw)?;
        self.rejected_rows += converted.rejected as u64;
        self.errors.extend(converted.errors);
        let batch = self.check_keys(converted.batch, &converted.positions, &file, kind)?;
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
        Ok(())
    }

    /// Reject rows whose key already appeared in this load.
    fn check_keys(
        &mut self,
        batch: RecordBatch,
        positions: &[u64],
        file: &Arc<str>,
        kind: convert::PositionKind,
    ) -> Result<RecordBatch> {
        let key_values: Vec<Vec<i64>> = self
            .def
            .key
            .iter()
            .map(|k| {
                let col = batch
                    .column_by_name(k)
                    .ok_or_else(|| Error::Usage(format!("key column {k} missing")))?;
                Ok(match col.data_type() {
                    DataType::Int64 => col.as_primitive::<Int64Type>().values().to_vec(),
                    DataType::Int32 => col
                        .as_primitive::<Int32Type>()
                        .values()
                        .iter()
                        .map(|v| i64::from(*v))
                        .collect(),
                    other => {
                        return Err(Error::Usage(format!(
                            "key column {k} has unsupported type {other}"
                        )));
                    }
                })
            })
            .collect::<Result<_>>()?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut dropped = false;
        for row in 0..batch.num_rows() {
            let key = (key_values[0][row], key_values.get(1).map_or(0, |v| v[row]));
            let here = kind.at(positions[row]);
            match self.keys.get(&key) {
                Some((first_file, first_pos)) => {
                    let key_text = self
                        .def
                        .key
                        .iter()
                        .zip(&key_values)
                        .map(|(k, v)| format!("{k}={}", v[row]))
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.errors.push(RowError {
                        file: file.clone(),
                        position: here,
                        column: self.def.key.join(", "),
                        value: Some(key_text),
                        reason: format!(
                            "duplicate key within this load (first at {first_file} {first_pos})"
                        ),
                    });
                    self.rejected_rows += 1;
                    keep.push(false);
                    dropped = true;
                }
                None => {
                    self.keys.insert(key, (file.clone(), here));
                    keep.push(true);
                }
            }
        }
        if dropped {
            Ok(filter_record_batch(&batch, &BooleanArray::from(keep))?)
        } else {
            Ok(batch)
        }
    }

    async fn finish(self, store: &Store, opts: &IngestOptions) -> Result<LoadReport> {
        let Collector {
            def,
            batches,
            mut errors,
            rejected_rows,
            rows_read,
            ..
        } = self;
        if !errors.is_empty() {
            match &opts.reject_file {
                None => {
                    let total = errors.len();
                    errors.truncate(MAX_REPORTED_ERRORS);
                    return Err(Error::BadInput { errors, total });
                }
                Some(path) => write_rejects(path, &errors)?,
            }
        }
        let mut report = LoadReport {
            table: def.name.to_string(),
            rows_read,
            rejected: rejected_rows,
            ..Default::default()
        };
        let incoming: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if incoming == 0 {
            return Ok(report);
        }
        let _lock = store.lock_table(def.name)?;
        let table = store.table(def.name).await?;
        let (version, inserted, updated) = match def.key_policy {
            KeyPolicy::Append => {
                let fresh = without_stored_keys(def, &table, batches).await?;
                let n: u64 = fresh.iter().map(|b| b.num_rows() as u64).sum();
                if n == 0 {
                    (None, 0, 0)
                } else {
                    let table = table
                        .write(fresh)
                        .with_save_mode(SaveMode::Append)
                        .with_writer_properties(writer_properties())
                        .await?;
                    (table.version(), n, 0)
                }
            }
            KeyPolicy::UpsertNewer { version_column } => {
                upsert(def, table, batches, version_column).await?
            }
        };
        report.inserted = inserted;
        report.updated = updated;
        report.duplicates = incoming - inserted - updated;
        report.version = version;
        info!(
            table = def.name,
            rows_read,
            inserted,
            updated,
            duplicates = report.duplicates,
            rejected = rejected_rows,
            "load committed"
        );
        Ok(report)
    }
}

/// Parquet settings of every file crmdb writes into a table.
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap_or_default()))
        .set_max_row_group_row_count(Some(1 << 20))
        .build()
}

/// Drop incoming rows whose key is already stored.
async fn without_stored_keys(
    def: &TableDef,
    table: &deltalake::DeltaTable,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    let stored_rows = table.snapshot()?.log_data().num_files();
    if stored_rows == 0 {
        return Ok(batches);
    }
    let ctx = SessionContext::new();
    let mem = MemTable::try_new(def.arrow_schema(), vec![batches])?;
    ctx.register_table("incoming", Arc::new(mem))?;
    ctx.register_table("stored", table.table_provider().await?)?;
    let on = def
        .key
        .iter()
        .map(|k| format!("i.\"{k}\" = s.\"{k}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let sql = format!("SELECT i.* FROM incoming i LEFT ANTI JOIN stored s ON {on}");
    Ok(ctx.sql(&sql).await?.collect().await?)
}

/// MERGE customers: insert new keys, replace stored rows with newer ones.
async fn upsert(
    def: &TableDef,
    table: deltalake::DeltaTable,
    batches: Vec<RecordBatch>,
    version_column: &str,
) -> Result<(Option<u64>, u64, u64)> {
    let ctx = SessionContext::new();
    let source = ctx.read_batches(batches)?;
    let on = def
        .key
        .iter()
        .map(|k| format!("target.\"{k}\" = source.\"{k}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let columns: Vec<&str> = def.columns.iter().map(|c| c.name).collect();
    let (table, metrics) = table
        .merge(source, on)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_writer_properties(writer_properties())
        .when_matched_update(|mut u| {
            u = u.predicate(format!(
                "source.\"{version_column}\" > target.\"{version_column}\""
            ));
            for c in &columns {
                u = u.update(format!("\"{c}\""), format!("source.\"{c}\""));
            }
            u
        })?
        .when_not_matched_insert(|mut i| {
            for c in &columns {
                i = i.set(format!("\"{c}\""), format!("source.\"{c}\""));
            }
            i
        })?
        .await?;
    let inserted = metrics.num_target_rows_inserted as u64;
    let updated = metrics.num_target_rows_updated as u64;
    let version = if inserted + updated > 0 {
        table.version()
    } else {
        None
    };
    Ok((version, inserted, updated))
}

fn write_rejects(path: &Path, errors: &[RowError]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(|e| Error::InputFile {
        file: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let io = |e: csv::Error| Error::InputFile {
        file: path.display().to_string(),
        reason: e.to_string(),
    };
    w.write_record(["file", "position", "column", "value", "error"])
        .map_err(io)?;
    for e in errors {
        w.write_record([
            e.file.as_ref(),
            &e.position.to_string(),
            &e.column,
            e.value.as_deref().unwrap_or(""),
            &e.reason,
        ])
        .map_err(io)?;
    }
    w.flush().map_err(|e| Error::io(path, e))?;
    Ok(())
}
