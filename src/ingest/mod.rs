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
use std::collections::hash_map::Entry;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::{filter_record_batch, interleave};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::datasource::MemTable;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
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
    /// Every key of this load, with where its row came from: the chunk
    /// (an index into `origins`) in the high 32 bits, the row in the low.
    keys: HashMap<(i64, i64), u64, foldhash::fast::RandomState>,
    /// Input and source positions of each chunk, looked up only to name the
    /// first row of a duplicate key.
    origins: Vec<ChunkOrigin>,
}

/// Where the rows of one converted chunk came from.
struct ChunkOrigin {
    file: Arc<str>,
    kind: convert::PositionKind,
    positions: Vec<u64>,
}

impl Collector {
    fn new(def: &'static TableDef) -> Self {
        Collector {
            def,
            batches: Vec::new(),
            errors: Vec::new(),
            rejected_rows: 0,
            rows_read: 0,
            keys: HashMap::default(),
            origins: Vec::new(),
        }
    }

    fn add(&mut self, raw: RawChunk) -> Result<()> {
        self.rows_read += raw.batch.num_rows() as u64;
        let file = raw.file.clone();
        let kind = raw.kind;
        // Size the key map for the whole input at once: growing it by
        // doubling rehashed every key and faulted in each new table (a
        // quarter of a 10 M-row Parquet load, measured with perf).
        // A failed reservation only means growing as we go.
        let to_come = usize::try_from(raw.rows_to_come).unwrap_or(0);
        let _ = self.keys.try_reserve(to_come);
        let converted = convert(self.def, raw)?;
        self.rejected_rows += converted.rejected as u64;
        self.errors.extend(converted.errors);
        let origin = ChunkOrigin {
            file,
            kind,
            positions: converted.positions,
        };
        let batch = self.check_keys(converted.batch, origin)?;
        if batch.num_rows() > 0 {
            self.batches.push(batch);
        }
        Ok(())
    }

    /// Reject rows whose key already appeared in this load.
    fn check_keys(&mut self, batch: RecordBatch, origin: ChunkOrigin) -> Result<RecordBatch> {
        let key_values: Vec<Vec<i64>> = self
            .def
            .key
            .iter()
            .map(|k| {
                let col = batch
                    .column_by_name(k)
                    .ok_or_else(|| Error::Usage(format!("key column {k} missing")))?;
                integer_values(k, col.as_ref())
            })
            .collect::<Result<_>>()?;
        let chunk = u32::try_from(self.origins.len())
            .map_err(|_| Error::Usage("a load of more than 2^32 chunks".into()))?;
        let mut keep = Vec::with_capacity(batch.num_rows());
        let mut dropped = false;
        for row in 0..batch.num_rows() {
            let key = (key_values[0][row], key_values.get(1).map_or(0, |v| v[row]));
            match self.keys.entry(key) {
                Entry::Occupied(first) => {
                    let first = *first.get();
                    let key_text = self
                        .def
                        .key
                        .iter()
                        .zip(&key_values)
                        .map(|(k, v)| format!("{k}={}", v[row]))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let (first_file, first_pos) = self.origin_of(first, &origin);
                    self.errors.push(RowError {
                        file: origin.file.clone(),
                        position: origin.kind.at(origin.positions[row]),
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
                Entry::Vacant(slot) => {
                    slot.insert(u64::from(chunk) << 32 | row as u64);
                    keep.push(true);
                }
            }
        }
        self.origins.push(origin);
        if dropped {
            Ok(filter_record_batch(&batch, &BooleanArray::from(keep))?)
        } else {
            Ok(batch)
        }
    }

    /// The input and position of the row a key entry points at; `current`
    /// is the chunk being checked, not yet in `origins`.
    fn origin_of(&self, entry: u64, current: &ChunkOrigin) -> (Arc<str>, Position) {
        let origin = self.origins.get((entry >> 32) as usize).unwrap_or(current);
        let row = (entry & u64::from(u32::MAX)) as usize;
        let position = origin.positions.get(row).copied().unwrap_or(0);
        (origin.file.clone(), origin.kind.at(position))
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
                    (append_clustered(def, table, fresh).await?, n, 0)
                }
            }
            KeyPolicy::UpsertNewer { .. } if table.snapshot()?.log_data().num_files() == 0 => {
                // Nothing stored to merge with: every row is new.
                (append_clustered(def, table, batches).await?, incoming, 0)
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

/// Rows per Parquet row group of the files crmdb writes. With rows clustered
/// by [`TableDef::cluster_by`], a lookup of one customer reads one row group
/// of each file (and within it, through the page index, one page per column);
/// full scans are not measurably slower than with 1 M-row groups.
pub const ROW_GROUP_ROWS: usize = 1 << 17;

/// Rows per Parquet data page (at most; a page also ends at 1 MiB). A lookup
/// through the page index decompresses and decodes one page per column and
/// walks it to the rows it wants, so small pages keep it cheap (at 1 M
/// customers, 1,024-row LZ4 pages instead of 4,096-row zstd pages took the
/// customer 360 lookup through the port from 4.98 to 3.79 ms p50). Page
/// headers and statistics are still a rounding error in a full scan.
pub const PAGE_ROWS: usize = 1024;

/// Largest dictionary page per column chunk. Closed vocabularies (status,
/// channel, tier, category, city) fit many times over; a column with more
/// distinct values (ids, timestamps, amounts, emails, names, SKUs) falls back
/// to plain encoding after the first few hundred values instead of carrying
/// a large dictionary that every lookup in the row group has to decompress
/// and decode (at 128 KiB, the dictionaries were most of what a point lookup
/// decompressed).
pub const DICTIONARY_PAGE_BYTES: usize = 16 * 1024;

/// Parquet settings of every file crmdb writes into a table: LZ4 (raw)
/// compression, [`ROW_GROUP_ROWS`]-row groups of [`PAGE_ROWS`]-row pages,
/// dictionaries up to [`DICTIONARY_PAGE_BYTES`], and statistics down to the
/// page (column and offset indexes), so that the reader can skip row groups
/// and pages.
///
/// LZ4 rather than zstd: the files are read far more often than written and
/// usually from the page cache, where decompression is the cost. LZ4
/// decompresses several times faster, and the parquet crate's zstd codec
/// makes a compression and a decompression context for every column chunk
/// it opens, which was a tenth of a point lookup's time. The files are
/// larger (see README, "Loading data").
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_statistics_enabled(EnabledStatistics::Page)
        .build()
}

/// The values of an integer column as i64 (nulls read as 0: key and
/// cluster columns are NOT NULL by the table definition).
fn integer_values(name: &str, col: &dyn Array) -> Result<Vec<i64>> {
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
                "column {name} has unsupported type {other} for a key"
            )));
        }
    })
}

