//! Data retention and safekeeping of a store: compaction of small files
//! ([`compact`], Delta OPTIMIZE), deletion of files no table version needs
//! any more ([`vacuum`], Delta VACUUM), and consistent copies of the whole
//! data directory ([`backup`], [`restore`]).
//!
//! Every operation that writes to a table takes the table's load lock (the
//! one ingest takes), so it never races with a load. Readers are safe by
//! construction: compaction only adds a version, and vacuum deletes a file
//! only once it has been out of every version for longer than the retention
//! period (168 hours by default, as in Delta Lake), far beyond any statement
//! timeout, so a query still reading an older version finds its files.
//!
//! A backup is a store directory of its own (openable with `--data`) plus
//! the manifest [`BACKUP_MANIFEST`], listing the version each table was
//! copied at. Each table is copied at one committed version, under its load
//! lock: the log up to that version, every file of that version and the
//! files of older versions that are still on disk.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::operations::vacuum::VacuumMode;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, info_span, warn};

use super::schema::TABLES;
use super::{MARKER, Store, TableLock, has_commit};
use crate::error::{Error, Result};

/// File naming a directory as a crmdb backup (TOML: format, tables and versions).
pub const BACKUP_MANIFEST: &str = "CRMDB-BACKUP";
/// Backup format written by this version.
pub const BACKUP_FORMAT: u32 = 1;
/// Vacuum's default retention, as Delta Lake's `deletedFileRetentionDuration`.
pub const DEFAULT_RETAIN_HOURS: u64 = 168;

const DELTA_LOG: &str = "_delta_log";
const LAST_CHECKPOINT: &str = "_last_checkpoint";

impl Store {
    /// Every Delta table of the store (a directory with a commit): the
    /// canonical ones in load order, then
    /// others (`customer_snapshots`, `export_runs`, …) by name.
    pub fn delta_tables(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = TABLES
            .iter()
            .filter(|d| has_commit(&self.table_path(d.name)))
            .map(|d| d.name.to_string())
            .collect();
        let mut others = Vec::new();
        let root = self.path();
        for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
            let entry = entry.map_err(|e| Error::io(root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && has_commit(&entry.path()) && !names.contains(&name) {
                others.push(name);
            }
        }
        others.sort();
        names.extend(others);
        Ok(names)
    }

    /// The tables named (all of them when `names` is empty), each checked to
    /// exist before anything is done.
    pub fn resolve_tables(&self, names: &[String]) -> Result<Vec<String>> {
        let all = self.delta_tables()?;
        if names.is_empty() {
            return Ok(all);
        }
        let mut out = Vec::new();
        for name in names {
            if !all.contains(name) {
                return Err(Error::Store {
                    path: self.path().to_path_buf(),
                    reason: format!(
                        "no table '{name}' in this store (tables: {})",
                        all.join(", ")
                    ),
                });
            }
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        Ok(out)
    }

    /// [`Store::lock_table`] without blocking the async runtime.
    pub async fn lock_table_async(&self, name: &str) -> Result<TableLock> {
        let store = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || store.lock_table(&name))
            .await
            .map_err(|e| Error::Usage(format!("waiting for a table lock: {e}")))?
    }
}

/// What [`compact`] did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactReport {
    /// The table.
    pub table: String,
    /// Small files replaced.
    pub files_removed: u64,
    /// Files written in their place.
    pub files_added: u64,
    /// The table version after compaction.
    pub version: u64,
}

impl fmt::Display for CompactReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.files_removed == 0 {
            write!(
                f,
                "{}: nothing to compact (table version {})",
                self.table, self.version
            )
        } else {
            write!(
                f,
                "{}: {} files removed, {} added (table version {})",
                self.table, self.files_removed, self.files_added, self.version
            )
        }
    }
}

/// Compact the small files of a table into larger ones (Delta OPTIMIZE,
/// bin-packing). The rows do not change; the old files stay on disk, out of
/// the new version, until [`vacuum`] deletes them.
pub async fn compact(store: &Store, table: &str) -> Result<CompactReport> {
    let _lock = store.lock_table_async(table).await?;
    let delta = store.table(table).await?;
    let before = delta.version().unwrap_or(0);
    let (delta, metrics) = delta
        .optimize()
        .with_writer_properties(crate::ingest::writer_properties())
        .into_future()
        .instrument(info_span!("compact", table))
        .await?;
    let report = CompactReport {
        table: table.to_string(),
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
        version: delta.version().unwrap_or(before),
    };
    info!(
        table,
        files_removed = report.files_removed,
        files_added = report.files_added,
        version = report.version,
        "compacted"
    );
    Ok(report)
}

