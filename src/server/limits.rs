//! Statement timeout and CancelRequest over the whole life of a statement:
//! planning, execution and the streaming of its rows. datafusion-postgres
//! applies `statement_timeout` to planning only and pgwire's cancel signal is
//! dropped once the first response is returned, while DataFusion does the work
//! lazily as rows are pulled. So every row stream is wrapped: when the deadline
//! passes or a cancel arrives, the stream ends with SQLSTATE 57014 and is
//! dropped, which stops DataFusion's tasks.
//!
//! Statements that read store tables or views also take one of the server's
//! [`Slots`] for their whole life, so that at most `max_active_statements`
//! of them plan, execute and share the memory pool at once; the others wait
//! in arrival order (the wait counts toward `statement_timeout`, and a
//! cancel stops it). Catalog queries, `SET`, `SHOW` and constant `SELECT`s
//! need no slot, so psql meta-commands and BI tools' startup queries are
//! answered while the slots are busy.
//!
//! Errors from DataFusion get their SQLSTATE here too ([`map_error`]).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use datafusion::error::DataFusionError;
use futures::StreamExt;
use pgwire::api::results::{CopyResponse, QueryResponse, Response};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::SecretKey;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

type CancelMap = HashMap<(i32, Vec<u8>), watch::Sender<u64>>;

/// Cancel signals of live connections, by (pid, secret key).
#[derive(Debug, Default)]
pub struct CancelRegistry {
    map: Mutex<CancelMap>,
}

impl CancelRegistry {
    /// Register a connection; the returned handle unregisters on drop.
    pub fn register(self: &Arc<Self>, pid: i32, key: &SecretKey) -> Arc<Registration> {
        let id = (pid, key.to_bytes().to_vec());
        let (tx, rx) = watch::channel(0u64);
        if let Ok(mut map) = self.map.lock() {
            map.insert(id.clone(), tx);
        }
        Arc::new(Registration {
            registry: self.clone(),
            id,
            rx,
        })
    }

    /// A CancelRequest: signal the connection's running statement, if any.
    pub fn cancel(&self, pid: i32, key: &SecretKey) {
        let id = (pid, key.to_bytes().to_vec());
        if let Ok(map) = self.map.lock()
            && let Some(tx) = map.get(&id)
        {
            tracing::info!(pid, "cancel request");
            tx.send_modify(|n| *n += 1);
        }
    }
}

/// One connection's entry in the [`CancelRegistry`].
#[derive(Debug)]
pub struct Registration {
    registry: Arc<CancelRegistry>,
    id: (i32, Vec<u8>),
    rx: watch::Receiver<u64>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.registry.map.lock() {
            map.remove(&self.id);
        }
    }
}

/// The server's execution slots (see the module documentation).
#[derive(Debug)]
pub struct Slots {
    semaphore: Arc<Semaphore>,
    /// Lower-case names of the tables and views a statement must name to
    /// need a slot.
    tables: HashSet<String>,
}

/// A held slot, shared by the statements of one connection.
pub type Slot = Arc<OwnedSemaphorePermit>;

impl Slots {
    /// `count` slots for statements naming any of `tables`.
    pub fn new(count: usize, tables: impl IntoIterator<Item = String>) -> Slots {
        Slots {
            semaphore: Arc::new(Semaphore::new(count.max(1))),
            tables: tables.into_iter().map(|t| t.to_lowercase()).collect(),
        }
    }

