//! Rendering query results for the terminal and for files: aligned table,
//! CSV, or JSON.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;

use crate::error::{Error, Result};

/// Output formats of `crmdb sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// An aligned text table.
    #[default]
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Write batches to `out` in `format`.
///
/// A failed write to `out` comes back as the `std::io::Error` it was (the
/// CSV and JSON writers would flatten it into a message), so that callers
/// can tell a closed pipe (`crmdb sql … | head`) from a real failure.
pub fn write_batches(
    out: &mut dyn Write,
    batches: &[RecordBatch],
    format: OutputFormat,
) -> Result<()> {
    let mut watched = Watched {
        inner: out,
        error: None,
    };
    let result = render(&mut watched, batches, format);
    match (result, watched.error.take()) {
        (Err(_), Some(io)) => Err(Error::io("<stdout>", io)),
        (result, _) => result,
    }
}

/// A writer that keeps the kind and message of its first failed write.
struct Watched<'a> {
    inner: &'a mut dyn Write,
    error: Option<std::io::Error>,
}

impl Watched<'_> {
    fn keep<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r
            && self.error.is_none()
        {
            self.error = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
        r
    }
}

impl Write for Watched<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.inner.write(buf);
        self.keep(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.inner.flush();
        self.keep(r)
    }
}

fn render(out: &mut dyn Write, batches: &[RecordBatch], format: OutputFormat) -> Result<()> {
    let io = |e: std::io::Error| Error::io("<stdout>", e);
    match format {
        OutputFormat::Table => {
            if batches.iter().all(|b| b.num_columns() == 0) {
                return Ok(());
            }
            writeln!(out, "{}", pretty_format_batches(batches)?).map_err(io)?;
        }
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                return Ok(());
            }
            for b in batches {
                w.write(b)?;
            }
        }
        OutputFormat::Json => {
            let mut w = datafusion::arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            drop(w);
            writeln!(out).map_err(io)?;
        }
    }
    Ok(())
}
