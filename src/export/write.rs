//! Atomic file writes: a query result streams into a hidden temporary file
//! in the destination directory (`.<file>.tmp-<pid>-<n>`), which is synced
//! and renamed over the destination only when every row is written. A failing
//! query, a dropped future or a killed process never leaves a partial or
//! empty file where the last good one was; a temporary file left by a killed
//! process is removed by the next write into the same directory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::job::ExportFormat;
use crate::error::{Error, Result};

/// How to write one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// File format.
    pub format: ExportFormat,
    /// CSV: write a header row.
    pub csv_header: bool,
    /// CSV: field delimiter.
    pub csv_delimiter: u8,
}

impl WriteOptions {
    /// Defaults for a format: CSV with a header and commas.
    pub fn new(format: ExportFormat) -> WriteOptions {
        WriteOptions {
            format,
            csv_header: true,
            csv_delimiter: b',',
        }
    }
}

/// What a write produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Rows written.
    pub rows: u64,
    /// Size of the file.
    pub bytes: u64,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Removes the temporary file unless the write completed.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(path = %self.path.display(), "cannot remove temporary export file: {e}");
        }
    }
}

/// The prefix of this process's temporary files for `file_name`.
fn temp_name(file_name: &str) -> String {
    format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Stream `stream` into `dest` atomically: every row or nothing.
pub async fn write_atomic(
    dest: &Path,
    options: WriteOptions,
    mut stream: SendableRecordBatchStream,
) -> Result<Written> {
    let file_name = dest
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::Usage(format!("{}: not a file name", dest.display())))?
        .to_string();
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    if dest.is_dir() {
        return Err(Error::Usage(format!(
            "{}: is a directory; the destination must be a file",
            dest.display()
        )));
    }
    sweep_stale_temps(&dir);
    let tmp = dir.join(temp_name(&file_name));
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    let mut guard = TempGuard {
        path: tmp.clone(),
        armed: true,
    };
    let schema = stream.schema();
    let (tx, rx) = mpsc::channel::<RecordBatch>(2);
    let writer_tmp = tmp.clone();
    let writer =
        tokio::task::spawn_blocking(move || write_file(file, &writer_tmp, options, schema, rx));
    let mut rows: u64 = 0;
    let mut failed = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(batch) => {
                rows += batch.num_rows() as u64;
                if tx.send(batch).await.is_err() {
                    break; // the writer stopped; its error is below
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let bytes = writer
        .await
        .map_err(|e| Error::Usage(format!("export writer task failed: {e}")))??;
    if let Some(e) = failed {
        return Err(e.into());
    }
    std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))?;
    guard.armed = false;
    // Make the rename itself durable.
    if let Ok(d) = File::open(&dir)
        && let Err(e) = d.sync_all()
    {
        warn!(dir = %dir.display(), "cannot sync the export directory: {e}");
    }
    debug!(path = %dest.display(), rows, bytes, "file written");
    Ok(Written { rows, bytes })
}

/// The blocking half: encode batches into the file, flush and fsync it.
/// Returns the file size.
fn write_file(
    file: File,
    path: &Path,
    options: WriteOptions,
    schema: SchemaRef,
    mut rx: mpsc::Receiver<RecordBatch>,
) -> Result<u64> {
    let io = |e: std::io::Error| Error::io(path, e);
    match options.format {
        ExportFormat::Parquet => {
            // ArrowWriter buffers internally; `into_inner` writes the footer.
            // zstd: an export is written once and shipped to other tools,
            // so size and the most widely read codec matter, not decoding speed
            let properties = crate::ingest::writer_properties()
                .into_builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .build();
            let mut w = ArrowWriter::try_new(&file, schema, Some(properties))?;
            while let Some(batch) = rx.blocking_recv() {
                w.write(&batch)?;
            }
            w.into_inner()?;
        }
        ExportFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(options.csv_header)
                .with_delimiter(options.csv_delimiter)
                .build(BufWriter::new(&file));
            let mut any = false;
            while let Some(batch) = rx.blocking_recv() {
                w.write(&batch)?;
                any = true;
            }
            if !any {
                // the header of an empty result
                w.write(&RecordBatch::new_empty(schema))?;
            }
            let mut buf = w.into_inner();
            buf.flush().map_err(io)?;
        }
        ExportFormat::Jsonl => {
            use datafusion::arrow::json::writer::{LineDelimited, WriterBuilder};
            let mut w = WriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, LineDelimited>(BufWriter::new(&file));
            while let Some(batch) = rx.blocking_recv() {
                w.write(&batch)?;
            }
            w.finish()?;
            let mut buf = w.into_inner();
            buf.flush().map_err(io)?;
        }
    }
    file.sync_all().map_err(io)?;
    Ok(file.metadata().map_err(io)?.len())
}