    /// Whether `sql` names a store table or view: as a whole word, in any
    /// case, quoted ("orders") or schema-qualified too, but not inside a
    /// string literal (psql's `\d orders` asks the catalog for
    /// `relname ~ '^(orders)$'` and needs no slot).
    pub fn needed_by(&self, sql: &str) -> bool {
        let mut in_literal = false;
        let code: String = sql
            .chars()
            .map(|c| {
                // '' inside a literal toggles twice: still inside
                if c == '\'' {
                    in_literal = !in_literal;
                    ' '
                } else if in_literal {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        code.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|word| !word.is_empty() && self.tables.contains(&word.to_lowercase()))
    }

    /// Slots free now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// The limits of one connection.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    registration: Option<Arc<Registration>>,
    slots: Option<Arc<Slots>>,
    /// The slot this connection holds, if a statement of it still runs or
    /// streams (a suspended portal, say): its next statements share it
    /// rather than wait for a second one, which could never come.
    held: Arc<Mutex<Weak<OwnedSemaphorePermit>>>,
}

impl Limits {
    /// Limits listening to a connection's cancel signal and sharing the
    /// server's `slots`.
    pub fn new(registration: Arc<Registration>, slots: Arc<Slots>) -> Limits {
        Limits {
            registration: Some(registration),
            slots: Some(slots),
            held: Arc::default(),
        }
    }

    /// The slot `sql` needs, waited for under `guard` (timeout, cancel);
    /// `None` when it needs none.
    pub async fn slot(&self, guard: &Guard, sql: &str) -> PgWireResult<Option<Slot>> {
        let Some(slots) = self.slots.as_ref().filter(|s| s.needed_by(sql)) else {
            return Ok(None);
        };
        if let Some(held) = self.held.lock().ok().and_then(|h| h.upgrade()) {
            return Ok(Some(held));
        }
        let permit = guard
            .run(async {
                slots.semaphore.clone().acquire_owned().await.map_err(|_| {
                    PgWireError::UserError(Box::new(ErrorInfo::new(
                        "FATAL".into(),
                        "57P01".into(),
                        "the server is shutting down".into(),
                    )))
                })
            })
            .await?;
        let slot = Arc::new(permit);
        if let Ok(mut held) = self.held.lock() {
            *held = Arc::downgrade(&slot);
        }
        Ok(Some(slot))
    }

    /// Start a statement: a guard with its deadline; cancels from now on count.
    pub fn start(&self, timeout: Option<Duration>) -> Guard {
        let cancel = self.registration.as_ref().map(|r| {
            let mut rx = r.rx.clone();
            rx.mark_unchanged();
            rx
        });
        Guard {
            deadline: timeout.map(|t| Instant::now() + t),
            cancel,
        }
    }
}

/// The deadline and cancel signal of one statement.
#[derive(Debug, Clone)]
pub struct Guard {
    deadline: Option<Instant>,
    cancel: Option<watch::Receiver<u64>>,
}

/// 57014 for a statement stopped by the timeout.
pub fn timeout_error() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "57014".into(),
        "canceling statement due to statement timeout".into(),
    )))
}

/// 57014 for a statement stopped by a CancelRequest.
pub fn cancel_error() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "57014".into(),
        "canceling statement due to user request".into(),
    )))
}

impl Guard {
    /// Resolves when the statement must stop, with the error to report.
    async fn stopped(mut self) -> PgWireError {
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let cancel = async {
            match self.cancel.as_mut() {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = deadline => timeout_error(),
            _ = cancel => cancel_error(),
        }
    }

    /// Run planning/execution under the guard.
    pub async fn run<T>(&self, work: impl Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
        tokio::select! {
            r = work => r.map_err(map_error),
            e = self.clone().stopped() => Err(e),
        }
    }

    /// Wrap a response so its rows (or COPY data) stream under the guard,
    /// holding `slot` until the stream ends or is dropped.
    pub fn wrap(&self, response: Response, slot: Option<Slot>) -> Response {
        match response {
            Response::Query(mut q) => {
                let schema = q.row_schema();
                let tag = q.command_tag().to_string();
                let rows = std::mem::replace(q.data_rows(), Box::pin(futures::stream::empty()));
                let mut out = QueryResponse::new(schema, self.until_stopped(rows, slot));
                out.set_command_tag(&tag);
                Response::Query(out)
            }
            // binary COPY data is never produced by crmdb (and re-wrapping
            // it would append a second trailer)
            Response::CopyOut(mut c) if c.format == 0 => {
                let (format, columns) = (c.format, c.columns);
                let data = std::mem::replace(c.data_stream(), Box::pin(futures::stream::empty()));
                Response::CopyOut(CopyResponse::new(
                    format,
                    columns,
                    self.until_stopped(data, slot),
                ))
            }
            other => other,
        }
    }

    /// `items` until the guard stops the statement, which ends the stream
    /// with its error and drops `items` (stopping DataFusion's tasks).
    fn until_stopped<T: Send + 'static>(
        &self,
        items: futures::stream::BoxStream<'static, PgWireResult<T>>,
        slot: Option<Slot>,
    ) -> impl futures::Stream<Item = PgWireResult<T>> + Send + 'static {
        let stop = Box::pin(self.clone().stopped());
        // The slot lives in the state: released with the last row, the
        // error, or the stream's drop.
        futures::stream::unfold(Some((items, stop, slot)), |state| async move {
            let (mut items, mut stop, slot) = state?;
            tokio::select! {
                item = items.next() => {
                    item.map(|r| (r.map_err(map_error), Some((items, stop, slot))))
                }
                e = &mut stop => Some((Err(e), None)),
            }
        })
    }
}

