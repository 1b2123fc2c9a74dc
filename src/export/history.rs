//! The run history: the Delta table `export_runs` in the data directory, one
//! row per export run (after its retries), queryable over SQL like any table.
//!
//! It is a system table, not a canonical one: `Store::open` does not check
//! it, and it is created on first use. Appends from several processes (the
//! server's scheduler, `crmdb export run`) are serialised by the store's
//! table lock.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::SchemaProvider;
use datafusion::prelude::{SessionContext, col, lit};
use deltalake::DeltaTable;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::protocol::SaveMode;
use tracing::info;

use crate::engine::{Engine, LiveTable};
use crate::error::{Error, Result};
use crate::store::Store;

/// Name of the history table.
pub const TABLE: &str = "export_runs";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// The file was written.
    Ok,
    /// Every attempt failed; the destination was left as it was.
    Failed,
}

impl RunStatus {
    /// `ok` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
        }
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The job's schedule.
    Schedule,
    /// A scheduled run missed while crmdb was down, run at start.
    CatchUp,
    /// `crmdb export run`.
    Manual,
}

impl Trigger {
    /// `schedule`, `catch_up` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Manual => "manual",
        }
    }

    fn parse(s: &str) -> Trigger {
        match s {
            "schedule" => Trigger::Schedule,
            "catch_up" => Trigger::CatchUp,
            _ => Trigger::Manual,
        }
    }
}

/// One row of `export_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    /// Job name.
    pub job: String,
    /// When the first attempt started.
    pub started: DateTime<Utc>,
    /// When the run ended.
    pub finished: DateTime<Utc>,
    /// Rows written (successful runs).
    pub rows: Option<u64>,
    /// File size (successful runs).
    pub bytes: Option<u64>,
    /// The destination file.
    pub path: Option<String>,
    /// How it ended.
    pub status: RunStatus,
    /// The last attempt's error (failed runs).
    pub error: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// The schedule time it ran for (scheduled and catch-up runs).
    pub scheduled_for: Option<DateTime<Utc>>,
    /// Attempts made (1 + retries used).
    pub attempts: u32,
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The schema of `export_runs`.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("started", ts_type(), false),
        Field::new("finished", ts_type(), false),
        Field::new("rows", DataType::Int64, true),
        Field::new("bytes", DataType::Int64, true),
        Field::new("path", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("scheduled_for", ts_type(), true),
        Field::new("attempts", DataType::Int32, false),
    ]))
}

/// Open `export_runs`, creating it (empty) when missing.
pub async fn open_or_create(store: &Store) -> Result<DeltaTable> {
    let path = store.table_path(TABLE);
    if crate::store::has_commit(&path) {
        return store.table(TABLE).await;
    }
    std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
    let kernel: StructType = schema().as_ref().try_into_kernel()?;
    let table = DeltaTable::try_from_url(store.table_url(TABLE)?).await?;
    let table = table
        .create()
        .with_table_name(TABLE)
        .with_comment("One row per export run, written by crmdb's export jobs")
        .with_columns(kernel.fields().cloned())
        .with_save_mode(SaveMode::Ignore)
        .await?;
    info!(table = TABLE, "created table");
    Ok(table)
}

/// Create (if needed) and register `export_runs` in the engine's schema.
pub async fn register(schema: &Arc<dyn SchemaProvider>, store: &Store) -> Result<()> {
    let table = open_or_create(store).await?;
    schema.register_table(TABLE.to_string(), Arc::new(LiveTable::new(table).await?))?;
    Ok(())
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn to_batch(records: &[RunRecord]) -> Result<RecordBatch> {
    let ts = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.job.as_str()),
        )),
        ts(records.iter().map(|r| Some(micros(r.started))).collect()),
        ts(records.iter().map(|r| Some(micros(r.finished))).collect()),
        Arc::new(Int64Array::from_iter(
            records.iter().map(|r| r.rows.map(|v| v as i64)),
        )),
        Arc::new(Int64Array::from_iter(
            records.iter().map(|r| r.bytes.map(|v| v as i64)),
        )),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.path.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.status.as_str()),
        )),
        Arc::new(StringArray::from_iter(
            records.iter().map(|r| r.error.as_deref()),
        )),
        Arc::new(StringArray::from_iter_values(
            records.iter().map(|r| r.trigger.as_str()),
        )),
        ts(records
            .iter()
            .map(|r| r.scheduled_for.map(micros))
            .collect()),
        Arc::new(Int32Array::from_iter_values(
            records.iter().map(|r| r.attempts as i32),
        )),
    ];
    Ok(RecordBatch::try_new(schema(), columns)?)
}

/// Append records to `export_runs` as one commit.
pub async fn append(store: &Store, records: &[RunRecord]) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let batch = to_batch(records)?;
    let lock_store = store.clone();
    let _lock = tokio::task::spawn_blocking(move || lock_store.lock_table(TABLE))
        .await
        .map_err(|e| Error::Usage(format!("waiting for the {TABLE} lock: {e}")))??;
    let table = open_or_create(store).await?;
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .await?;
    Ok(())
}

