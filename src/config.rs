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
    /// Export jobs (`[[export]]` tables), see [`crate::export::job`].
    #[serde(rename = "export", skip_serializing_if = "Vec::is_empty")]
    pub exports: Vec<crate::export::ExportJob>,
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
    /// Memory for materialised results of the built-in views, shared by all
    /// sessions and kept until a load changes the data they read, e.g.
    /// "1GB"; "0" turns it off. Outside `memory_limit`.
    pub view_cache: ByteSize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memory_limit: ByteSize(4 * 1024 * 1024 * 1024),
            batch_size: 8192,
            target_partitions: None,
            spill_dir: None,
            view_cache: ByteSize(1024 * 1024 * 1024),
        }
    }
}

/// CRM analysis settings: the defaults of every session's `crm.*` settings
/// (see [`crate::views::CrmOptions`]), which `SET crm.… = …` changes per session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrmConfig {
    /// The date analyses are made "as of" (YYYY-MM-DD): views count orders up
    /// to the end of that day (UTC). Default: today (UTC).
    pub as_of: Option<chrono::NaiveDate>,
    /// Days a first purchase counts as new (lifecycle_stage).
    pub new_days: u32,
    /// Days since the last purchase a customer stays active.
    pub active_days: u32,
    /// Days since the last purchase after which a customer is churned.
    pub churn_days: u32,
    /// Days without a purchase that raise a churn warning.
    pub quiet_days: u32,
    /// Purchases in the 90 days before the last one that make a frequent buyer.
    pub churn_min_orders: u32,
    /// Days after an exposure in which an order counts as a response.
    pub response_window_days: u32,
    /// Monthly discount rate of `clv_12m`.
    pub clv_monthly_discount: f64,
    /// Member tier thresholds: [silver spend, orders, engagement, gold …,
    /// platinum …] (see `member_tier`); default the function's own.
    pub tier_thresholds: Option<[f64; 9]>,
    /// Cron expression (UTC) at which `crmdb serve` runs `refresh`, e.g.
    /// "0 30 2 * * *" (sec min hour day month weekday); none by default.
    pub refresh_schedule: Option<String>,
}

impl Default for CrmConfig {
    fn default() -> Self {
        CrmConfig {
            as_of: None,
            new_days: 30,
            active_days: 90,
            churn_days: 180,
            quiet_days: 30,
            churn_min_orders: 3,
            response_window_days: 14,
            clv_monthly_discount: 0.01,
            tier_thresholds: None,
            refresh_schedule: None,
        }
    }
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
        crate::views::CrmOptions::from_config(&self.crm, self.as_of()).map_err(bad)?;
        if let Some(schedule) = &self.crm.refresh_schedule {
            crate::export::job::parse_cron(schedule)
                .map_err(|e| bad(format!("crm.refresh_schedule: {e}")))?;
        }
        crate::export::validate_jobs(&self.exports).map_err(bad)?;
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
# Results of the built-in views kept in memory, shared by all sessions, until
# a load changes what they read ("0" turns this off).
# view_cache = "1GB"

[crm]
# Defaults of the per-session `crm.*` settings the built-in views use
# (`SHOW crm.as_of`, `SET crm.as_of = '2026-06-30'`).
# The date analyses are made as of (views, lifecycle, churn). Default: today (UTC).
# as_of = "2026-06-30"
# new_days = 30                # lifecycle: first purchase counts as new
# active_days = 90             # lifecycle: active up to this many days since the last purchase
# churn_days = 180             # lifecycle: churned beyond this
# quiet_days = 30              # churn warning: days without a purchase
# churn_min_orders = 3         # churn warning: purchases in the 90 days before the last one
# response_window_days = 14    # promotions: an order within this many days of exposure responds
# clv_monthly_discount = 0.01  # customer_metrics.clv_12m
# tier_thresholds = [1000, 3, 0, 5000, 8, 10, 20000, 20, 30]
# refresh_schedule = "0 30 2 * * *"   # crmdb serve: run `refresh` daily at 02:30 UTC
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