/// The session a load's write is planned in: one partition. delta-rs feeds
/// all partitions of an unpartitioned write into one Parquet writer, so with
/// the default (one per core) the batches of a sorted load arrive
/// interleaved and each row group spans most of the key range; encoding is
/// single-threaded either way.
fn ordered_write_session() -> Result<Arc<dyn datafusion::catalog::Session>> {
    // delta-rs' own session (its planner runs the write's metric nodes).
    let one = HashMap::from([(
        "datafusion.execution.target_partitions".to_string(),
        "1".to_string(),
    )]);
    let ctx = deltalake::delta_datafusion::DeltaSessionContext::new_with_session_overrides(&one)?;
    Ok(Arc::new(ctx.state()))
}

/// Append one load's rows to a table as one commit, sorted by its cluster
/// column; returns the new table version.
async fn append_clustered(
    def: &TableDef,
    table: deltalake::DeltaTable,
    batches: Vec<RecordBatch>,
) -> Result<Option<u64>> {
    let table = table
        .write(cluster(def, batches)?)
        .with_session_state(ordered_write_session()?)
        .with_save_mode(SaveMode::Append)
        .with_writer_properties(writer_properties())
        .await?;
    Ok(table.version())
}

/// Rows per batch handed to the Delta writer after clustering.
const CLUSTER_BATCH_ROWS: usize = 1 << 16;