/// Give DataFusion errors their SQLSTATE (pgwire reports them all as XX000).
pub fn map_error(e: PgWireError) -> PgWireError {
    match e {
        PgWireError::ApiError(inner) => match inner.downcast::<DataFusionError>() {
            Ok(df) => {
                let code = crate::error::datafusion_sqlstate(&df);
                let message = match df.find_root() {
                    DataFusionError::ResourcesExhausted(m) => {
                        format!("out of memory for this query: {m}")
                    }
                    root => root.to_string(),
                };
                PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    code.into(),
                    message,
                )))
            }
            Err(other) => match other.downcast::<datafusion::sql::sqlparser::parser::ParserError>()
            {
                Ok(parse) => PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".into(),
                    "42601".into(),
                    parse.to_string(),
                ))),
                Err(other) => PgWireError::ApiError(other),
            },
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(slots: &Arc<Slots>) -> Limits {
        Limits {
            registration: None,
            slots: Some(slots.clone()),
            held: Arc::default(),
        }
    }

    #[test]
    fn only_statements_naming_store_tables_need_a_slot() {
        let slots = Slots::new(1, ["orders".to_string(), "customer_metrics".into()]);
        assert!(slots.needed_by("SELECT count(*) FROM orders"));
        assert!(slots.needed_by("select * from \"Orders\""));
        assert!(slots.needed_by("SELECT * FROM crm.public.customer_metrics"));
        assert!(slots.needed_by("COPY (SELECT * FROM orders) TO STDOUT"));
        assert!(!slots.needed_by("SELECT 1"));
        assert!(!slots.needed_by("SELECT relname FROM pg_catalog.pg_class"));
        assert!(!slots.needed_by("SELECT * FROM orders_archive"));
        assert!(!slots.needed_by("SHOW statement_timeout"));
        // psql's \d orders
        assert!(!slots.needed_by(
            "SELECT c.oid FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(orders)$'"
        ));
        assert!(!slots.needed_by("SELECT 'it''s orders'"));
        assert!(slots.needed_by("SELECT 'it''s' FROM orders"));
    }

    #[tokio::test]
    async fn statements_wait_for_a_slot_and_a_connection_shares_its_own() {
        let slots = Arc::new(Slots::new(1, ["orders".to_string()]));
        let (a, b) = (limits(&slots), limits(&slots));
        let sql = "SELECT * FROM orders";
        let guard = a.start(Some(Duration::from_millis(50)));
        let first = a.slot(&guard, sql).await.unwrap().unwrap();
        // the same connection (a suspended portal and a new statement)
        // shares its slot instead of waiting for itself
        let again = a.slot(&guard, sql).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(slots.available(), 0);
        // another connection waits, and its timeout ends the wait
        let guard_b = b.start(Some(Duration::from_millis(50)));
        let err = b.slot(&guard_b, sql).await.unwrap_err();
        assert!(err.to_string().contains("57014"), "{err}");
        // a statement that needs no slot does not wait
        assert!(b.slot(&guard_b, "SELECT 1").await.unwrap().is_none());
        drop((first, again));
        assert_eq!(slots.available(), 1);
        let guard_b = b.start(Some(Duration::from_millis(50)));
        assert!(b.slot(&guard_b, sql).await.unwrap().is_some());
    }
}
