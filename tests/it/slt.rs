//! Runs every `tests/sql/*.slt` file through the real [`crmdb::Engine`]
//! (a fresh empty store per file) with the sqllogictest conventions.
//! `CRMDB_SLT_COMPLETE=1` rewrites the expected output after a deliberate change.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType};

struct EngineDb {
    ctx: SessionContext,
}

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

fn cells(batches: &[RecordBatch]) -> Result<Vec<Vec<String>>, SltError> {
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for b in batches {
        let formatters = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SltError(e.to_string()))?;
        for row in 0..b.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .zip(b.columns())
                    .map(|(f, c)| {
                        if c.is_null(row) {
                            "NULL".to_string()
                        } else {
                            let v = f.value(row).to_string();
                            if v.is_empty() {
                                "(empty)".to_string()
                            } else {
                                v
                            }
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

#[async_trait]
impl AsyncDB for EngineDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let results = crmdb::shell::execute_all(&self.ctx, sql)
            .await
            .map_err(|e| SltError(e.to_string()))?;
        let batches = results.into_iter().last().unwrap_or_default();
        let is_query = {
            let head = sql.trim_start().to_ascii_lowercase();
            head.starts_with("select")
                || head.starts_with("with")
                || head.starts_with("values")
                || head.starts_with("show")
        };
        if !is_query {
            return Ok(DBOutput::StatementComplete(0));
        }
        let width = batches.first().map_or(0, |b| b.num_columns());
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows: cells(&batches)?,
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "crmdb"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sql"));
    crate::cli::files_with_extension(&dir, "slt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slt_files_pass() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files found");
    let mut failures = Vec::new();
    for file in &files {
        let dir = tempfile::tempdir().unwrap();
        let store = crmdb::Store::init(&dir.path().join("data")).await.unwrap();
        let engine = crmdb::Engine::open(store, Arc::new(crmdb::config::Config::default()))
            .await
            .unwrap();
        let ctx = engine.session();
        let mut runner = sqllogictest::Runner::new(move || {
            let ctx = ctx.clone();
            async move { Ok(EngineDb { ctx }) }
        });
        if std::env::var_os("CRMDB_SLT_COMPLETE").is_some() {
            let col_sep = " ";
            runner
                .update_test_file(
                    file,
                    col_sep,
                    sqllogictest::default_validator,
                    sqllogictest::default_normalizer,
                    sqllogictest::default_column_validator,
                )
                .await
                .unwrap();
            continue;
        }
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} .slt file(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
