//! `crmdb.toml`: engine limits, CRM analysis settings and the server's users.
//!
//! Looked up, in order: `--config FILE` (or `CRMDB_CONFIG`), then
//! `<data dir>/crmdb.toml`; when neither exists the built-in defaults apply.
//! Unknown keys are an error, so a typo never silently falls back to a default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Query engine settings.
    pub engine: EngineConfig,
    /// CRM analysis settings (as-of date, thresholds).
    pub crm: CrmConfig,
    /// The PostgreSQL front end: listen address, TLS, users.
    pub server: crate::server::config::ServerConfig,
    /// Where the file was read from (not part of the file).
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Query engine settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Memory available to query execution, shared by all sessions, e.g. "4GB".
    /// Sorts, aggregates and joins spill to disk or fail with 53200 beyond it.
    pub memory_limit: ByteSize,
    /// Rows per Arrow batch.
    pub batch_size: usize,
    /// Parallelism of a query (default: the number of cores).
    pub target_partitions: Option<usize>,
    /// Where spill files go (default: the system temp dir).
    pub spill_dir: Option<PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_limit: ByteSize(4 * 1024 * 1024 * 1024),
            batch_size: 8192,
            target_partitions: None,
            spill_dir: None,
        }
    }
}

/// CRM analysis settings.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CrmConfig {
    /// The date analyses are made "as of" (YYYY-MM-DD); default today (UTC).
    pub as_of: Option<chrono::NaiveDate>,
}

/// A number of bytes written as `"512MB"`, `"4GB"`, `"1.5GiB"` or a plain integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid size '{s}': expected e.g. 512MB or 4GB"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" | "kib" => 1 << 10,
            "m" | "mb" | "mib" => 1 << 20,
            "g" | "gb" | "gib" => 1 << 30,
            "t" | "tb" | "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "invalid size unit '{other}' in '{s}': use B, KB, MB, GB or TB"
                ));
            }
        };
        if !n.is_finite() || n < 0.0 {
            return Err(format!("invalid size '{s}'"));
        }
        Ok(ByteSize((n * mult as f64) as u64))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TB", 1 << 40),
            ("GB", 1 << 30),
            ("MB", 1 << 20),
            ("KB", 1 << 10),
        ];
        for (name, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{name}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Config {
    /// The file name looked for in the data directory.
    pub const FILE_NAME: &'static str = "crmdb.toml";

    /// Read a config file.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: Config = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        config.source = Some(path.to_path_buf());
        config.validate()?;
        Ok(config)
    }

    /// Load the config for a data directory: `explicit` if given (it must exist),
    /// else `<data_dir>/crmdb.toml` if present, else the defaults.
    pub fn load(explicit: Option<&Path>, data_dir: &Path) -> Result<Config> {
        if let Some(path) = explicit {
            return Config::from_file(path);
        }
        let in_store = data_dir.join(Self::FILE_NAME);
        if in_store.is_file() {
            Config::from_file(&in_store)
        } else {
            Ok(Config::default())
        }
    }

    /// Check values serde cannot check.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Error::Config {
            path: self
                .source
                .clone()
                .unwrap_or_else(|| PathBuf::from(Self::FILE_NAME)),
            reason,
        };
        if self.engine.batch_size == 0 {
            return Err(bad("engine.batch_size must be at least 1".into()));
        }
        if self.engine.memory_limit.0 < 16 * 1024 * 1024 {
            return Err(bad(format!(
                "engine.memory_limit = {} is below the minimum of 16MB",
                self.engine.memory_limit
            )));
        }
        if self.engine.target_partitions == Some(0) {
            return Err(bad("engine.target_partitions must be at least 1".into()));
        }
        Ok(())
    }

    /// The as-of date in force: the configured one, or today (UTC).
    pub fn as_of(&self) -> chrono::NaiveDate {
        self.crm
            .as_of
            .unwrap_or_else(|| chrono::Utc::now().date_naive())
    }
}

/// The commented default file `crmdb init` writes into a new data directory.
pub const DEFAULT_CONFIG_TOML: &str = r#"# crmdb configuration. Every key is optional; the values shown are the defaults.

[engine]
# Memory for query execution, shared by all sessions. Beyond it, sorts and
# aggregates spill to disk; what cannot spill fails with SQLSTATE 53200.
# memory_limit = "4GB"
# batch_size = 8192
# target_partitions = 2        # default: number of cores

[crm]
# The date analyses are made as of (views, lifecycle, churn). Default: today (UTC).
# as_of = "2026-06-30"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_and_print() {
        assert_eq!("4GB".parse::<ByteSize>(), Ok(ByteSize(4 << 30)));
        assert_eq!("512 MiB".parse::<ByteSize>(), Ok(ByteSize(512 << 20)));
        assert_eq!("1.5GB".parse::<ByteSize>(), Ok(ByteSize(3 << 29)));
        assert_eq!("100".parse::<ByteSize>(), Ok(ByteSize(100)));
        assert!(
            "4 parsecs"
                .parse::<ByteSize>()
                .unwrap_err()
                .contains("parsecs")
        );
        assert_eq!(ByteSize(4 << 30).to_string(), "4GB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = toml::from_str::<Config>("[engine]\nmemory_limt = \"1GB\"\n").unwrap_err();
        assert!(err.to_string().contains("memory_limt"), "{err}");
    }

    #[test]
    fn default_file_parses_to_defaults() {
        let c: Config = toml::from_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(c.engine.memory_limit, ByteSize(4 << 30));
        assert_eq!(c.engine.batch_size, 8192);
        assert!(c.crm.as_of.is_none());
    }
}
