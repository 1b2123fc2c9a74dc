//! `COPY (query) TO 'file'` and `COPY table [(cols)] TO 'file'` on the
//! server, written with the exports' atomic writer: the file appears
//! complete or not at all. The statement gate runs before this hook, so only
//! admins get here. Other COPY forms (TO STDOUT, FROM) pass through.
//!
//! The format comes from `WITH (FORMAT csv|parquet|jsonl)` (also the legacy
//! `CSV`, `PARQUET`, `JSON` words) or from the file's extension. CSV has a
//! header row unless `HEADER false`; `DELIMITER 'c'` sets the separator.
//! Relative paths are relative to the server's working directory, as before.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{ParamValues, ToDFSchema};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{
    CopyLegacyCsvOption, CopyLegacyOption, CopyOption, CopySource, CopyTarget, Statement,
};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{PgWireError, PgWireResult};
use tracing::info;

use super::job::ExportFormat;
use super::write::{WriteOptions, write_atomic};
use crate::server::hooks::pg_error;

/// A parsed `COPY … TO 'file'`.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyTo {
    /// The query whose rows are written.
    pub query: String,
    /// The destination file.
    pub path: PathBuf,
    /// Format and CSV settings.
    pub options: WriteOptions,
}

/// `Some` for a COPY to a file (with its options or why they are refused);
/// `None` for every other statement.
pub fn parse_copy_to(statement: &Statement) -> Option<Result<CopyTo, String>> {
    let Statement::Copy {
        source,
        to: true,
        target: CopyTarget::File { filename },
        options,
        legacy_options,
        ..
    } = statement
    else {
        return None;
    };
    Some(copy_to(source, filename, options, legacy_options))
}

fn copy_to(
    source: &CopySource,
    filename: &str,
    options: &[CopyOption],
    legacy: &[CopyLegacyOption],
) -> Result<CopyTo, String> {
    let query = match source {
        CopySource::Query(q) => q.to_string(),
        CopySource::Table {
            table_name,
            columns,
        } => {
            let cols = if columns.is_empty() {
                "*".to_string()
            } else {
                columns
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("SELECT {cols} FROM {table_name}")
        }
    };
    let mut format: Option<ExportFormat> = None;
    let mut header: Option<bool> = None;
    let mut delimiter: Option<char> = None;
    let named = |f: &str| -> Result<ExportFormat, String> {
        match f.to_ascii_lowercase().as_str() {
            "csv" => Ok(ExportFormat::Csv),
            "parquet" => Ok(ExportFormat::Parquet),
            "json" | "jsonl" | "ndjson" => Ok(ExportFormat::Jsonl),
            other => Err(format!(
                "COPY TO a file: format {other} is not supported (use csv, parquet or jsonl)"
            )),
        }
    };
    for o in options {
        match o {
            CopyOption::Format(f) => format = Some(named(&f.value)?),
            CopyOption::Header(h) => header = Some(*h),
            CopyOption::Delimiter(c) => delimiter = Some(*c),
            other => {
                return Err(format!(
                    "COPY TO a file: option {other} is not supported (supported: FORMAT, HEADER, DELIMITER)"
                ));
            }
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Csv(csv) => {
                format = Some(ExportFormat::Csv);
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => header = Some(true),
                        other => {
                            return Err(format!(
                                "COPY TO a file: option {other} is not supported (supported: FORMAT, HEADER, DELIMITER)"
                            ));
                        }
                    }
                }
            }
            CopyLegacyOption::Header => header = Some(true),
            CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
            CopyLegacyOption::Parquet => format = Some(ExportFormat::Parquet),
            CopyLegacyOption::Json(None) => format = Some(ExportFormat::Jsonl),
            other => {
                return Err(format!(
                    "COPY TO a file: option {other} is not supported (supported: FORMAT, HEADER, DELIMITER)"
                ));
            }
        }
    }
    let format = match format.or_else(|| ExportFormat::from_extension(filename)) {
        Some(f) => f,
        None => {
            return Err(format!(
                "COPY TO '{filename}': cannot tell the format; end the file name in .parquet, .csv or .jsonl, or add WITH (FORMAT csv)"
            ));
        }
    };
    let mut options = WriteOptions::new(format);
    if let Some(h) = header {
        options.csv_header = h;
    }
    if let Some(d) = delimiter {
        if !d.is_ascii() {
            return Err(format!(
                "COPY TO a file: DELIMITER must be one ASCII character, got {d:?}"
            ));
        }
        options.csv_delimiter = d as u8;
    }
    if format != ExportFormat::Csv && (header.is_some() || delimiter.is_some()) {
        return Err(format!(
            "COPY TO a file: HEADER and DELIMITER apply to csv, not {}",
            format.as_str()
        ));
    }
    Ok(CopyTo {
        query,
        path: PathBuf::from(filename),
        options,
    })
}