/// Remove temporary files of processes that no longer run (Linux: no
/// `/proc/<pid>`). Best effort: failures are logged, never fatal.
pub fn sweep_stale_temps(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = temp_owner(name) else {
            continue;
        };
        if pid == me || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_file(&path) {
            Ok(()) => debug!(path = %path.display(), "removed a temporary file of a dead process"),
            Err(e) => warn!(path = %path.display(), "cannot remove a stale temporary file: {e}"),
        }
    }
}

/// The pid in a temporary file name `.<file>.tmp-<pid>-<n>`.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, n) = tail.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::parquet::basic::CompressionCodec;
    use datafusion::parquet::file::reader::{FileReader as _, SerializedFileReader};
    use datafusion::prelude::SessionContext;

    async fn stream(sql: &str) -> SendableRecordBatchStream {
        let ctx = SessionContext::new();
        ctx.sql(sql).await.unwrap().execute_stream().await.unwrap()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn writes_each_format() {
        let dir = tempfile::tempdir().unwrap();
        let sql = "SELECT * FROM (VALUES (1, 'a'), (2, NULL)) AS t(id, s)";
        let csv = dir.path().join("out/x.csv");
        let w = write_atomic(
            &csv,
            WriteOptions::new(ExportFormat::Csv),
            stream(sql).await,
        )
        .await
        .unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        assert_eq!(text, "id,s\n1,a\n2,\n");
        assert_eq!(
            w,
            Written {
                rows: 2,
                bytes: text.len() as u64
            }
        );
        let jsonl = dir.path().join("x.jsonl");
        write_atomic(
            &jsonl,
            WriteOptions::new(ExportFormat::Jsonl),
            stream(sql).await,
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&jsonl).unwrap(),
            "{\"id\":1,\"s\":\"a\"}\n{\"id\":2,\"s\":null}\n"
        );
        let pq = dir.path().join("x.parquet");
        let w = write_atomic(
            &pq,
            WriteOptions::new(ExportFormat::Parquet),
            stream(sql).await,
        )
        .await
        .unwrap();
        assert_eq!(w.rows, 2);
        let ctx = SessionContext::new();
        ctx.register_parquet("p", pq.to_str().unwrap(), Default::default())
            .await
            .unwrap();
        let n = ctx
            .sql("SELECT count(*) AS n, sum(id) AS s FROM p")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&n)
            .unwrap()
            .to_string();
        assert!(text.contains("| 2 | 3 |"), "{text}");
        // exports are zstd, whatever the tables use
        let reader = SerializedFileReader::new(File::open(&pq).unwrap()).unwrap();
        let footer = reader.metadata();
        let codecs: Vec<_> = footer.row_groups()[0]
            .columns()
            .iter()
            .map(|c| c.compression_codec())
            .collect();
        assert_eq!(codecs, [CompressionCodec::ZSTD; 2]);
        assert_eq!(listing(dir.path()), ["out", "x.jsonl", "x.parquet"]);
    }

    #[tokio::test]
    async fn an_empty_result_is_a_header_only_csv() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("e.csv");
        let w = write_atomic(
            &csv,
            WriteOptions::new(ExportFormat::Csv),
            stream("SELECT 1 AS a, 'x' AS b WHERE false").await,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), "a,b\n");
        assert_eq!(w, Written { rows: 0, bytes: 4 });
    }

    #[tokio::test]
    async fn a_failing_query_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("x.csv");
        std::fs::write(&csv, "old\n").unwrap();
        // fails at execution, after the first rows have streamed
        let ctx = SessionContext::new();
        ctx.sql("SET datafusion.execution.batch_size = 10")
            .await
            .unwrap();
        let s = ctx
            .sql(
                "SELECT value, CASE WHEN value > 500 THEN CAST(CAST(value AS VARCHAR) || 'x' AS INT) ELSE 0 END AS bad
                 FROM generate_series(1, 1000)",
            )
            .await
            .unwrap()
            .execute_stream()
            .await
            .unwrap();
        let err = write_atomic(&csv, WriteOptions::new(ExportFormat::Csv), s)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("Cannot cast string '501x'"), "{err}");
        assert_eq!(std::fs::read_to_string(&csv).unwrap(), "old\n");
        assert_eq!(listing(dir.path()), ["x.csv"]);
    }

    #[test]
    fn stale_temps_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        // pid 4194304 is above Linux's pid_max limit, so never a live process
        let dead = ".x.csv.tmp-4194304-0";
        let mine = format!(".x.csv.tmp-{}-7", std::process::id());
        for name in [
            dead,
            mine.as_str(),
            "x.csv",
            ".x.csv.tmp-notapid-1",
            "y.tmp-1-2",
        ] {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        sweep_stale_temps(dir.path());
        let mut expected = vec![
            mine.clone(),
            ".x.csv.tmp-notapid-1".to_string(),
            "x.csv".to_string(),
            "y.tmp-1-2".to_string(),
        ];
        expected.sort();
        assert_eq!(listing(dir.path()), expected);
        assert_eq!(temp_owner(".a.b.csv.tmp-12-3"), Some(12));
        assert_eq!(temp_owner("a.csv.tmp-12-3"), None);
    }
}
