//! Scheduled exports of segment tables.
//!
//! Jobs are `[[export]]` tables in `crmdb.toml` ([`job`]): a query, a format
//! (Parquet, CSV, JSON lines), a destination path template, a cron schedule
//! in a time zone, retention, masking of personal data. `crmdb serve` runs
//! due jobs in a background task ([`scheduler`]); `crmdb export run NAME`
//! runs one now. Every run writes a temporary file and renames it into
//! place ([`write`]), is retried with backoff, and is recorded in the system
//! table `export_runs` ([`history`]). `COPY … TO 'file'` on the server uses
//! the same atomic writer ([`copy`]).

pub mod copy;
pub mod history;
pub mod job;
pub mod run;
pub mod scheduler;
pub mod write;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::{col, lit};

pub use history::{RunRecord, RunStatus, Trigger};
pub use job::{ExportFormat, ExportJob, Job, MaskMode, validate_jobs};
pub use run::Exporter;
pub use scheduler::{Clock, ManualClock, Scheduler, SchedulerHandle, SystemClock};

use crate::cli::Cli;
use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::output::{OutputFormat, write_batches};

/// `crmdb export …`
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ExportAction,
}

/// Subcommands of `crmdb export`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ExportAction {
    /// Run one job now (with its retries) and record the run.
    Run {
        /// The job's name in crmdb.toml.
        name: String,
    },
    /// The configured jobs: schedule, next run, last status.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Recorded runs, newest first (the table `export_runs`).
    History {
        /// Only this job's runs.
        name: Option<String>,
        /// At most this many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
}

/// The checked jobs of a configuration.
pub fn jobs(config: &Config) -> Result<Vec<Arc<Job>>> {
    let jobs = validate_jobs(&config.exports).map_err(|reason| Error::Config {
        path: config
            .source
            .clone()
            .unwrap_or_else(|| Config::FILE_NAME.into()),
        reason,
    })?;
    Ok(jobs.into_iter().map(Arc::new).collect())
}

/// Start the scheduler of `crmdb serve` on the system clock: `None` when no
/// job has a schedule. Dropping the handle stops it.
pub fn start_scheduler(engine: &Engine) -> Result<Option<SchedulerHandle>> {
    let jobs = jobs(engine.config())?;
    let scheduler = Scheduler::new(Exporter::new(engine.clone(), Arc::new(SystemClock)), jobs);
    if scheduler.jobs().is_empty() {
        return Ok(None);
    }
    for job in scheduler.jobs() {
        if let job::Masking::Pseudonymize { key_env, .. } = &job.masking
            && std::env::var_os(key_env).is_none()
        {
            tracing::error!(job = %job.name, "{key_env} is not set: this job's runs will fail until it is");
        }
    }
    tracing::info!(jobs = scheduler.jobs().len(), "export scheduler started");
    Ok(Some(scheduler.spawn()))
}

/// Run `crmdb export …`.
pub async fn cli(cli: &Cli, args: &ExportArgs) -> anyhow::Result<()> {
    let store = crate::store::Store::open(&cli.data).await?;
    let config = Arc::new(Config::load(cli.config.as_deref(), &cli.data)?);
    let engine = Engine::open(store, config).await?;
    let jobs = jobs(engine.config())?;
    match &args.action {
        ExportAction::Run { name } => {
            let job = find(&jobs, name)?;
            let started = Instant::now();
            let exporter = Exporter::new(engine.clone(), Arc::new(SystemClock));
            let record = exporter
                .run(job, Trigger::Manual, None)
                .await
                .context("recording the run in export_runs")?;
            let path = record.path.clone().unwrap_or_default();
            match record.status {
                RunStatus::Ok => {
                    println!(
                        "{}: {} rows, {} bytes written to {path}",
                        job.name,
                        record.rows.unwrap_or(0),
                        record.bytes.unwrap_or(0)
                    );
                    eprintln!("in {:.2} s", started.elapsed().as_secs_f64());
                    Ok(())
                }
                RunStatus::Failed => anyhow::bail!(
                    "export {} failed after {} attempt(s); {path} was left as it was: {}",
                    job.name,
                    record.attempts,
                    record.error.unwrap_or_default()
                ),
            }
        }
        ExportAction::List { format } => {
            let batch = list_batch(&engine, &jobs).await?;
            write_batches(&mut std::io::stdout().lock(), &[batch], *format)?;
            Ok(())
        }
        ExportAction::History {
            name,
            limit,
            format,
        } => {
            let ctx = engine.session();
            let mut df = ctx.table(history::TABLE).await?;
            if let Some(name) = name {
                df = df.filter(col("job").eq(lit(name.as_str())))?;
            }
            let df = df
                .sort(vec![
                    col("started").sort(false, false),
                    col("finished").sort(false, false),
                ])?
                .limit(0, Some(*limit))?
                .select_columns(&[
                    "job", "started", "finished", "status", "rows", "bytes", "attempts", "trigger",
                    "path", "error",
                ])?;
            let batches = df.collect().await?;
            write_batches(&mut std::io::stdout().lock(), &batches, *format)?;
            Ok(())
        }
    }
}

fn find<'a>(jobs: &'a [Arc<Job>], name: &str) -> Result<&'a Job> {
    jobs.iter()
        .find(|j| j.name == name)
        .map(|j| j.as_ref())
        .ok_or_else(|| {
            let names: Vec<&str> = jobs.iter().map(|j| j.name.as_str()).collect();
            Error::Usage(if names.is_empty() {
                format!("no export job '{name}': crmdb.toml has no [[export]] jobs")
            } else {
                format!("no export job '{name}' (configured: {})", names.join(", "))
            })
        })
}

/// One row per job: name, format, schedule, timezone, next run (in the
/// job's zone), last run and its status, destination template.
async fn list_batch(engine: &Engine, jobs: &[Arc<Job>]) -> Result<RecordBatch> {
    let now = chrono::Utc::now();
    let mut rows: Vec<[Option<String>; 7]> = Vec::new();
    for job in jobs {
        let last = history::last_run(engine, &job.name).await?;
        let zone = job.timezone;
        rows.push([
            Some(job.name.clone()),
            job.schedule_text.clone(),
            Some(zone.name().to_string()),
            job.next_after(now).map(|t| {
                t.with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            }),
            last.as_ref().map(|r| {
                r.started
                    .with_timezone(&zone)
                    .format("%Y-%m-%d %H:%M:%S %Z")
                    .to_string()
            }),
            last.as_ref().map(|r| r.status.as_str().to_string()),
            Some(job.path_text.clone()),
        ]);
    }
    let names = [
        "name",
        "schedule",
        "timezone",
        "next_run",
        "last_run",
        "last_status",
        "path",
    ];
    let schema = Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| Arc::new(StringArray::from_iter(rows.iter().map(|r| r[i].as_deref()))) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(schema, columns)?)
}