/// How to [`vacuum`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumOptions {
    /// Keep files removed from the table less than this many hours ago.
    pub retain_hours: u64,
    /// List what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Also delete files no version refers to at all (left by killed loads)
    /// whose modification time is older than the retention.
    pub full: bool,
}

impl Default for VacuumOptions {
    fn default() -> Self {
        VacuumOptions {
            retain_hours: DEFAULT_RETAIN_HOURS,
            dry_run: false,
            full: false,
        }
    }
}

/// What [`vacuum`] did to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacuumReport {
    /// The table.
    pub table: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Retention applied, in hours.
    pub retain_hours: u64,
    /// Files deleted (or, in a dry run, that would be), relative to the table directory.
    pub files: Vec<String>,
}

impl fmt::Display for VacuumReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would be deleted"
        } else {
            "deleted"
        };
        write!(
            f,
            "{}: {} files {verb} (retention {} h)",
            self.table,
            self.files.len(),
            self.retain_hours
        )?;
        if self.dry_run {
            for file in &self.files {
                write!(f, "\n  {}/{file}", self.table)?;
            }
        }
        Ok(())
    }
}

/// Delete the files of a table that no version newer than the retention
/// period needs (Delta VACUUM). Time travel to versions older than the
/// retention is lost; with a retention shorter than the longest running
/// query, that query can fail on a missing file.
pub async fn vacuum(store: &Store, table: &str, opts: &VacuumOptions) -> Result<VacuumReport> {
    let hours = i64::try_from(opts.retain_hours).map_err(|_| {
        Error::Usage(format!(
            "--retain-hours {} is out of range",
            opts.retain_hours
        ))
    })?;
    let retention = chrono::Duration::try_hours(hours).ok_or_else(|| {
        Error::Usage(format!(
            "--retain-hours {} is out of range",
            opts.retain_hours
        ))
    })?;
    let _lock = store.lock_table_async(table).await?;
    let delta = store.table(table).await?;
    let (_, metrics) = delta
        .vacuum()
        .with_retention_period(retention)
        // the caller chose the retention; the table property's minimum
        // (also 168 h) would refuse anything shorter
        .with_enforce_retention_duration(false)
        .with_dry_run(opts.dry_run)
        .with_mode(if opts.full {
            VacuumMode::Full
        } else {
            VacuumMode::Lite
        })
        .into_future()
        .instrument(info_span!(
            "vacuum",
            table,
            retain_hours = opts.retain_hours
        ))
        .await?;
    let mut files = metrics.files_deleted;
    files.sort();
    info!(
        table,
        files = files.len(),
        dry_run = opts.dry_run,
        "vacuumed"
    );
    Ok(VacuumReport {
        table: table.to_string(),
        dry_run: opts.dry_run,
        retain_hours: opts.retain_hours,
        files,
    })
}

/// The manifest of a backup ([`BACKUP_MANIFEST`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Backup format.
    pub format: u32,
    /// crmdb version that wrote it.
    pub crmdb_version: String,
    /// When the backup was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The data directory it was taken from.
    pub source: PathBuf,
    /// Every table with the version it was copied at.
    pub tables: BTreeMap<String, u64>,
}

/// One table of a backup or restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// The version copied.
    pub version: u64,
    /// Rows in that version.
    pub rows: u64,
    /// Files copied (log and data).
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
}

impl fmt::Display for TableCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<22} {:>12} rows  version {:>5}  {:>6} files {:>14} bytes",
            self.table, self.rows, self.version, self.files, self.bytes
        )
    }
}

/// Copy the whole store into `dest`, which must not exist or be empty.
///
/// The copy is written to a temporary directory beside `dest` and renamed
/// into place once complete, so `dest` is either absent or a whole backup.
/// Each table is copied at one committed version under its load lock: a load
/// running meanwhile is in the backup entirely or not at all.
pub async fn backup(store: &Store, dest: &Path) -> Result<Vec<TableCopy>> {
    backup_inner(store, dest)
        .instrument(info_span!("backup", dest = %dest.display()))
        .await
}

