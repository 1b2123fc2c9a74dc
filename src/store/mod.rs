//! The data directory: one Delta Lake table per canonical table, plus the
//! config file and per-table load locks.
//!
//! ```text
//! <data>/CRMDB              marker with the store format version
//! <data>/crmdb.toml         optional configuration
//! <data>/<table>/           a Delta table (_delta_log/ + Parquet files)
//! <data>/.locks/<table>     advisory lock held while a load commits
//! ```
//! [`maintenance`] compacts, vacuums, backs up and restores a store.
//! Front ends never touch Parquet files directly: they go through [`Store`]
//! and the engine.

pub mod maintenance;
pub mod scan;
pub mod schema;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema};
use deltalake::DeltaTable;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::protocol::SaveMode;
use tracing::info;
use url::Url;

use crate::error::{Error, Result};
use schema::{TABLES, TableDef};

/// Name of the marker file that makes a directory a crmdb store.
pub const MARKER: &str = "CRMDB";
/// Store format written by this version.
pub const FORMAT_VERSION: u32 = 1;

/// An opened data directory whose tables have been checked.
#[derive(Debug, Clone)]
pub struct Store {
    root: Arc<PathBuf>,
}

impl Store {
    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Create a store at `root` (creating the directory), or check an existing
    /// one. Creates every canonical table that is missing; idempotent.
    pub async fn init(root: &Path) -> Result<Store> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        let marker = root.join(MARKER);
        if !marker.exists() {
            let non_empty = std::fs::read_dir(&root)
                .map_err(|e| Error::io(&root, e))?
                .any(|e| e.is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.')));
            if non_empty {
                return Err(Error::Store {
                    path: root,
                    reason: "directory is not empty and is not a crmdb store; choose an empty or new directory".into(),
                });
            }
            std::fs::write(&marker, format!("crmdb store format {FORMAT_VERSION}\n"))
                .map_err(|e| Error::io(&marker, e))?;
            let config = root.join(crate::config::Config::FILE_NAME);
            std::fs::write(&config, crate::config::DEFAULT_CONFIG_TOML)
                .map_err(|e| Error::io(&config, e))?;
        }
        let store = Store {
            root: Arc::new(root),
        };
        for def in TABLES {
            store.create_table_if_missing(def).await?;
        }
        store.check_all().await?;
        Ok(store)
    }

    /// Open an existing store, checking the schema of every table.
    pub async fn open(root: &Path) -> Result<Store> {
        let marker = root.join(MARKER);
        if !marker.is_file() {
            let reason = if root.exists() {
                format!(
                    "not a crmdb data directory (no {MARKER} file); run `crmdb init` to create one"
                )
            } else {
                "no such data directory; run `crmdb init` to create it (or pass --data DIR)".into()
            };
            return Err(Error::Store {
                path: root.to_path_buf(),
                reason,
            });
        }
        let text = std::fs::read_to_string(&marker).map_err(|e| Error::io(&marker, e))?;
        let version = text
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| Error::Store {
                path: marker.clone(),
                reason: format!("unreadable marker file: {text:?}"),
            })?;
        if version > FORMAT_VERSION {
            return Err(Error::Store {
                path: root.to_path_buf(),
                reason: format!(
                    "store format {version} is newer than this crmdb supports ({FORMAT_VERSION}); upgrade crmdb"
                ),
            });
        }
        let root = root.canonicalize().map_err(|e| Error::io(root, e))?;
        let store = Store {
            root: Arc::new(root),
        };
        store.check_all().await?;
        Ok(store)
    }

    /// Directory of a table.
    pub fn table_path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `file://` URL of a table.
    pub fn table_url(&self, name: &str) -> Result<Url> {
        let path = self.table_path(name);
        Url::from_directory_path(&path).map_err(|()| Error::Store {
            path,
            reason: "cannot be expressed as a file URL".into(),
        })
    }

    /// Load the latest version of a canonical table.
    pub async fn table(&self, name: &str) -> Result<DeltaTable> {
        let url = self.table_url(name)?;
        Ok(deltalake::open_table(url).await?)
    }

    /// Take the load lock of a table (blocks until other loaders finish).
    /// Held for the lifetime of the returned guard; released on drop or when
    /// the process dies.
    pub fn lock_table(&self, name: &str) -> Result<TableLock> {
        let dir = self.root.join(".locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(name);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.lock().map_err(|e| Error::io(&path, e))?;
        Ok(TableLock { _file: file })
    }

    async fn create_table_if_missing(&self, def: &TableDef) -> Result<()> {
        let path = self.table_path(def.name);
        if has_commit(&path) {
            return Ok(());
        }
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        let kernel: StructType = def.arrow_schema().as_ref().try_into_kernel()?;
        let table = DeltaTable::try_from_url(self.table_url(def.name)?).await?;
        table
            .create()
            .with_table_name(def.name)
            .with_comment(def.doc)
            .with_columns(kernel.fields().cloned())
            .with_save_mode(SaveMode::ErrorIfExists)
            .await?;
        info!(table = def.name, "created table");
        Ok(())
    }

    async fn check_all(&self) -> Result<()> {
        for def in TABLES {
            self.check_table(def).await?;
        }
        Ok(())
    }

    /// Compare a stored table's schema with the canonical one.
    pub async fn check_table(&self, def: &TableDef) -> Result<()> {
        let path = self.table_path(def.name);
        if !has_commit(&path) {
            return Err(Error::Store {
                path,
                reason: format!(
                    "table {} is missing; run `crmdb init` to create it",
                    def.name
                ),
            });
        }
        let table = self.table(def.name).await?;
        let kernel = table.snapshot()?.schema();
        let stored: Schema = kernel.as_ref().try_into_arrow()?;
        let problems = schema_problems(def, &stored);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::SchemaMismatch {
                table: def.name.into(),
                path,
                problems,
            })
        }
    }
}