fn from_batches(batches: &[RecordBatch]) -> Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    for b in batches {
        let column = |name: &str| {
            b.column_by_name(name)
                .cloned()
                .ok_or_else(|| Error::Usage(format!("{TABLE} has no column {name}")))
        };
        let (job, started, finished, rows, bytes, path, status, error, trigger, sched, attempts) = (
            column("job")?,
            column("started")?,
            column("finished")?,
            column("rows")?,
            column("bytes")?,
            column("path")?,
            column("status")?,
            column("error")?,
            column("trigger")?,
            column("scheduled_for")?,
            column("attempts")?,
        );
        let text = |a: &ArrayRef, i: usize| -> Option<String> {
            if a.is_null(i) {
                return None;
            }
            match a.data_type() {
                DataType::Utf8 => Some(a.as_string::<i32>().value(i).to_string()),
                DataType::LargeUtf8 => Some(a.as_string::<i64>().value(i).to_string()),
                DataType::Utf8View => Some(a.as_string_view().value(i).to_string()),
                _ => None,
            }
        };
        let time = |a: &ArrayRef, i: usize| -> Option<DateTime<Utc>> {
            let a = a.as_primitive_opt::<TimestampMicrosecondType>()?;
            if a.is_null(i) {
                return None;
            }
            Utc.timestamp_micros(a.value(i)).single()
        };
        let int = |a: &ArrayRef, i: usize| -> Option<u64> {
            let a = a.as_primitive_opt::<Int64Type>()?;
            (!a.is_null(i)).then(|| a.value(i) as u64)
        };
        for i in 0..b.num_rows() {
            let started_at = time(&started, i).unwrap_or_default();
            out.push(RunRecord {
                job: text(&job, i).unwrap_or_default(),
                started: started_at,
                finished: time(&finished, i).unwrap_or(started_at),
                rows: int(&rows, i),
                bytes: int(&bytes, i),
                path: text(&path, i),
                status: if text(&status, i).as_deref() == Some("ok") {
                    RunStatus::Ok
                } else {
                    RunStatus::Failed
                },
                error: text(&error, i),
                trigger: Trigger::parse(text(&trigger, i).as_deref().unwrap_or_default()),
                scheduled_for: time(&sched, i),
                attempts: attempts
                    .as_primitive_opt::<Int32Type>()
                    .map(|a| a.value(i) as u32)
                    .unwrap_or(1),
            });
        }
    }
    Ok(out)
}

/// Runs, newest first: of one job or of all, at most `limit`.
pub async fn runs(
    engine: &Engine,
    job: Option<&str>,
    limit: Option<usize>,
) -> Result<Vec<RunRecord>> {
    let ctx: SessionContext = engine.session();
    let mut df = ctx.table(TABLE).await?;
    if let Some(job) = job {
        df = df.filter(col("job").eq(lit(job)))?;
    }
    df = df.sort(vec![
        col("started").sort(false, false),
        col("finished").sort(false, false),
    ])?;
    if let Some(n) = limit {
        df = df.limit(0, Some(n))?;
    }
    from_batches(&df.collect().await?)
}

/// The latest run of a job.
pub async fn last_run(engine: &Engine, job: &str) -> Result<Option<RunRecord>> {
    Ok(runs(engine, Some(job), Some(1)).await?.into_iter().next())
}

/// The distinct files a job wrote successfully, newest first.
pub async fn written_paths(engine: &Engine, job: &str) -> Result<Vec<String>> {
    use datafusion::functions_aggregate::expr_fn::max;
    let ctx = engine.session();
    let df = ctx
        .table(TABLE)
        .await?
        .filter(
            col("job")
                .eq(lit(job))
                .and(col("status").eq(lit("ok")))
                .and(col("path").is_not_null()),
        )?
        .aggregate(vec![col("path")], vec![max(col("finished")).alias("last")])?
        .sort(vec![
            col("last").sort(false, false),
            col("path").sort(true, false),
        ])?;
    let mut out = Vec::new();
    for b in df.collect().await? {
        let a = b.column(0);
        for i in 0..b.num_rows() {
            let v = match a.data_type() {
                DataType::Utf8View => a.as_string_view().value(i).to_string(),
                DataType::LargeUtf8 => a.as_string::<i64>().value(i).to_string(),
                _ => a.as_string::<i32>().value(i).to_string(),
            };
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_arrow() {
        let t = |s: i64| Utc.timestamp_opt(1_780_000_000 + s, 0).single().unwrap();
        let records = vec![
            RunRecord {
                job: "a".into(),
                started: t(0),
                finished: t(3),
                rows: Some(12),
                bytes: Some(345),
                path: Some("/x/a.csv".into()),
                status: RunStatus::Ok,
                error: None,
                trigger: Trigger::Schedule,
                scheduled_for: Some(t(-1)),
                attempts: 1,
            },
            RunRecord {
                job: "b".into(),
                started: t(10),
                finished: t(11),
                rows: None,
                bytes: None,
                path: Some("/x/b.csv".into()),
                status: RunStatus::Failed,
                error: Some("boom".into()),
                trigger: Trigger::Manual,
                scheduled_for: None,
                attempts: 3,
            },
        ];
        let batch = to_batch(&records).unwrap();
        assert_eq!(from_batches(&[batch]).unwrap(), records);
    }
}
