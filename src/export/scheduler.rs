//! The scheduler: runs due export jobs one at a time, on a [`Clock`] that
//! tests replace with a [`ManualClock`] (so "every minute" jobs run through
//! an hour of schedule with no real waiting).
//!
//! Rules:
//! - a job is due when one of its schedule times lies between the last one
//!   handled and now; several missed times (the scheduler was busy) run once,
//!   for the latest of them;
//! - at start, a job with `catch_up = true` whose latest schedule time is
//!   later than its last recorded run (it was missed while crmdb was down)
//!   runs once at once; a job that never ran has nothing to catch up;
//! - a failed run is retried with backoff inside the run; the next schedule
//!   time runs regardless.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use super::history::{self, RunRecord, Trigger};
use super::job::Job;
use super::run::Exporter;

/// Wall-clock time and waiting, replaceable in tests.
#[async_trait]
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
    /// Return at (or soon after) `deadline`.
    async fn sleep_until(&self, deadline: DateTime<Utc>);
}

/// The system clock. Sleeps in steps of at most a minute and re-reads the
/// time, so a suspended machine or a clock change does not skew schedules.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        loop {
            let left = deadline - Utc::now();
            let Ok(left) = left.to_std() else { return };
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(std::time::Duration::from_secs(60))).await;
        }
    }
}

/// A clock that only moves when told to, or when someone sleeps on it: then
/// it jumps to the deadline at once. For tests and dry runs.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Move the clock to `t` (never backwards).
    pub fn set(&self, t: DateTime<Utc>) {
        if let Ok(mut now) = self.now.lock()
            && t > *now
        {
            *now = t;
        }
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.now.lock().map(|n| *n).unwrap_or_default()
    }

    async fn sleep_until(&self, deadline: DateTime<Utc>) {
        self.set(deadline);
        tokio::task::yield_now().await;
    }
}

/// Runs a set of jobs on their schedules.
#[derive(Debug)]
pub struct Scheduler {
    exporter: Exporter,
    jobs: Vec<Arc<Job>>,
}

/// Per-job progress of the loop.
#[derive(Debug)]
struct Slot {
    job: Arc<Job>,
    /// The latest schedule time already handled (or the start time).
    handled: DateTime<Utc>,
}

impl Scheduler {
    /// A scheduler for the jobs that have a schedule.
    pub fn new(exporter: Exporter, jobs: Vec<Arc<Job>>) -> Scheduler {
        let jobs = jobs.into_iter().filter(|j| j.schedule.is_some()).collect();
        Scheduler { exporter, jobs }
    }

    /// The jobs it schedules.
    pub fn jobs(&self) -> &[Arc<Job>] {
        &self.jobs
    }

    /// Catch up, then run due jobs until the clock passes `end` (forever
    /// when `None`; a run started before `end` is finished). Returns the
    /// records of the runs made.
    pub async fn run_until(&self, end: Option<DateTime<Utc>>) -> Vec<RunRecord> {
        let clock = self.exporter.clock().clone();
        let mut done = Vec::new();
        let start = clock.now();
        let mut slots = Vec::with_capacity(self.jobs.len());
        for job in &self.jobs {
            let latest = job.latest_at_or_before(start);
            if job.catch_up
                && let Some(latest) = latest
                && self.missed(job, latest).await
            {
                info!(job = %job.name, scheduled_for = %latest, "catching up a run missed while crmdb was down");
                done.extend(self.run_one(job, Trigger::CatchUp, latest).await);
            }
            slots.push(Slot {
                job: job.clone(),
                handled: start,
            });
        }
        loop {
            let now = clock.now();
            if end.is_some_and(|end| now > end) {
                return done;
            }
            for slot in &mut slots {
                let Some(next) = slot.job.next_after(slot.handled) else {
                    continue;
                };
                if next > now {
                    continue;
                }
                let at = slot.job.latest_at_or_before(now).unwrap_or(next);
                if at > next {
                    warn!(job = %slot.job.name, skipped_from = %next, running_for = %at, "the scheduler was busy: missed schedule times run once");
                }
                slot.handled = at;
                done.extend(self.run_one(&slot.job, Trigger::Schedule, at).await);
            }
            let wake = slots
                .iter()
                .filter_map(|s| s.job.next_after(s.handled))
                .min();
            let Some(wake) = wake else {
                info!("no scheduled export jobs");
                return done;
            };
            if end.is_some_and(|end| wake > end) {
                return done;
            }
            if wake > clock.now() {
                clock.sleep_until(wake).await;
            }
        }
    }

    /// Whether the job's last recorded run started before `latest`.
    async fn missed(&self, job: &Job, latest: DateTime<Utc>) -> bool {
        match history::last_run(self.exporter.engine(), &job.name).await {
            Ok(Some(last)) => last.started < latest,
            Ok(None) => false,
            Err(e) => {
                warn!(job = %job.name, "cannot read the run history, no catch-up: {e}");
                false
            }
        }
    }

    async fn run_one(&self, job: &Job, trigger: Trigger, at: DateTime<Utc>) -> Option<RunRecord> {
        match self.exporter.run(job, trigger, Some(at)).await {
            Ok(record) => Some(record),
            Err(e) => {
                error!(job = %job.name, "export ran but could not be recorded in {}: {e}", history::TABLE);
                None
            }
        }
    }

    /// Run forever in a background task; stopped when the handle drops.
    pub fn spawn(self) -> SchedulerHandle {
        let task = tokio::spawn(async move {
            self.run_until(None).await;
        });
        SchedulerHandle { task }
    }
}

/// A scheduler running in the background; dropping it stops the scheduler
/// (a run in progress is abandoned: its temporary file is removed and the
/// destination stays as it was).
#[derive(Debug)]
pub struct SchedulerHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SchedulerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn manual_clock_jumps_to_deadlines_and_never_goes_back() {
        let t0 = Utc.with_ymd_and_hms(2026, 7, 1, 10, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        let t1 = t0 + chrono::Duration::minutes(5);
        clock.sleep_until(t1).await;
        assert_eq!(clock.now(), t1);
        clock.set(t0);
        assert_eq!(clock.now(), t1);
    }
}
