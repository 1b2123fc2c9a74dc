//! `crmdb sql`: run SQL from the command line, a file, or an interactive prompt.

use std::io::Write;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::DFParser;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;

use crate::error::{Error, Result};
use crate::output::{OutputFormat, write_batches};

/// Split `sql` into statements and run them in order, printing each result.
/// Stops at the first failing statement.
pub async fn run_script(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    out: &mut dyn Write,
) -> Result<()> {
    for batches in execute_all(ctx, sql).await? {
        write_batches(out, &batches, format)?;
    }
    Ok(())
}

/// Like [`run_script`], but runs and prints one statement at a time and
/// writes `-- statement N: R rows in S s` to `timing` after each: the time
/// to plan and execute it into memory, without printing (the benchmark
/// harness in `benches/` reads these lines).
pub async fn run_script_timed(
    ctx: &SessionContext,
    sql: &str,
    format: OutputFormat,
    out: &mut dyn Write,
    timing: &mut dyn Write,
) -> Result<()> {
    crate::server::rewrite::check_complexity(sql).map_err(Error::Usage)?;
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})?;
    for (i, statement) in statements.into_iter().enumerate() {
        let start = Instant::now();
        let state = ctx.state();
        let plan = state.statement_to_plan(statement).await?;
        let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
        let secs = start.elapsed().as_secs_f64();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        write_batches(out, &batches, format)?;
        out.flush().map_err(|e| Error::io("<stdout>", e))?;
        writeln!(timing, "-- statement {}: {rows} rows in {secs:.6} s", i + 1)
            .map_err(|e| Error::io("<stderr>", e))?;
    }
    Ok(())
}

/// Parse and execute every statement of `sql`, returning each one's result.
pub async fn execute_all(ctx: &SessionContext, sql: &str) -> Result<Vec<Vec<RecordBatch>>> {
    crate::server::rewrite::check_complexity(sql).map_err(Error::Usage)?;
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})?;
    let mut results = Vec::with_capacity(statements.len());
    for statement in statements {
        let state = ctx.state();
        let plan = state.statement_to_plan(statement).await?;
        let df = ctx.execute_logical_plan(plan).await?;
        results.push(df.collect().await?);
    }
    Ok(results)
}

const HELP: &str = "\
Enter SQL terminated by ';' (it may span lines). Meta-commands:
  \\dt          list tables and views
  \\d NAME      describe a table or view
  \\timing      toggle query timing
  \\?           this help
  \\q           quit";

/// The interactive prompt, with history (~/.crmdb_history) and multi-line input.
pub async fn interactive(ctx: &SessionContext, format: OutputFormat) -> Result<()> {
    use rustyline::error::ReadlineError;
    let mut editor = rustyline::DefaultEditor::new()
        .map_err(|e| Error::Usage(format!("cannot start the prompt: {e}")))?;
    let history =
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".crmdb_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "crmdb {} — type \\? for help, \\q to quit",
        env!("CARGO_PKG_VERSION")
    );
    let mut buffer = String::new();
    let mut timing = true;
    loop {
        let prompt = if buffer.is_empty() {
            "crm=> "
        } else {
            "crm-> "
        };
        let line = match tokio::task::block_in_place(|| editor.readline(prompt)) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Error::Usage(format!("prompt error: {e}"))),
        };
        let trimmed = line.trim();
        if buffer.is_empty() && trimmed.starts_with('\\') {
            let _ = editor.add_history_entry(trimmed);
            let mut parts = trimmed.split_whitespace();
            let sql = match (parts.next(), parts.next()) {
                (Some("\\q"), _) => break,
                (Some("\\?"), _) => {
                    println!("{HELP}");
                    continue;
                }
                (Some("\\timing"), _) => {
                    timing = !timing;
                    println!("Timing is {}.", if timing { "on" } else { "off" });
                    continue;
                }
                (Some("\\dt"), _) => "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name".to_string(),
                (Some("\\d"), Some(name)) => format!(
                    "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{}' ORDER BY ordinal_position",
                    name.replace('\'', "''")
                ),
                _ => {
                    eprintln!("unknown command {trimmed}; \\? lists the commands");
                    continue;
                }
            };
            run_and_print(ctx, &sql, format, timing).await;
            continue;
        }
        buffer.push_str(&line);
        buffer.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(sql.trim());
        run_and_print(ctx, &sql, format, timing).await;
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}

async fn run_and_print(ctx: &SessionContext, sql: &str, format: OutputFormat, timing: bool) {
    let start = Instant::now();
    match execute_all(ctx, sql).await {
        Ok(results) => {
            let mut stdout = std::io::stdout().lock();
            for batches in &results {
                if let Err(e) = write_batches(&mut stdout, batches, format) {
                    eprintln!("error: {e}");
                }
                if timing {
                    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                    let _ = writeln!(
                        stdout,
                        "({rows} row{}, {:.1} ms)",
                        if rows == 1 { "" } else { "s" },
                        start.elapsed().as_secs_f64() * 1e3
                    );
                }
            }
        }
        Err(e) => eprintln!("error: {e}"),
    }
}