/// Run a parsed COPY in `ctx`: the number of rows written.
pub async fn run_copy_to(ctx: &SessionContext, copy: &CopyTo) -> crate::error::Result<u64> {
    let stream = ctx.sql(&copy.query).await?.execute_stream().await?;
    let written = write_atomic(&copy.path, copy.options, stream).await?;
    info!(path = %copy.path.display(), rows = written.rows, bytes = written.bytes, "COPY TO written");
    Ok(written.rows)
}

/// The query hook that takes `COPY … TO 'file'` from DataFusion.
#[derive(Debug, Default, Clone, Copy)]
pub struct CopyToHook;

impl CopyToHook {
    async fn respond(
        statement: &Statement,
        ctx: &SessionContext,
    ) -> Option<PgWireResult<Response>> {
        let copy = match parse_copy_to(statement)? {
            Ok(c) => c,
            Err(e) => return Some(Err(pg_error("0A000", e))),
        };
        Some(match run_copy_to(ctx, &copy).await {
            Ok(rows) => Ok(Response::Execution(
                Tag::new("COPY").with_rows(rows as usize),
            )),
            Err(e) => Err(pg_error(e.sqlstate(), e.to_string())),
        })
    }
}

#[async_trait]
impl QueryHook for CopyToHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        CopyToHook::respond(statement, ctx).await
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match parse_copy_to(statement)? {
            Err(e) => Some(Err(pg_error("0A000", e))),
            Ok(_) => Some(
                Arc::new(Schema::empty())
                    .to_dfschema()
                    .map(|schema| {
                        LogicalPlan::EmptyRelation(EmptyRelation {
                            produce_one_row: false,
                            schema: Arc::new(schema),
                        })
                    })
                    .map_err(|e| PgWireError::ApiError(Box::new(e))),
            ),
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        CopyToHook::respond(statement, ctx).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn parse(sql: &str) -> Option<Result<CopyTo, String>> {
        let stmt = PostgresCompatibilityParser::new()
            .parse(sql)
            .unwrap()
            .remove(0);
        parse_copy_to(&stmt)
    }

    #[test]
    fn copy_forms() {
        let c = parse("COPY (SELECT 1 AS x) TO '/tmp/a.parquet'")
            .unwrap()
            .unwrap();
        assert_eq!(c.query, "SELECT 1 AS x");
        assert_eq!(c.options, WriteOptions::new(ExportFormat::Parquet));
        let c = parse("COPY customers (customer_id, city) TO '/tmp/a.out' WITH (FORMAT csv, HEADER false, DELIMITER ';')")
            .unwrap()
            .unwrap();
        assert_eq!(c.query, "SELECT customer_id, city FROM customers");
        assert_eq!(
            c.options,
            WriteOptions {
                format: ExportFormat::Csv,
                csv_header: false,
                csv_delimiter: b';'
            }
        );
        let c = parse("COPY orders TO '/tmp/o.txt' CSV HEADER")
            .unwrap()
            .unwrap();
        assert_eq!(c.query, "SELECT * FROM orders");
        assert_eq!(c.options.format, ExportFormat::Csv);
        assert_eq!(
            parse("COPY orders TO '/tmp/o.txt'").unwrap().unwrap_err(),
            "COPY TO '/tmp/o.txt': cannot tell the format; end the file name in .parquet, .csv or .jsonl, or add WITH (FORMAT csv)"
        );
        assert_eq!(
            parse("COPY orders TO '/tmp/o.csv' WITH (FORMAT binary)")
                .unwrap()
                .unwrap_err(),
            "COPY TO a file: format binary is not supported (use csv, parquet or jsonl)"
        );
        assert!(parse("COPY orders TO STDOUT").is_none());
        assert!(parse("COPY orders FROM STDIN").is_none());
        assert!(parse("SELECT 1").is_none());
    }
}
