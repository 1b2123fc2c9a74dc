//! COPY over the wire protocol, which datafusion-postgres does not speak:
//!
//! - `COPY (query) TO STDOUT` and `COPY table [(cols)] TO STDOUT` — psql's
//!   `\copy … TO STDOUT`, psycopg's `cursor.copy()`, pgjdbc's `CopyManager` —
//!   in PostgreSQL's text format (tab-separated, `\N` for NULL) or CSV
//!   (`WITH (FORMAT csv [, HEADER] [, DELIMITER 'c'])`). Any role may run it;
//!   it reads through the session, so a viewer gets masked columns exactly as
//!   with `SELECT`. Rows stream as DataFusion produces them, under the
//!   session's statement timeout and CancelRequest like any query.
//! - `COPY table [(cols)] FROM STDIN WITH (FORMAT csv [, HEADER] [, DELIMITER 'c'])`
//!   for admins (the statement gate refuses everyone else with 42501). The
//!   data is loaded by [`crate::ingest::ingest_bytes`]: the same validation as
//!   `crmdb ingest` (every bad value named by line, column and value), key
//!   handling (duplicates skipped, customers upserted) and one atomic Delta
//!   commit — a failed or aborted COPY leaves the table as it was.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::arrow_schema_to_pg_fields;
use datafusion_postgres::arrow_pg::encoder::encode_value;
use datafusion_postgres::hooks::HookClient;
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::Format;
use pgwire::api::results::{
    CopyCsvOptions, CopyEncoder, CopyResponse, CopyTextOptions, FieldInfo, Response, Tag,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};

use super::hooks::pg_error;
use crate::engine::Engine;
use crate::ingest::{Format as InputFormat, IngestOptions, ingest_bytes};
use crate::store::schema;

/// Most bytes one `COPY … FROM STDIN` may send; larger loads belong to
/// `crmdb ingest`, which streams from files.
pub const MAX_COPY_IN_BYTES: usize = 1 << 30;

/// The data format of a wire COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireFormat {
    /// PostgreSQL's text format: tab (or DELIMITER) separated, `\N` = NULL.
    Text { delimiter: char },
    /// CSV, optionally with a header row.
    Csv { delimiter: char, header: bool },
}

/// A parsed wire COPY.
#[derive(Debug, Clone, PartialEq)]
pub enum WireCopy {
    /// `COPY … TO STDOUT`: the query whose rows are sent.
    Out { query: String, format: WireFormat },
    /// `COPY table [(cols)] FROM STDIN`.
    In {
        table: String,
        columns: Vec<String>,
        format: WireFormat,
    },
}

/// `Some` for `COPY … TO STDOUT` / `COPY … FROM STDIN` (parsed, or why it is
/// refused); `None` for any other statement, COPY to or from a file included.
pub fn parse_wire_copy(statement: &Statement) -> Option<Result<WireCopy, String>> {
    let Statement::Copy {
        source,
        to,
        target,
        options,
        legacy_options,
        values,
    } = statement
    else {
        return None;
    };
    match (to, target) {
        (true, CopyTarget::Stdout) => {}
        (false, CopyTarget::Stdin) => {}
        _ => return None,
    }
    Some((|| {
        if !values.is_empty() {
            return Err("COPY FROM STDIN: inline data after the statement is not supported; send it as COPY data".to_string());
        }
        let format = wire_format(options, legacy_options)?;
        match (to, source) {
            (true, CopySource::Query(q)) => Ok(WireCopy::Out {
                query: q.to_string(),
                format,
            }),
            (
                true,
                CopySource::Table {
                    table_name,
                    columns,
                },
            ) => {
                let cols = if columns.is_empty() {
                    "*".to_string()
                } else {
                    columns
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                Ok(WireCopy::Out {
                    query: format!("SELECT {cols} FROM {table_name}"),
                    format,
                })
            }
            (false, CopySource::Query(_)) => {
                Err("COPY FROM STDIN needs a table, not a query".to_string())
            }
            (
                false,
                CopySource::Table {
                    table_name,
                    columns,
                },
            ) => {
                let table = table_name
                    .0
                    .last()
                    .map(|p| p.to_string().trim_matches('"').to_ascii_lowercase())
                    .unwrap_or_default();
                Ok(WireCopy::In {
                    table,
                    columns: columns.iter().map(|c| c.value.clone()).collect(),
                    format,
                })
            }
        }
    })())
}

fn wire_format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> Result<WireFormat, String> {
    let mut csv = false;
    let mut header = false;
    let mut delimiter: Option<char> = None;
    for o in options {
        match o {
            CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                "csv" => csv = true,
                "text" => csv = false,
                other => {
                    return Err(format!(
                        "COPY over the wire: format {other} is not supported (use text or csv)"
                    ));
                }
            },
            CopyOption::Header(h) => header = *h,
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            other => {
                return Err(format!(
                    "COPY over the wire: option {other} is not supported (supported: FORMAT, HEADER, DELIMITER)"
                ));
            }
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Csv(items) => {
                csv = true;
                for item in items {
                    match item {
                        CopyLegacyCsvOption::Header => header = true,
                        other => {
                            return Err(format!(
                                "COPY over the wire: option {other} is not supported (supported: FORMAT, HEADER, DELIMITER)"
                            ));
                        }
                    }
                }
            }
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            other => {
                return Err(format!(
                    "COPY over the wire: option {other} is not supported (supported: FORMAT, HEADER, DELIMITER)"
                ));
            }
        }
    }
    if header && !csv {
        return Err("COPY: HEADER needs FORMAT csv".to_string());
    }
    Ok(if csv {
        WireFormat::Csv {
            delimiter: delimiter.unwrap_or(','),
            header,
        }
    } else {
        WireFormat::Text {
            delimiter: delimiter.unwrap_or('\t'),
        }
    })
}

