//! One export run: query on a fresh engine session, mask, write atomically,
//! retry with backoff, apply retention, record the run in `export_runs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::dataframe::DataFrame;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::{Expr, cast};
use datafusion::prelude::{SessionContext, lit};
use tracing::{Instrument, error, info, info_span, warn};

use super::history::{self, RunRecord, RunStatus, Trigger};
use super::job::{Job, MaskColumn, Masking};
use super::scheduler::Clock;
use super::write::{WriteOptions, write_atomic};
use crate::engine::Engine;

/// Runs export jobs against one engine, timing them with one clock.
#[derive(Debug, Clone)]
pub struct Exporter {
    engine: Engine,
    clock: Arc<dyn Clock>,
}

/// Why one attempt failed; `permanent` failures (a missing key, a missing
/// mask column) are not retried.
#[derive(Debug)]
struct Failure {
    message: String,
    permanent: bool,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure {
            message: e.to_string(),
            permanent: false,
        }
    }
}

fn permanent(message: String) -> Failure {
    Failure {
        message,
        permanent: true,
    }
}

impl Exporter {
    /// An exporter over `engine` using `clock` for times and backoff waits.
    pub fn new(engine: Engine, clock: Arc<dyn Clock>) -> Exporter {
        Exporter { engine, clock }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Where a relative destination goes: under the data directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.engine.store().path().join(p)
        }
    }

    /// Run `job` once (with its retries), for the schedule time
    /// `scheduled_for` (none: now), and record the run. The returned record
    /// says whether it succeeded; only a failure to record it is an `Err`.
    pub async fn run(
        &self,
        job: &Job,
        trigger: Trigger,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> crate::error::Result<RunRecord> {
        let span = info_span!("export", job = %job.name, trigger = trigger.as_str());
        async {
            let record = self.run_attempts(job, trigger, scheduled_for).await;
            history::append(self.engine.store(), std::slice::from_ref(&record)).await?;
            Ok(record)
        }
        .instrument(span)
        .await
    }

    async fn run_attempts(
        &self,
        job: &Job,
        trigger: Trigger,
        scheduled_for: Option<DateTime<Utc>>,
    ) -> RunRecord {
        let started = self.clock.now();
        let at = scheduled_for.unwrap_or(started);
        let dest = self.resolve(&job.render_path(at));
        let mut attempts = 0;
        let mut backoff = job.retry_backoff;
        let outcome = loop {
            attempts += 1;
            match self.attempt(job, at, &dest).await {
                Ok(w) => break Ok(w),
                Err(f) if f.permanent || attempts > job.retries => break Err(f.message),
                Err(f) => {
                    warn!(
                        attempt = attempts,
                        retry_in_s = backoff.as_secs_f64(),
                        "export failed, will retry: {}",
                        f.message
                    );
                    let wake = self.clock.now()
                        + chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::zero());
                    self.clock.sleep_until(wake).await;
                    backoff = (backoff * 2).min(Duration::from_secs(3600));
                }
            }
        };
        let finished = self.clock.now();
        let path = Some(dest.display().to_string());
        match outcome {
            Ok(w) => {
                info!(path = %dest.display(), rows = w.rows, bytes = w.bytes, attempts, "export written");
                if let Some(keep) = job.keep {
                    self.apply_retention(job, keep, &dest).await;
                }
                RunRecord {
                    job: job.name.clone(),
                    started,
                    finished,
                    rows: Some(w.rows),
                    bytes: Some(w.bytes),
                    path,
                    status: RunStatus::Ok,
                    error: None,
                    trigger,
                    scheduled_for,
                    attempts,
                }
            }
            Err(message) => {
                error!(path = %dest.display(), attempts, "export failed; the destination is unchanged: {message}");
                RunRecord {
                    job: job.name.clone(),
                    started,
                    finished,
                    rows: None,
                    bytes: None,
                    path,
                    status: RunStatus::Failed,
                    error: Some(message),
                    trigger,
                    scheduled_for,
                    attempts,
                }
            }
        }
    }

    async fn attempt(
        &self,
        job: &Job,
        at: DateTime<Utc>,
        dest: &Path,
    ) -> Result<super::write::Written, Failure> {
        let ctx = self.engine.session();
        if self.engine.config().crm.as_of.is_none() {
            // Without a configured as-of date, a run analyses as of its own
            // date in the job's zone (a long-running server's start date
            // would go stale).
            let day = at.with_timezone(&job.timezone).date_naive();
            ctx.sql(&format!("SET crm.as_of = '{day}'")).await?;
        }
        let df = ctx.sql(&job.query).await?;
        let df = apply_masking(&ctx, df, &job.masking)?;
        let stream = df.execute_stream().await?;
        Ok(write_atomic(dest, WriteOptions::new(job.format), stream).await?)
    }

    /// Delete the job's own files beyond the newest `keep` (from its
    /// history; files it did not write are never touched).
    async fn apply_retention(&self, job: &Job, keep: u32, just_written: &Path) {
        let paths = match history::written_paths(&self.engine, &job.name).await {
            Ok(p) => p,
            Err(e) => {
                warn!("retention skipped: cannot read {}: {e}", history::TABLE);
                return;
            }
        };
        let current = just_written.display().to_string();
        // the file just written is the newest, whether recorded yet or not
        let mut kept = vec![current.clone()];
        for p in paths {
            if kept.contains(&p) {
                continue;
            }
            if kept.len() < keep as usize {
                kept.push(p);
                continue;
            }
            match std::fs::remove_file(&p) {
                Ok(()) => info!(path = %p, "retention: removed an old export"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(path = %p, "retention: cannot remove an old export: {e}"),
            }
        }
    }
}

/// Project the result through the masking functions.
fn apply_masking(
    ctx: &SessionContext,
    df: DataFrame,
    masking: &Masking,
) -> Result<DataFrame, Failure> {
    let (columns, key) = match masking {
        Masking::None => return Ok(df),
        Masking::Mask(columns) => (columns, None),
        Masking::Pseudonymize { key_env, columns } => {
            let key = std::env::var(key_env).ok().filter(|k| !k.is_empty()).ok_or_else(|| {
                permanent(format!(
                    "the environment variable {key_env} (the pseudonymisation key) is not set or empty; nothing was written"
                ))
            })?;
            (columns, Some(key))
        }
    };
    let present: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if let Some(missing) = columns
        .iter()
        .find(|c| c.required && !present.contains(&c.column))
    {
        return Err(permanent(format!(
            "mask column '{}' is not in the query result (columns: {}); nothing was written",
            missing.column,
            present.join(", ")
        )));
    }
    let udf = |name: &str| {
        ctx.udf(name).map_err(|e| {
            permanent(format!(
                "masking function {name} is not available ({e}); nothing was written"
            ))
        })
    };
    let mut exprs: Vec<Expr> = Vec::with_capacity(present.len());
    for (qualifier, field) in df.schema().iter() {
        let name = field.name();
        let column = Expr::Column(Column::new(qualifier.cloned(), name));
        let masked: Option<&MaskColumn> = columns.iter().find(|c| &c.column == name);
        exprs.push(match (masked, &key) {
            (None, _) => column,
            (Some(c), None) => udf(c.kind.function())?
                .call(vec![column])
                .alias(name.as_str()),
            (Some(_), Some(key)) => udf("pseudonymize")?
                .call(vec![cast(column, DataType::Utf8), lit(key.as_str())])
                .alias(name.as_str()),
        });
    }
    Ok(df.select(exprs)?)
}
