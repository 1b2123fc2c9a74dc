//! The demo store: the bundled sample data (`sample_data/`, about 2,000
//! customers) loaded into a temporary data directory, so `crmdb sql --demo`
//! and `crmdb serve --demo` show real answers with no set-up.

use std::path::PathBuf;
use std::sync::Arc;

use tempfile::TempDir;

use crate::config::Config;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ingest::{IngestOptions, ingest_files};
use crate::store::Store;
use crate::store::schema::TABLES;

/// The last day covered by the sample data; the demo's as-of date.
pub const SAMPLE_END: &str = "2026-06-30";

/// Where the sample CSV files are: `$CRMDB_SAMPLE_DATA`, else the
/// `sample_data/` folder of the source tree this binary was built from.
pub fn sample_data_dir() -> PathBuf {
    std::env::var_os("CRMDB_SAMPLE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/sample_data")))
}

/// Load the sample data into a new temporary store and open an engine on it.
/// The store lives as long as the returned [`TempDir`].
pub async fn open_demo() -> Result<(TempDir, Engine)> {
    let dir = tempfile::Builder::new()
        .prefix("crmdb-demo-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let store = Store::init(&dir.path().join("data")).await?;
    let samples = sample_data_dir();
    let hidden = indicatif::ProgressBar::hidden();
    for def in TABLES {
        let file = samples.join(format!("{}.csv", def.name));
        if !file.is_file() {
            return Err(Error::Store {
                path: file,
                reason:
                    "sample data file not found (set CRMDB_SAMPLE_DATA to the sample_data folder)"
                        .into(),
            });
        }
        ingest_files(
            &store,
            def.name,
            &[file],
            &IngestOptions::default(),
            &hidden,
        )
        .await?;
    }
    let mut config = Config::default();
    config.crm.as_of = SAMPLE_END.parse().ok();
    let engine = Engine::open(store, Arc::new(config)).await?;
    Ok((dir, engine))
}
