//! The crate's error type. Every variant says what went wrong and where; the
//! wire front end maps each to a PostgreSQL SQLSTATE with [`Error::sqlstate`].

use std::path::PathBuf;

use crate::ingest::RowError;

/// Result alias used throughout crmdb.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in crmdb below the command line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory does not exist or is not a crmdb store.
    #[error("{path}: {reason}")]
    Store {
        /// The data directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A stored table does not have the canonical schema.
    #[error("table {table} at {path} does not match the canonical schema:\n  {}", .problems.join("\n  "))]
    SchemaMismatch {
        /// Table name.
        table: String,
        /// Table location.
        path: PathBuf,
        /// One line per problem (missing column, wrong type, wrong nullability).
        problems: Vec<String>,
    },

    /// A name that is not a canonical table.
    #[error("unknown table '{0}' (expected one of: {tables})", tables = crate::store::schema::TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", "))]
    UnknownTable(String),

    /// Bad input data: every bad value with its place. Nothing was committed.
    #[error("{} bad value(s) in the input; nothing was loaded:\n{}", .errors.len(), format_row_errors(.errors, .total))]
    BadInput {
        /// The first errors found (capped).
        errors: Vec<RowError>,
        /// How many errors there were in all.
        total: usize,
    },

    /// A problem with the shape of an input file (header, unknown columns, format).
    #[error("{file}: {reason}")]
    InputFile {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },

    /// crmdb.toml could not be read or is invalid.
    #[error("config {path}: {reason}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// An operation the caller may not perform.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// Invalid use of a command or option.
    #[error("{0}")]
    Usage(String),

    /// A SQL planning or execution error from DataFusion.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    /// An Arrow error.
    #[error(transparent)]
    Arrow(#[from] datafusion::arrow::error::ArrowError),

    /// A Parquet error.
    #[error(transparent)]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),

    /// A Delta Lake error.
    #[error("delta: {0}")]
    Delta(#[from] deltalake::DeltaTableError),

    /// An I/O error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The PostgreSQL SQLSTATE for this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            Error::BadInput { .. } | Error::InputFile { .. } => "22P02",
            Error::SchemaMismatch { .. } => "XX001",
            Error::UnknownTable(_) => "42P01",
            Error::PermissionDenied(_) => "42501",
            Error::Usage(_) => "42601",
            Error::DataFusion(e) => datafusion_sqlstate(e),
            Error::Config { .. } | Error::Store { .. } => "58000",
            Error::Io { .. } => "58030",
            Error::Arrow(_) | Error::Parquet(_) | Error::Delta(_) => "XX000",
        }
    }
}

/// SQLSTATE for a DataFusion error.
pub fn datafusion_sqlstate(e: &datafusion::error::DataFusionError) -> &'static str {
    use datafusion::error::DataFusionError as D;
    match e.find_root() {
        D::SQL(..) => "42601",
        // undefined_function, as PostgreSQL: `pg_read_file(…)`, `read_csv(…)`
        D::Plan(m)
            if m.starts_with("Invalid function")
                || (m.starts_with("table function '") && m.ends_with("' not found")) =>
        {
            "42883"
        }
        D::Plan(_) | D::SchemaError(..) => "42P01",
        // invalid_text_representation: `CAST('x' AS BIGINT)`
        D::ArrowError(e, _)
            if matches!(**e, datafusion::arrow::error::ArrowError::CastError(_)) =>
        {
            "22P02"
        }
        D::NotImplemented(_) => "0A000",
        D::ResourcesExhausted(_) => "53200",
        D::Execution(_) => "22023",
        _ => "XX000",
    }
}

fn format_row_errors(errors: &[RowError], total: &usize) -> String {
    let mut out: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    if *total > errors.len() {
        out.push(format!("  … and {} more", total - errors.len()));
    }
    out.join("\n")
}