async fn backup_inner(store: &Store, dest: &Path) -> Result<Vec<TableCopy>> {
    if dest.exists() && !is_empty_dir(dest)? {
        return Err(Error::Store {
            path: dest.to_path_buf(),
            reason: "backup directory exists and is not empty; choose a new or empty directory"
                .into(),
        });
    }
    let (parent, dest) = resolve(dest)?;
    if dest.starts_with(store.path()) {
        return Err(Error::Store {
            path: dest,
            reason: format!(
                "backup directory is inside the data directory {}; choose one outside it",
                store.path().display()
            ),
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".crmdb-backup-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;

    // marker, crmdb.toml and any other plain file at the top of the store
    let root = store.path();
    for entry in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let name = entry.file_name();
        let file_type = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if file_type.is_file() && !name.to_string_lossy().starts_with('.') {
            copy_file(&entry.path(), &tmp.path().join(&name))?;
        }
    }

    let mut copies = Vec::new();
    for name in store.delta_tables()? {
        let _lock = store.lock_table_async(&name).await?;
        let copy = copy_table(store, &name, &tmp.path().join(&name)).await?;
        info!(table = %name, version = copy.version, files = copy.files, "table copied");
        copies.push(copy);
    }

    let manifest = Manifest {
        format: BACKUP_FORMAT,
        crmdb_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        source: root.to_path_buf(),
        tables: copies
            .iter()
            .map(|c| (c.table.clone(), c.version))
            .collect(),
    };
    let text = toml::to_string(&manifest).map_err(|e| Error::Store {
        path: dest.clone(),
        reason: format!("cannot write the backup manifest: {e}"),
    })?;
    let manifest_path = tmp.path().join(BACKUP_MANIFEST);
    write_synced(
        &manifest_path,
        format!("# crmdb backup: restore with `crmdb --data DIR restore BACKUP_DIR`\n{text}")
            .as_bytes(),
    )?;
    // the copy must be a store that opens with the versions just recorded
    validate_backup(tmp.path()).await?;

    if dest.exists() {
        std::fs::remove_dir(&dest).map_err(|e| Error::io(&dest, e))?;
    }
    let tmp_path = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp_path, &dest) {
        let _ = std::fs::remove_dir_all(&tmp_path);
        return Err(Error::io(&dest, e));
    }
    sync_dir(&parent)?;
    Ok(copies)
}

/// Check that `dir` is a complete crmdb backup: manifest present and
/// readable, a store that opens with canonical schemas, every table at the
/// version recorded and every file of that version present.
pub async fn validate_backup(dir: &Path) -> Result<Manifest> {
    if !dir.is_dir() {
        return Err(Error::Store {
            path: dir.to_path_buf(),
            reason: "no such backup directory".into(),
        });
    }
    let manifest_path = dir.join(BACKUP_MANIFEST);
    if !manifest_path.is_file() {
        return Err(Error::Store {
            path: dir.to_path_buf(),
            reason: format!(
                "not a crmdb backup (no {BACKUP_MANIFEST} file); backups are made with `crmdb backup DIR`"
            ),
        });
    }
    let text = std::fs::read_to_string(&manifest_path).map_err(|e| Error::io(&manifest_path, e))?;
    let manifest: Manifest = toml::from_str(&text).map_err(|e| Error::Store {
        path: manifest_path.clone(),
        reason: format!("unreadable backup manifest: {e}"),
    })?;
    if manifest.format > BACKUP_FORMAT {
        return Err(Error::Store {
            path: manifest_path,
            reason: format!(
                "backup format {} is newer than this crmdb supports ({BACKUP_FORMAT}); upgrade crmdb",
                manifest.format
            ),
        });
    }
    let store = Store::open(dir).await?;
    for def in TABLES {
        if !manifest.tables.contains_key(def.name) {
            return Err(Error::Store {
                path: manifest_path,
                reason: format!("the backup has no table {}", def.name),
            });
        }
    }
    for (name, &version) in &manifest.tables {
        let path = store.table_path(name);
        if !has_commit(&path) {
            return Err(Error::Store {
                path,
                reason: format!("table {name} listed in {BACKUP_MANIFEST} is missing"),
            });
        }
        let table = store.table(name).await?;
        if table.version() != Some(version) {
            return Err(Error::Store {
                path,
                reason: format!(
                    "table {name} is at version {:?} but the backup recorded version {version}",
                    table.version()
                ),
            });
        }
        for file in table.snapshot()?.log_data() {
            let file_path = path.join(file.path().as_ref());
            if !file_path.is_file() {
                return Err(Error::Store {
                    path: file_path,
                    reason: format!("file of table {name} version {version} is missing"),
                });
            }
        }
    }
    Ok(manifest)
}

/// Replace the store at `target` with the backup in `backup_dir`.
///
/// `target` must not exist or be empty, unless `force` is given, in which
/// case it must be a crmdb store (its marker present): anything else is
/// refused even with `force`. The backup is validated first, copied beside
/// `target`, validated again and swapped in by renames; the old store is
/// deleted last. Tables of an existing store are locked during the swap.
pub async fn restore(backup_dir: &Path, target: &Path, force: bool) -> Result<Vec<TableCopy>> {
    restore_inner(backup_dir, target, force)
        .instrument(info_span!("restore", backup = %backup_dir.display()))
        .await
}

async fn restore_inner(backup_dir: &Path, target: &Path, force: bool) -> Result<Vec<TableCopy>> {
    let manifest = validate_backup(backup_dir).await?;
    let backup_dir = backup_dir
        .canonicalize()
        .map_err(|e| Error::io(backup_dir, e))?;
    let replacing = target.exists() && !is_empty_dir(target)?;
    let (parent, target) = resolve(target)?;
    if replacing {
        if !force {
            return Err(Error::Store {
                path: target,
                reason: "data directory is not empty; pass --force to replace the store in it (its current contents are lost)".into(),
            });
        }
        if !target.join(MARKER).is_file() {
            return Err(Error::Store {
                path: target,
                reason: format!(
                    "not a crmdb data directory (no {MARKER} file); refusing to replace it even with --force"
                ),
            });
        }
    }
    if target.starts_with(&backup_dir) || backup_dir.starts_with(&target) {
        return Err(Error::Store {
            path: target,
            reason: format!(
                "data directory and backup {} overlap; restore somewhere else",
                backup_dir.display()
            ),
        });
    }
    let tmp = tempfile::Builder::new()
        .prefix(".crmdb-restore-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    copy_tree(&backup_dir, tmp.path(), &|rel| {
        rel == Path::new(BACKUP_MANIFEST) || rel.starts_with(".locks")
    })?;
    let restored = Store::open(tmp.path()).await?;
    let mut copies = Vec::new();
    for name in restored.delta_tables()? {
        let Some(&version) = manifest.tables.get(&name) else {
            continue; // not part of the backup (validated above)
        };
        let table = restored.table(&name).await?;
        let (files, bytes) = tree_size(&restored.table_path(&name))?;
        copies.push(TableCopy {
            table: name,
            version,
            rows: rows_of(&table)?,
            files,
            bytes,
        });
    }

    // lock every table of the store being replaced so no load is half-way
    let mut locks = Vec::new();
    if replacing {
        let old = Store {
            root: Arc::new(target.clone()),
        };
        for name in old.delta_tables()? {
            locks.push(old.lock_table_async(&name).await?);
        }
    }
    let holder = tempfile::Builder::new()
        .prefix(".crmdb-replaced-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;
    let old_store = holder.path().join("store");
    if replacing {
        std::fs::rename(&target, &old_store).map_err(|e| Error::io(&target, e))?;
    } else if target.exists() {
        std::fs::remove_dir(&target).map_err(|e| Error::io(&target, e))?;
    }
    let tmp_path = tmp.keep();
    if let Err(e) = std::fs::rename(&tmp_path, &target) {
        let _ = std::fs::remove_dir_all(&tmp_path);
        if replacing && std::fs::rename(&old_store, &target).is_err() {
            // never delete the only copy of the old store
            let kept = holder.keep();
            return Err(Error::Store {
                path: target,
                reason: format!(
                    "restore failed ({e}); the previous store was moved to {} and could not be put back",
                    kept.join("store").display()
                ),
            });
        }
        return Err(Error::io(&target, e));
    }
    sync_dir(&parent)?;
    drop(locks);
    if let Err(e) = holder.close() {
        warn!(error = %e, "could not delete the replaced store");
    }
    Ok(copies)
}

/// Rows in the loaded version of a table (from the log's file statistics).
fn rows_of(table: &DeltaTable) -> Result<u64> {
    Ok(table
        .snapshot()?
        .log_data()
        .iter()
        .filter_map(|f| f.num_records())
        .map(|n| n as u64)
        .sum())
}

/// Copy one table at its latest version into `dest` (the caller holds its lock).
async fn copy_table(store: &Store, name: &str, dest: &Path) -> Result<TableCopy> {
    let table = store.table(name).await?;
    let version = table.version().unwrap_or(0);
    let src = store.table_path(name);
    let mut files = 0u64;
    let mut bytes = 0u64;

    // the log up to `version`
    let log = src.join(DELTA_LOG);
    let dest_log = dest.join(DELTA_LOG);
    std::fs::create_dir_all(&dest_log).map_err(|e| Error::io(&dest_log, e))?;
    for entry in std::fs::read_dir(&log).map_err(|e| Error::io(&log, e))? {
        let entry = entry.map_err(|e| Error::io(&log, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let keep = match log_file_version(&file_name) {
            Some(v) => v <= version,
            // a hint only; kept when it does not point past `version`
            None => {
                file_name == LAST_CHECKPOINT
                    && last_checkpoint_version(&entry.path()) <= Some(version)
            }
        };
        if keep && entry.file_type().is_ok_and(|t| t.is_file()) {
            bytes += copy_file(&entry.path(), &dest_log.join(&file_name))?;
            files += 1;
        }
    }

    // the files of `version`, and of older versions while they are on disk
    let snapshot = table.snapshot()?;
    let mut data: HashSet<String> = snapshot
        .log_data()
        .iter()
        .map(|f| f.path().into_owned())
        .collect();
    let active = data.len();
    let log_store = table.log_store();
    let tombstones: Vec<String> = snapshot
        .all_tombstones(log_store.as_ref())
        .map_ok(|t| t.path().into_owned())
        .try_collect()
        .await?;
    let mut missing = Vec::new();
    for path in tombstones {
        if src.join(&path).is_file() {
            data.insert(path);
        } else {
            missing.push(path);
        }
    }
    let mut data: Vec<String> = data.into_iter().collect();
    data.sort();
    for rel in &data {
        let from = src.join(rel);
        if !from.is_file() {
            return Err(Error::Store {
                path: from,
                reason: format!("file of table {name} version {version} is missing"),
            });
        }
        bytes += copy_file(&from, &dest.join(rel))?;
        files += 1;
    }
    info!(
        table = name,
        active,
        removed_kept = data.len() - active,
        removed_gone = missing.len(),
        "table files"
    );
    Ok(TableCopy {
        table: name.to_string(),
        version,
        rows: rows_of(&table)?,
        files,
        bytes,
    })
}

/// The version of a log file name (`00000000000000000012.json`,
/// `….checkpoint.parquet`, `….crc`), if it is one.
fn log_file_version(file_name: &str) -> Option<u64> {
    let digits: String = file_name.chars().take_while(char::is_ascii_digit).collect();
    if digits.len() != 20 || file_name.ends_with(".tmp") {
        return None;
    }
    digits.parse().ok()
}

fn last_checkpoint_version(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("version")?.as_u64()
}

/// Copy a file (creating parent directories) and make it durable; returns its size.
fn copy_file(from: &Path, to: &Path) -> Result<u64> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let n = std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(to, e))?;
    Ok(n)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Copy a directory tree, skipping the relative paths `skip` selects.
fn copy_tree(from: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
    fn walk(root: &Path, dir: &Path, to: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let path = entry.path();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            if skip(rel) {
                continue;
            }
            let file_type = entry.file_type().map_err(|e| Error::io(&path, e))?;
            if file_type.is_dir() {
                let target = to.join(rel);
                std::fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
                walk(root, &path, to, skip)?;
            } else if file_type.is_file() {
                copy_file(&path, &to.join(rel))?;
            }
        }
        Ok(())
    }
    walk(from, from, to, skip)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

fn is_empty_dir(path: &Path) -> Result<bool> {
    if !path.is_dir() {
        return Ok(false);
    }
    Ok(std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .next()
        .is_none())
}

/// The canonical parent directory of `path` (created if missing) and the
/// canonical form of `path` itself, which need not exist.
fn resolve(path: &Path) -> Result<(PathBuf, PathBuf)> {
    let full = if path.exists() {
        path.canonicalize().map_err(|e| Error::io(path, e))?
    } else {
        std::path::absolute(path).map_err(|e| Error::io(path, e))?
    };
    let (Some(parent), Some(name)) = (full.parent(), full.file_name()) else {
        return Err(Error::Store {
            path: path.to_path_buf(),
            reason: "needs a parent directory and a name".into(),
        });
    };
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let parent = parent.canonicalize().map_err(|e| Error::io(parent, e))?;
    let full = parent.join(name);
    Ok((parent, full))
}

/// Files and bytes under a directory.
fn tree_size(dir: &Path) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let meta = entry.metadata().map_err(|e| Error::io(entry.path(), e))?;
        if meta.is_dir() {
            let (f, b) = tree_size(&entry.path())?;
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_file_versions_are_read_from_the_name() {
        assert_eq!(log_file_version("00000000000000000012.json"), Some(12));
        assert_eq!(
            log_file_version("00000000000000000010.checkpoint.parquet"),
            Some(10)
        );
        assert_eq!(log_file_version("00000000000000000003.crc"), Some(3));
        assert_eq!(log_file_version("_last_checkpoint"), None);
        assert_eq!(log_file_version("_commit_abc.json.tmp"), None);
        assert_eq!(log_file_version("00000000000000000004.json.tmp"), None);
    }
}
