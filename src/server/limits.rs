//! Statement timeout and CancelRequest over the whole life of a statement:
//! planning, execution and the streaming of its rows. datafusion-postgres
//! applies `statement_timeout` to planning only and pgwire's cancel signal is
//! dropped once the first response is returned, while DataFusion does the work
//! lazily as rows are pulled. So every row stream is wrapped: when the deadline
//! passes or a cancel arrives, the stream ends with SQLSTATE 57014 and is
//! dropped, which stops DataFusion's tasks.
//!
//! Errors from DataFusion get their SQLSTATE here too ([`map_error`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use datafusion::error::DataFusionError;
use futures::StreamExt;
use pgwire::api::results::{CopyResponse, QueryResponse, Response};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::SecretKey;
use tokio::sync::watch;
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

/// The limits of one connection.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    registration: Option<Arc<Registration>>,
}

impl Limits {
    /// Limits listening to a connection's cancel signal.
    pub fn new(registration: Arc<Registration>) -> Limits {
        Limits {
            registration: Some(registration),
        }
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

    /// Wrap a response so its rows (or COPY data) stream under the guard.
    pub fn wrap(&self, response: Response) -> Response {
        match response {
            Response::Query(mut q) => {
                let schema = q.row_schema();
                let tag = q.command_tag().to_string();
                let rows = std::mem::replace(q.data_rows(), Box::pin(futures::stream::empty()));
                let mut out = QueryResponse::new(schema, self.until_stopped(rows));
                out.set_command_tag(&tag);
                Response::Query(out)
            }
            // binary COPY data is never produced by crmdb (and re-wrapping
            // it would append a second trailer)
            Response::CopyOut(mut c) if c.format == 0 => {
                let (format, columns) = (c.format, c.columns);
                let data = std::mem::replace(c.data_stream(), Box::pin(futures::stream::empty()));
                Response::CopyOut(CopyResponse::new(format, columns, self.until_stopped(data)))
            }
            other => other,
        }
    }

    /// `items` until the guard stops the statement, which ends the stream
    /// with its error and drops `items` (stopping DataFusion's tasks).
    fn until_stopped<T: Send + 'static>(
        &self,
        items: futures::stream::BoxStream<'static, PgWireResult<T>>,
    ) -> impl futures::Stream<Item = PgWireResult<T>> + Send + 'static {
        let stop = Box::pin(self.clone().stopped());
        futures::stream::unfold(Some((items, stop)), |state| async move {
            let (mut items, mut stop) = state?;
            tokio::select! {
                item = items.next() => item.map(|r| (r.map_err(map_error), Some((items, stop)))),
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