/// A `COPY … FROM STDIN` waiting for its data.
#[derive(Debug)]
struct Pending {
    table: String,
    options: IngestOptions,
    data: Vec<u8>,
    too_large: bool,
}

/// The COPY state of one connection, shared by its query hook (which starts a
/// copy) and its copy handler (which receives the data).
#[derive(Debug, Default)]
pub struct CopySlot {
    pending: Mutex<Option<Pending>>,
}

impl CopySlot {
    fn put(&self, p: Pending) {
        if let Ok(mut slot) = self.pending.lock() {
            *slot = Some(p);
        }
    }

    fn take(&self) -> Option<Pending> {
        self.pending.lock().ok().and_then(|mut s| s.take())
    }
}

/// Starts wire COPYs. Runs after the statement gate, so a `COPY FROM STDIN`
/// that reaches it comes from an admin.
pub struct WireCopyHook {
    slot: Arc<CopySlot>,
}

impl WireCopyHook {
    /// A hook that parks `COPY FROM STDIN` state in `slot`.
    pub fn new(slot: Arc<CopySlot>) -> WireCopyHook {
        WireCopyHook { slot }
    }

    async fn start(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Option<PgWireResult<Response>> {
        let copy = match parse_wire_copy(statement)? {
            Ok(c) => c,
            Err(e) => return Some(Err(pg_error("0A000", e))),
        };
        Some(match copy {
            WireCopy::Out { query, format } => copy_out(ctx, &query, format).await,
            WireCopy::In {
                table,
                columns,
                format,
            } => self.copy_in(table, columns, format),
        })
    }

    fn copy_in(
        &self,
        table: String,
        columns: Vec<String>,
        format: WireFormat,
    ) -> PgWireResult<Response> {
        let Some(def) = schema::table(&table) else {
            return Err(pg_error(
                "42P01",
                format!(
                    "COPY FROM STDIN: {table} is not a table that can be loaded (tables: {})",
                    schema::TABLES
                        .iter()
                        .map(|t| t.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        let WireFormat::Csv { delimiter, header } = format else {
            return Err(pg_error(
                "0A000",
                "COPY FROM STDIN reads CSV only: add WITH (FORMAT csv, HEADER) (or \\copy … WITH (FORMAT csv))",
            ));
        };
        let Ok(delimiter) = u8::try_from(delimiter) else {
            return Err(pg_error(
                "22023",
                format!("COPY: delimiter {delimiter:?} must be one ASCII character"),
            ));
        };
        let ncols = if columns.is_empty() {
            def.columns.len()
        } else {
            columns.len()
        };
        let options = IngestOptions {
            delimiter,
            header,
            // without a header the fields are the listed columns, or all in table order
            columns: (!header).then(|| {
                if columns.is_empty() {
                    def.columns.iter().map(|c| c.name.to_string()).collect()
                } else {
                    columns
                }
            }),
            format: Some(InputFormat::Csv),
            ..IngestOptions::default()
        };
        self.slot.put(Pending {
            table: def.name.to_string(),
            options,
            data: Vec::new(),
            too_large: false,
        });
        Ok(Response::CopyIn(CopyResponse::new(
            0,
            ncols,
            futures::stream::empty(),
        )))
    }
}

#[async_trait]
impl QueryHook for WireCopyHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        self.start(statement, ctx).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        // COPY cannot be prepared in PostgreSQL either; clients send it as a
        // simple query.
        parse_wire_copy(statement).map(|_| {
            Err(pg_error(
                "0A000",
                "COPY must be sent as a simple query (the extended protocol cannot run it)",
            ))
        })
    }

    async fn handle_extended_query(
        &self,
        _statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        None
    }
}

/// Run `query` and stream its rows as COPY data.
async fn copy_out(ctx: &SessionContext, query: &str, format: WireFormat) -> PgWireResult<Response> {
    let df = ctx
        .sql(query)
        .await
        .map_err(|e| pg_error("42601", e.strip_backtrace()))?;
    let arrow_schema = Arc::new(df.schema().as_arrow().clone());
    let fields = Arc::new(arrow_schema_to_pg_fields(
        &arrow_schema,
        &Format::UnifiedText,
        None,
    )?);
    let ncols = fields.len();
    let batches = df
        .execute_stream()
        .await
        .map_err(|e| pg_error("XX000", e.strip_backtrace()))?;
    let mut encoder = match &format {
        WireFormat::Text { delimiter } => CopyEncoder::new_text(
            fields.clone(),
            CopyTextOptions {
                delimiter: delimiter.to_string().into(),
                ..CopyTextOptions::default()
            },
        ),
        WireFormat::Csv { delimiter, .. } => CopyEncoder::new_csv(
            fields.clone(),
            CopyCsvOptions {
                delimiter: delimiter.to_string().into(),
                ..CopyCsvOptions::default()
            },
        ),
    };
    let header = match &format {
        WireFormat::Csv {
            header: true,
            delimiter,
        } => Some(csv_header(&fields, *delimiter)),
        _ => None,
    };
    let schema = arrow_schema.clone();
    let rows = batches
        .map(move |batch| {
            let batch = batch.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            encode_batch(&mut encoder, &batch, &schema, &fields)
        })
        .flat_map(|r: PgWireResult<Vec<CopyData>>| {
            futures::stream::iter(match r {
                Ok(rows) => rows.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        });
    let stream = futures::stream::iter(header.map(Ok)).chain(rows);
    Ok(Response::CopyOut(CopyResponse::new(0, ncols, stream)))
}

fn encode_batch(
    encoder: &mut CopyEncoder,
    batch: &RecordBatch,
    schema: &datafusion::arrow::datatypes::Schema,
    fields: &[FieldInfo],
) -> PgWireResult<Vec<CopyData>> {
    let mut out = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        for (col, (arrow_field, pg_field)) in schema.fields().iter().zip(fields).enumerate() {
            encode_value(encoder, batch.column(col), row, arrow_field, pg_field)?;
        }
        out.push(encoder.take_copy());
    }
    Ok(out)
}

/// The CSV header line: column names, quoted where CSV needs it.
fn csv_header(fields: &[FieldInfo], delimiter: char) -> CopyData {
    let names: Vec<String> = fields
        .iter()
        .map(|f| {
            let name = f.name();
            if name.contains(delimiter) || name.contains('"') || name.contains('\n') {
                format!("\"{}\"", name.replace('"', "\"\""))
            } else {
                name.to_string()
            }
        })
        .collect();
    let mut line = names.join(&delimiter.to_string());
    line.push('\n');
    CopyData::new(line.into_bytes().into())
}

/// Receives `COPY … FROM STDIN` data and loads it when the client is done.
pub struct WireCopyHandler {
    slot: Arc<CopySlot>,
    engine: Engine,
}

impl WireCopyHandler {
    /// The handler of one connection.
    pub fn new(slot: Arc<CopySlot>, engine: Engine) -> WireCopyHandler {
        WireCopyHandler { slot, engine }
    }
}

#[async_trait]
impl CopyHandler for WireCopyHandler {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Ok(mut slot) = self.slot.pending.lock()
            && let Some(p) = slot.as_mut()
        {
            if p.data.len() + copy_data.data.len() > MAX_COPY_IN_BYTES {
                // keep reading until CopyDone, then refuse the whole load
                p.too_large = true;
                p.data = Vec::new();
            } else if !p.too_large {
                p.data.extend_from_slice(&copy_data.data);
            }
        }
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(p) = self.slot.take() else {
            return Err(pg_error(
                "08P01",
                "COPY data arrived without a COPY FROM STDIN",
            ));
        };
        if p.too_large {
            return Err(pg_error(
                "54000",
                format!(
                    "COPY FROM STDIN: more than {} MiB of data; load large files with `crmdb ingest`; nothing was loaded",
                    MAX_COPY_IN_BYTES >> 20
                ),
            ));
        }
        // psql ends text-format data with a `\.` line; CSV readers would see it as a row
        let data = strip_end_marker(&p.data);
        let report = ingest_bytes(self.engine.store(), &p.table, data, &p.options)
            .await
            .map_err(|e| {
                pg_error(
                    e.sqlstate(),
                    format!("COPY {}: {e}; nothing was loaded", p.table),
                )
            })?;
        tracing::info!(%report, "COPY FROM STDIN");
        let tag = Tag::new("COPY").with_rows((report.inserted + report.updated) as usize);
        client
            .send(PgWireBackendMessage::CommandComplete(tag.into()))
            .await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let table = self.slot.take().map(|p| p.table).unwrap_or_default();
        pg_error(
            "57014",
            format!(
                "COPY {table} from stdin failed: {}; nothing was loaded",
                fail.message
            ),
        )
    }
}

fn strip_end_marker(data: &[u8]) -> &[u8] {
    for marker in [&b"\\.\r\n"[..], b"\\.\n", b"\\."] {
        if let Some(rest) = data.strip_suffix(marker)
            && (rest.is_empty() || rest.ends_with(b"\n"))
        {
            return rest;
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn parse(sql: &str) -> Option<Result<WireCopy, String>> {
        let stmt = PostgresCompatibilityParser::new()
            .parse(sql)
            .map_err(|e| e.to_string())
            .and_then(|mut v| v.pop().ok_or_else(|| "no statement".to_string()));
        match stmt {
            Ok(s) => parse_wire_copy(&s),
            Err(e) => Some(Err(e)),
        }
    }

    #[test]
    fn wire_copies_are_recognised_with_their_format() {
        assert_eq!(
            parse("COPY (SELECT 1 AS a) TO STDOUT"),
            Some(Ok(WireCopy::Out {
                query: "SELECT 1 AS a".into(),
                format: WireFormat::Text { delimiter: '\t' }
            }))
        );
        assert_eq!(
            parse("COPY orders (order_id, amount) TO STDOUT WITH (FORMAT csv, HEADER)"),
            Some(Ok(WireCopy::Out {
                query: "SELECT order_id, amount FROM orders".into(),
                format: WireFormat::Csv {
                    delimiter: ',',
                    header: true
                }
            }))
        );
        assert_eq!(
            parse("COPY customers FROM STDIN WITH (FORMAT csv, HEADER true, DELIMITER ';')"),
            Some(Ok(WireCopy::In {
                table: "customers".into(),
                columns: vec![],
                format: WireFormat::Csv {
                    delimiter: ';',
                    header: true
                }
            }))
        );
        // to or from a file is not a wire copy
        assert_eq!(parse("COPY (SELECT 1) TO '/tmp/x.csv'"), None);
        assert_eq!(parse("SELECT 1"), None);
        assert!(matches!(
            parse("COPY (SELECT 1) TO STDOUT WITH (FORMAT binary)"),
            Some(Err(e)) if e.contains("format binary")
        ));
        assert!(matches!(
            parse("COPY (SELECT 1) TO STDOUT WITH (HEADER)"),
            Some(Err(e)) if e.contains("HEADER needs FORMAT csv")
        ));
    }

    #[test]
    fn the_end_of_data_marker_is_removed_only_on_its_own_line() {
        assert_eq!(strip_end_marker(b"a,b\n1,2\n\\.\n"), b"a,b\n1,2\n");
        assert_eq!(strip_end_marker(b"\\.\n"), b"");
        assert_eq!(strip_end_marker(b"a,b\n1,x\\.\n"), b"a,b\n1,x\\.\n");
        assert_eq!(strip_end_marker(b"a,b\n"), b"a,b\n");
    }
}