/// Whether a table directory holds a Delta table: a commit (or checkpoint)
/// in its `_delta_log`. A process killed while creating a table can leave
/// `_delta_log/` holding only a staged commit that was never put in place
/// (`00000000000000000000.json#1`); that table was never created, and is
/// created again rather than failing every open with "No files in log
/// segment".
pub fn has_commit(table_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(table_dir.join("_delta_log")) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let version = name.split('.').next().unwrap_or_default();
        version.len() == 20
            && version.bytes().all(|b| b.is_ascii_digit())
            && (name.ends_with(".json") || name.ends_with(".parquet"))
    })
}

/// A held table load lock.
#[derive(Debug)]
pub struct TableLock {
    _file: File,
}

/// Every difference between a stored schema and the canonical definition.
pub fn schema_problems(def: &TableDef, stored: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    for col in def.columns {
        match stored.field_with_name(col.name) {
            Err(_) => problems.push(format!(
                "column {} ({}) is missing",
                col.name,
                col.ty.sql_name()
            )),
            Ok(field) => {
                if !same_type(field.data_type(), &col.ty.arrow_type()) {
                    problems.push(format!(
                        "column {} has type {} but must be {} ({})",
                        col.name,
                        field.data_type(),
                        col.ty.arrow_type(),
                        col.ty.sql_name()
                    ));
                }
                if field.is_nullable() != col.nullable {
                    problems.push(format!(
                        "column {} is {} but must be {}",
                        col.name,
                        if field.is_nullable() {
                            "nullable"
                        } else {
                            "NOT NULL"
                        },
                        if col.nullable { "nullable" } else { "NOT NULL" }
                    ));
                }
            }
        }
    }
    for field in stored.fields() {
        if def.column(field.name()).is_none() && !field.is_nullable() {
            problems.push(format!(
                "unexpected NOT NULL column {} ({})",
                field.name(),
                field.data_type()
            ));
        }
    }
    problems
}

fn same_type(stored: &DataType, canonical: &DataType) -> bool {
    match (stored, canonical) {
        // Delta keeps timestamps as UTC microseconds; the zone name may be spelled differently.
        (DataType::Timestamp(u1, Some(_)), DataType::Timestamp(u2, Some(_))) => u1 == u2,
        (DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View, DataType::Utf8) => true,
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    #[tokio::test]
    async fn init_creates_every_table_and_open_checks_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        Store::init(&root).await.unwrap();
        let store = Store::open(&root).await.unwrap();
        for def in TABLES {
            let t = store.table(def.name).await.unwrap();
            assert_eq!(t.version(), Some(0), "{}", def.name);
        }
        // init again is a no-op
        Store::init(&root).await.unwrap();
    }

    #[tokio::test]
    async fn a_table_whose_creation_was_killed_is_created_again() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        Store::init(&root).await.unwrap();
        // what kill -9 during `create` leaves: the log directory with only
        // the staged, empty first commit
        let log = root.join("interactions/_delta_log");
        std::fs::remove_dir_all(&log).unwrap();
        std::fs::create_dir_all(&log).unwrap();
        std::fs::write(log.join("00000000000000000000.json#1"), "").unwrap();
        assert!(!has_commit(&root.join("interactions")));
        let err = Store::open(&root).await.unwrap_err().to_string();
        assert!(
            err.contains("table interactions is missing; run `crmdb init` to create it"),
            "{err}"
        );
        Store::init(&root).await.unwrap();
        let store = Store::open(&root).await.unwrap();
        assert_eq!(
            store.table("interactions").await.unwrap().version(),
            Some(0)
        );
        assert!(has_commit(&root.join("interactions")));
        assert!(!has_commit(&root.join("no_such_table")));
    }

    #[tokio::test]
    async fn open_refuses_a_plain_directory() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("not a crmdb data directory"), "{err}");
        std::fs::write(dir.path().join("x.txt"), "hi").unwrap();
        let err = Store::init(dir.path()).await.unwrap_err().to_string();
        assert!(err.contains("not empty"), "{err}");
    }

    #[test]
    fn schema_problems_name_the_column_and_the_difference() {
        let def = schema::ORDERS;
        let mut fields: Vec<Field> = def
            .arrow_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields[5] = Field::new("amount", DataType::Float64, false); // wrong type
        fields[1] = Field::new("customer_id", DataType::Int64, true); // wrong nullability
        fields.remove(8); // status missing
        let problems = schema_problems(&def, &Schema::new(fields));
        assert_eq!(
            problems,
            vec![
                "column customer_id is nullable but must be NOT NULL".to_string(),
                "column amount has type Float64 but must be Decimal128(18, 2) (numeric(18,2))"
                    .to_string(),
                "column status (text) is missing".to_string(),
            ]
        );
    }
}