/// Sort the rows of one load by the table's cluster column (rows with the
/// same value keep their arrival order). Input that is already in order is
/// passed through untouched.
fn cluster(def: &TableDef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let Some(column) = def.cluster_by else {
        return Ok(batches);
    };
    let Some(schema) = batches.first().map(|b| b.schema()) else {
        return Ok(batches);
    };
    let index = schema.index_of(column)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    // One u128 per row: the value (sign bit flipped, so that unsigned order
    // is numeric order), then the batch, then the row within it.
    let mut order: Vec<u128> = Vec::with_capacity(rows);
    for (b, batch) in batches.iter().enumerate() {
        let values = integer_values(column, batch.column(index).as_ref())?;
        let tag = (b as u128) << 32;
        order.extend(
            values
                .iter()
                .enumerate()
                .map(|(r, v)| (u128::from((*v as u64) ^ (1 << 63)) << 64) | tag | r as u128),
        );
    }
    if order.is_sorted() {
        return Ok(batches);
    }
    order.sort_unstable();
    let columns: Vec<Vec<&dyn Array>> = (0..schema.fields().len())
        .map(|c| batches.iter().map(|b| b.column(c).as_ref()).collect())
        .collect();
    let mut out = Vec::with_capacity(rows.div_ceil(CLUSTER_BATCH_ROWS));
    let mut picks = Vec::with_capacity(CLUSTER_BATCH_ROWS);
    for chunk in order.chunks(CLUSTER_BATCH_ROWS) {
        picks.clear();
        picks.extend(
            chunk
                .iter()
                .map(|o| ((*o >> 32) as u32 as usize, *o as u32 as usize)),
        );
        let arrays = columns
            .iter()
            .map(|parts| interleave(parts, &picks))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        out.push(RecordBatch::try_new(schema.clone(), arrays)?);
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::PROMOTIONS;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    /// A two-column batch shaped like a table clustered by `customer_id`.
    fn batch(customers: &[i64], tags: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Int64, false),
            Field::new("tag", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(customers.to_vec())),
                Arc::new(StringArray::from(tags.to_vec())),
            ],
        )
        .unwrap()
    }

    fn rows(batches: &[RecordBatch]) -> Vec<(i64, String)> {
        batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_primitive::<Int64Type>().clone();
                let tags = b.column(1).as_string::<i32>().clone();
                (0..b.num_rows())
                    .map(move |r| (ids.value(r), tags.value(r).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn cluster_sorts_by_the_column_across_batches_keeping_arrival_order_of_ties() {
        let input = vec![
            batch(&[7, -3, 7, 0], &["a", "b", "c", "d"]),
            batch(&[i64::MAX, 7, i64::MIN, -3], &["e", "f", "g", "h"]),
        ];
        let out = cluster(&crate::store::schema::ORDERS, input).unwrap();
        let expected: Vec<(i64, String)> = [
            (i64::MIN, "g"),
            (-3, "b"),
            (-3, "h"),
            (0, "d"),
            (7, "a"),
            (7, "c"),
            (7, "f"),
            (i64::MAX, "e"),
        ]
        .iter()
        .map(|(i, t)| (*i, t.to_string()))
        .collect();
        assert_eq!(rows(&out), expected);
    }

    #[test]
    fn cluster_passes_sorted_input_and_unclustered_tables_through() {
        let sorted = vec![batch(&[1, 2], &["a", "b"]), batch(&[2, 5], &["c", "d"])];
        let out = cluster(&crate::store::schema::ORDERS, sorted).unwrap();
        assert_eq!(out.len(), 2, "batches are not re-cut when already in order");
        assert_eq!(rows(&out)[2], (2, "c".to_string()));
        let unsorted = vec![batch(&[9, 1], &["a", "b"])];
        let out = cluster(&PROMOTIONS, unsorted).unwrap();
        assert_eq!(rows(&out), vec![(9, "a".into()), (1, "b".into())]);
    }

    #[test]
    fn cluster_cuts_the_output_into_writer_sized_batches() {
        let n = CLUSTER_BATCH_ROWS + 10;
        let ids: Vec<i64> = (0..n as i64).rev().collect();
        let tags = vec!["x"; n];
        let out = cluster(&crate::store::schema::ORDERS, vec![batch(&ids, &tags)]).unwrap();
        assert_eq!(
            out.iter().map(|b| b.num_rows()).collect::<Vec<_>>(),
            vec![CLUSTER_BATCH_ROWS, 10]
        );
        assert_eq!(rows(&out)[0].0, 0);
        assert_eq!(rows(&out)[n - 1].0, n as i64 - 1);
    }

    #[test]
    fn every_customer_keyed_table_is_clustered_by_customer() {
        for def in crate::store::schema::TABLES {
            let expected = match def.name {
                "promotions" => None,
                "order_items" => Some("order_id"),
                _ => Some("customer_id"),
            };
            assert_eq!(def.cluster_by, expected, "{}", def.name);
            if let Some(c) = def.cluster_by {
                let col = def.column(c).unwrap();
                assert!(!col.nullable, "{}.{c} must be NOT NULL", def.name);
            }
        }
    }
}
