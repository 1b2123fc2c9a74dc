//! `crmdb refresh`: materialise `customer_metrics` into the Delta table
//! `customer_snapshots`, partitioned by `snapshot_date`.
//!
//! One run writes the snapshot of one as-of date as one Delta commit that
//! replaces that date's partition (`replaceWhere`), so a re-run of the same
//! date leaves exactly one copy and a killed run leaves the table as it was.
//! Comparing dates is a filter on the partition column; earlier states of a
//! partition that was re-run remain reachable by Delta time travel.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;
use deltalake::DeltaTable;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::protocol::SaveMode;
use tracing::info;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::export::job::parse_cron;
use crate::export::scheduler::Clock;
use crate::store::Store;

/// Name of the snapshot table.
pub const TABLE: &str = "customer_snapshots";

/// The snapshot table's schema: `snapshot_date`, then every column of
/// `customer_metrics` (all nullable).
pub fn snapshot_schema(metrics: &Schema) -> SchemaRef {
    let mut fields = vec![Field::new("snapshot_date", DataType::Date32, false)];
    fields.extend(
        metrics
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true)),
    );
    Arc::new(Schema::new(fields))
}

/// Open `customer_snapshots`, creating it (empty, partitioned by
/// `snapshot_date`) when missing.
pub async fn open_or_create(store: &Store, metrics: &Schema) -> Result<DeltaTable> {
    let path = store.table_path(TABLE);
    if crate::store::has_commit(&path) {
        return store.table(TABLE).await;
    }
    std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
    let schema = snapshot_schema(metrics);
    let kernel: StructType = schema.as_ref().try_into_kernel()?;
    let table = DeltaTable::try_from_url(store.table_url(TABLE)?).await?;
    let table = table
        .create()
        .with_table_name(TABLE)
        .with_comment("Daily snapshots of customer_metrics, written by `crmdb refresh`")
        .with_columns(kernel.fields().cloned())
        .with_partition_columns(["snapshot_date"])
        .with_save_mode(SaveMode::Ignore)
        .await?;
    info!(table = TABLE, "created table");
    Ok(table)
}

/// What one refresh wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshReport {
    /// The as-of date the snapshot describes.
    pub snapshot_date: NaiveDate,
    /// Customers written.
    pub rows: u64,
    /// The Delta version committed.
    pub version: u64,
}

impl std::fmt::Display for RefreshReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{TABLE}: snapshot {} written, {} customers (table version {})",
            self.snapshot_date, self.rows, self.version
        )
    }
}

/// Write the snapshot of `customer_metrics` as of `as_of` (default: the
/// configured as-of date), replacing an earlier snapshot of the same date.
pub async fn refresh(engine: &Engine, as_of: Option<NaiveDate>) -> Result<RefreshReport> {
    let ctx = engine.session();
    if let Some(day) = as_of {
        ctx.sql(&format!("SET crm.as_of = '{day}'")).await?;
    }
    let day = ctx
        .state()
        .config_options()
        .extensions
        .get::<super::CrmOptions>()
        .map(|o| o.as_of)
        .unwrap_or_else(|| engine.config().as_of());
    let batches = ctx
        .sql(&format!(
            "SELECT DATE '{day}' AS snapshot_date, * FROM customer_metrics"
        ))
        .await?
        .collect()
        .await?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let store = engine.store();
    let _lock = store.lock_table(TABLE)?;
    let table = store.table(TABLE).await?;
    let days = day.signed_duration_since(NaiveDate::default()).num_days();
    let date = ScalarValue::Date32(Some(i32::try_from(days).map_err(|_| Error::Store {
        path: store.table_path(TABLE),
        reason: format!("snapshot date {day} is out of range"),
    })?));
    let table = table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_replace_where(col("snapshot_date").eq(lit(date)))
        .with_writer_properties(crate::ingest::writer_properties())
        .await?;
    let version = table.version().unwrap_or_default();
    info!(table = TABLE, %day, rows, version, "snapshot written");
    Ok(RefreshReport {
        snapshot_date: day,
        rows,
        version,
    })
}

/// `[crm] refresh_schedule` in `crmdb serve`: runs [`refresh`] at every
/// time of a cron expression (UTC) on a [`Clock`], so tests run a day of
/// schedule without waiting.
#[derive(Debug)]
pub struct RefreshSchedule {
    engine: Engine,
    cron: croner::Cron,
    clock: Arc<dyn Clock>,
}

impl RefreshSchedule {
    /// The schedule of `engine`'s config, or `None` when it has none. A bad
    /// expression is a config error naming the key.
    pub fn from_config(engine: &Engine, clock: Arc<dyn Clock>) -> Result<Option<RefreshSchedule>> {
        let Some(text) = &engine.config().crm.refresh_schedule else {
            return Ok(None);
        };
        let cron = parse_cron(text).map_err(|reason| Error::Config {
            path: engine
                .config()
                .source
                .clone()
                .unwrap_or_else(|| crate::config::Config::FILE_NAME.into()),
            reason: format!("crm.refresh_schedule: {reason}"),
        })?;
        Ok(Some(RefreshSchedule {
            engine: engine.clone(),
            cron,
            clock,
        }))
    }

    /// The first schedule time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }

    /// Wait for the next schedule time and refresh as of the configured date
    /// (the day of the schedule time when not configured). A failed refresh is logged and the
    /// schedule goes on.
    pub async fn tick(&self) -> Option<Result<RefreshReport>> {
        let next = self.next_after(self.clock.now())?;
        self.clock.sleep_until(next).await;
        // Without a configured as-of date, the snapshot is of the day the
        // schedule fired (UTC).
        let day = match self.engine.config().crm.as_of {
            Some(_) => None,
            None => Some(next.date_naive()),
        };
        let result = refresh(&self.engine, day).await;
        match &result {
            Ok(report) => info!(%report, "scheduled refresh"),
            Err(e) => tracing::error!("scheduled refresh failed: {e}"),
        }
        Some(result)
    }

    /// Run for ever (until the task is dropped).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { while self.tick().await.is_some() {} })
    }
}
