//! Export jobs as written in `crmdb.toml` (`[[export]]` tables) and their
//! checked form, [`Job`]: every key is validated when the file is loaded, and
//! every error names the job and the key.
//!
//! ```toml
//! [[export]]
//! name = "churn_consented"
//! query = "SELECT customer_id, phone FROM customer_metrics WHERE churn_warning AND marketing_consent"
//! format = "csv"                      # parquet | csv | jsonl (default: from the path's extension)
//! path = "exports/{name}/{date}.csv"  # {name}, {date}, {timestamp}; relative to the data dir
//! schedule = "30 6 * * *"             # cron: minute hour day month weekday (seconds first optional)
//! timezone = "Europe/Berlin"          # IANA name; default UTC
//! keep = 14                           # keep the last 14 files of this job
//! mask = "mask"                       # none | mask | pseudonymize
//! mask_columns = ["phone"]            # default: name, phone, email when present
//! ```

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

/// The environment variable the pseudonymisation key is read from by default.
pub const DEFAULT_KEY_ENV: &str = "CRMDB_EXPORT_KEY";

/// Columns masked when `mask_columns` is not given (those present in the result).
pub const DEFAULT_MASK_COLUMNS: [&str; 3] = ["name", "phone", "email"];

/// One `[[export]]` table of `crmdb.toml`, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportJob {
    /// Job name (letters, digits, `_`, `-`), unique among the jobs.
    pub name: String,
    /// The SQL query (one SELECT / WITH / VALUES) whose result is written.
    pub query: String,
    /// File format; default: from the extension of `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<ExportFormat>,
    /// Destination path template with `{name}`, `{date}` (YYYY-MM-DD) and
    /// `{timestamp}` (YYYYMMDDTHHMMSS), both in the job's time zone; relative
    /// paths are resolved against the data directory.
    pub path: String,
    /// Cron expression (`min hour day month weekday`, optionally with seconds
    /// first); without it the job runs only on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule and of `{date}` / `{timestamp}`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Keep only the newest N files this job wrote (default: keep all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<u32>,
    /// Personal data in the output: none, mask, or pseudonymize.
    #[serde(default)]
    pub mask: MaskMode,
    /// Columns to mask or pseudonymize: `"col"` or `"col:kind"` with kind
    /// name, phone or email (for `mask`). Default: name, phone, email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_columns: Option<Vec<String>>,
    /// Environment variable holding the pseudonymisation key
    /// (default `CRMDB_EXPORT_KEY`). The key itself never goes in the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonymize_key_env: Option<String>,
    /// Refused on load: accepted by the parser only to say why.
    #[serde(default, skip_serializing)]
    pub pseudonymize_key: Option<toml::Value>,
    /// Run once at start when a scheduled run was missed while crmdb was down.
    #[serde(default = "yes")]
    pub catch_up: bool,
    /// Further attempts after a failed run.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry (doubling each time), e.g. "30s", "2min".
    #[serde(default = "default_backoff")]
    pub retry_backoff: String,
}

fn default_timezone() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}
fn default_retries() -> u32 {
    2
}
fn default_backoff() -> String {
    "30s".into()
}

/// Output file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Apache Parquet (zstd).
    Parquet,
    /// CSV with a header row.
    Csv,
    /// JSON lines: one object per row.
    Jsonl,
}

impl ExportFormat {
    /// The format a file name's extension stands for.
    pub fn from_extension(path: &str) -> Option<ExportFormat> {
        let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" => Some(ExportFormat::Parquet),
            "csv" => Some(ExportFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(ExportFormat::Jsonl),
            _ => None,
        }
    }

    /// The lowercase name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Parquet => "parquet",
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }
}

/// How personal data is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MaskMode {
    /// Written as stored.
    #[default]
    None,
    /// `mask_name` / `mask_phone` / `mask_email`.
    Mask,
    /// `pseudonymize(value, key)` with the key from the environment.
    Pseudonymize,
}

/// Which masking function a column gets in `mask` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskKind {
    /// `mask_name`
    Name,
    /// `mask_phone`
    Phone,
    /// `mask_email`
    Email,
}

impl MaskKind {
    /// The SQL function.
    pub fn function(self) -> &'static str {
        match self {
            MaskKind::Name => "mask_name",
            MaskKind::Phone => "mask_phone",
            MaskKind::Email => "mask_email",
        }
    }

    fn parse(s: &str) -> Option<MaskKind> {
        match s {
            "name" => Some(MaskKind::Name),
            "phone" => Some(MaskKind::Phone),
            "email" => Some(MaskKind::Email),
            _ => None,
        }
    }

    /// Guess from a column name: email, phone/mobile, name.
    fn guess(column: &str) -> Option<MaskKind> {
        let c = column.to_ascii_lowercase();
        if c.contains("email") || c.contains("e_mail") {
            Some(MaskKind::Email)
        } else if c.contains("phone") || c.contains("mobile") {
            Some(MaskKind::Phone)
        } else if c.contains("name") {
            Some(MaskKind::Name)
        } else {
            None
        }
    }
}

/// One column to mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskColumn {
    /// Column name in the query result.
    pub column: String,
    /// Function in `mask` mode.
    pub kind: MaskKind,
    /// Named in `mask_columns` (must then exist), not a default.
    pub required: bool,
}

/// The checked masking of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Masking {
    /// Nothing masked.
    None,
    /// Masking functions on these columns.
    Mask(Vec<MaskColumn>),
    /// `pseudonymize(CAST(col AS VARCHAR), key)` on these columns, with the
    /// key read from the environment variable `key_env` at run time.
    Pseudonymize {
        /// The variable's name.
        key_env: String,
        /// The columns.
        columns: Vec<MaskColumn>,
    },
}

/// A piece of a path template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Name,
    Date,
    Timestamp,
}

/// A parsed destination path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pieces: Vec<Piece>,
}

impl PathTemplate {
    /// Parse `{name}`, `{date}`, `{timestamp}`; any other `{…}` is an error.
    pub fn parse(text: &str) -> Result<PathTemplate, String> {
        if text.trim().is_empty() {
            return Err("is empty".into());
        }
        if text.ends_with('/') || text.ends_with(std::path::MAIN_SEPARATOR) {
            return Err(format!("'{text}' names a directory; it must name a file"));
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find(['{', '}']) {
            if rest[open..].starts_with('}') {
                return Err(format!("'{text}': unmatched '}}'"));
            }
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("'{text}': unmatched '{{'"))?;
            pieces.push(match &after[..close] {
                "name" => Piece::Name,
                "date" => Piece::Date,
                "timestamp" => Piece::Timestamp,
                other => {
                    return Err(format!(
                        "'{text}': unknown placeholder {{{other}}} (use {{name}}, {{date}} or {{timestamp}})"
                    ));
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(PathTemplate { pieces })
    }

    /// The path for job `name` at `at` (in zone `tz`).
    pub fn render(&self, name: &str, at: DateTime<Utc>, tz: Tz) -> String {
        let local = at.with_timezone(&tz);
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Name => out.push_str(name),
                Piece::Date => out.push_str(&local.format("%Y-%m-%d").to_string()),
                Piece::Timestamp => out.push_str(&local.format("%Y%m%dT%H%M%S").to_string()),
            }
        }
        out
    }
}

/// A checked export job, ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Job name.
    pub name: String,
    /// The SQL query.
    pub query: String,
    /// Output format.
    pub format: ExportFormat,
    /// The path as written (for display).
    pub path_text: String,
    /// The destination template.
    pub path: PathTemplate,
    /// The schedule as written.
    pub schedule_text: Option<String>,
    /// The parsed schedule.
    pub schedule: Option<Cron>,
    /// Time zone of the schedule and the path's date.
    pub timezone: Tz,
    /// Files to keep.
    pub keep: Option<u32>,
    /// Masking.
    pub masking: Masking,
    /// Run a missed schedule once at start.
    pub catch_up: bool,
    /// Further attempts after a failure.
    pub retries: u32,
    /// Wait before the first retry.
    pub retry_backoff: Duration,
}

impl Job {
    /// Check one job; errors say `export 'NAME': KEY: problem`.
    pub fn parse(spec: &ExportJob) -> Result<Job, String> {
        let name = spec.name.trim();
        if name.is_empty() {
            return Err("export: name is empty".into());
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "export '{}': name: use only letters, digits, '_' and '-'",
                spec.name
            ));
        }
        let bad = |key: &str, why: String| format!("export '{name}': {key}: {why}");
        if spec.pseudonymize_key.is_some() {
            return Err(bad(
                "pseudonymize_key",
                format!(
                    "keys never go in the config file; put the key in an environment variable and name it with pseudonymize_key_env (default {DEFAULT_KEY_ENV})"
                ),
            ));
        }
        check_query(&spec.query).map_err(|e| bad("query", e))?;
        let path = PathTemplate::parse(&spec.path).map_err(|e| bad("path", e))?;
        let format = match spec.format {
            Some(f) => f,
            None => ExportFormat::from_extension(&spec.path).ok_or_else(|| {
                bad(
                    "format",
                    format!(
                        "missing, and the path '{}' does not end in .parquet, .csv or .jsonl; set format = \"parquet\", \"csv\" or \"jsonl\"",
                        spec.path
                    ),
                )
            })?,
        };
        let timezone = Tz::from_str(spec.timezone.trim()).map_err(|_| {
            bad(
                "timezone",
                format!(
                    "unknown time zone '{}' (use an IANA name such as UTC or Europe/Berlin)",
                    spec.timezone
                ),
            )
        })?;
        let schedule = match &spec.schedule {
            None => None,
            Some(text) => {
                let cron = parse_cron(text).map_err(|e| bad("schedule", e))?;
                next_after(&cron, timezone, Utc::now()).map_err(|e| bad("schedule", e))?;
                Some(cron)
            }
        };
        if spec.keep == Some(0) {
            return Err(bad(
                "keep",
                "must be at least 1 (leave it out to keep every file)".into(),
            ));
        }
        if spec.retries > 20 {
            return Err(bad(
                "retries",
                format!("{} is more than the maximum of 20", spec.retries),
            ));
        }
        let retry_backoff = crate::server::config::parse_duration(&spec.retry_backoff)
            .map_err(|e| bad("retry_backoff", e))?
            .unwrap_or_default();
        if retry_backoff > Duration::from_secs(24 * 3600) {
            return Err(bad(
                "retry_backoff",
                format!("'{}' is longer than one day", spec.retry_backoff),
            ));
        }
        let masking = parse_masking(spec).map_err(|(key, why)| bad(key, why))?;
        Ok(Job {
            name: name.to_string(),
            query: spec.query.clone(),
            format,
            path_text: spec.path.clone(),
            path,
            schedule_text: spec.schedule.clone(),
            schedule,
            timezone,
            keep: spec.keep,
            masking,
            catch_up: spec.catch_up,
            retries: spec.retries,
            retry_backoff,
        })
    }

    /// The next scheduled time strictly after `t`, if the job has a schedule.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.schedule.as_ref()?;
        next_after(cron, self.timezone, t).ok()
    }

    /// The latest scheduled time at or before `t`, if any.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = self.schedule.as_ref()?;
        cron.find_previous_occurrence(&t.with_timezone(&self.timezone), true)
            .ok()
            .map(|d| d.with_timezone(&Utc))
    }

    /// The destination path (before resolving against the data directory)
    /// for a run at `at`.
    pub fn render_path(&self, at: DateTime<Utc>) -> String {
        self.path.render(&self.name, at, self.timezone)
    }
}

/// Parse a cron expression: five fields, or six with seconds first.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(text.trim())
        .map_err(|e| format!("'{text}' is not a valid cron expression: {e}"))
}

fn next_after(cron: &Cron, tz: Tz, t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    cron.find_next_occurrence(&t.with_timezone(&tz), false)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("'{}' never matches a time: {e}", cron.pattern))
}

/// One statement, and a query (SELECT, WITH, VALUES).
fn check_query(sql: &str) -> Result<(), String> {
    use datafusion::sql::parser::{DFParser, Statement as DFStatement};
    use datafusion::sql::sqlparser::ast::Statement;
    if sql.trim().is_empty() {
        return Err("is empty".into());
    }
    let statements = DFParser::parse_sql(sql).map_err(|e| e.to_string())?;
    if statements.len() != 1 {
        return Err(format!(
            "must be exactly one statement, found {}",
            statements.len()
        ));
    }
    match statements.front() {
        Some(DFStatement::Statement(s)) if matches!(**s, Statement::Query(_)) => Ok(()),
        _ => Err("must be a query (SELECT, WITH or VALUES)".into()),
    }
}

fn parse_masking(spec: &ExportJob) -> Result<Masking, (&'static str, String)> {
    if spec.mask != MaskMode::Pseudonymize && spec.pseudonymize_key_env.is_some() {
        return Err((
            "pseudonymize_key_env",
            "only applies with mask = \"pseudonymize\"".into(),
        ));
    }
    if spec.mask == MaskMode::None {
        if spec.mask_columns.is_some() {
            return Err((
                "mask_columns",
                "has no effect with mask = \"none\"; set mask = \"mask\" or \"pseudonymize\""
                    .into(),
            ));
        }
        return Ok(Masking::None);
    }
    let columns = match &spec.mask_columns {
        None => DEFAULT_MASK_COLUMNS
            .iter()
            .filter_map(|c| {
                Some(MaskColumn {
                    column: (*c).to_string(),
                    kind: MaskKind::parse(c)?,
                    required: false,
                })
            })
            .collect(),
        Some(list) => {
            if list.is_empty() {
                return Err((
                    "mask_columns",
                    "is empty; leave it out for the default (name, phone, email)".into(),
                ));
            }
            let mut out: Vec<MaskColumn> = Vec::new();
            for entry in list {
                let (column, kind) = match entry.split_once(':') {
                    Some((c, k)) => {
                        let kind = MaskKind::parse(k.trim()).ok_or_else(|| {
                            (
                                "mask_columns",
                                format!("'{entry}': unknown kind '{k}' (use name, phone or email)"),
                            )
                        })?;
                        (c.trim().to_string(), Some(kind))
                    }
                    None => (entry.trim().to_string(), None),
                };
                if column.is_empty() {
                    return Err(("mask_columns", format!("'{entry}': empty column name")));
                }
                if out.iter().any(|c| c.column == column) {
                    return Err(("mask_columns", format!("'{column}' is listed twice")));
                }
                let kind = match (kind, spec.mask) {
                    (Some(k), _) => k,
                    // pseudonymize ignores the kind
                    (None, MaskMode::Pseudonymize) => {
                        MaskKind::guess(&column).unwrap_or(MaskKind::Name)
                    }
                    (None, _) => MaskKind::guess(&column).ok_or_else(|| {
                        (
                            "mask_columns",
                            format!(
                                "cannot tell how to mask '{column}': write '{column}:name', '{column}:phone' or '{column}:email'"
                            ),
                        )
                    })?,
                };
                out.push(MaskColumn {
                    column,
                    kind,
                    required: true,
                });
            }
            out
        }
    };
    if spec.mask == MaskMode::Mask {
        return Ok(Masking::Mask(columns));
    }
    let key_env = spec
        .pseudonymize_key_env
        .clone()
        .unwrap_or_else(|| DEFAULT_KEY_ENV.to_string());
    let looks_like_a_name = !key_env.is_empty()
        && key_env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key_env.starts_with(|c: char| c.is_ascii_digit());
    if !looks_like_a_name {
        return Err((
            "pseudonymize_key_env",
            "must be the name of an environment variable (letters, digits, '_'), not the key itself"
                .into(),
        ));
    }
    Ok(Masking::Pseudonymize { key_env, columns })
}

/// Check every job and that names are unique.
pub fn validate_jobs(jobs: &[ExportJob]) -> Result<Vec<Job>, String> {
    let mut out: Vec<Job> = Vec::with_capacity(jobs.len());
    for spec in jobs {
        let job = Job::parse(spec)?;
        if out.iter().any(|j| j.name == job.name) {
            return Err(format!(
                "export '{}': name: two [[export]] jobs have this name",
                job.name
            ));
        }
        out.push(job);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(extra: &str) -> Result<Job, String> {
        let text = format!(
            "name = \"seg\"\nquery = \"SELECT 1 AS x\"\npath = \"exports/{{name}}/{{date}}.csv\"\n{extra}"
        );
        let spec: ExportJob = toml::from_str(&text).map_err(|e| e.to_string())?;
        Job::parse(&spec)
    }

    #[test]
    fn defaults() {
        let job = spec("").unwrap();
        assert_eq!(job.format, ExportFormat::Csv);
        assert_eq!(job.timezone, Tz::UTC);
        assert_eq!(job.masking, Masking::None);
        assert!(job.catch_up);
        assert_eq!(job.retries, 2);
        assert_eq!(job.retry_backoff, Duration::from_secs(30));
        assert!(job.schedule.is_none());
        assert_eq!(job.keep, None);
    }

    #[test]
    fn errors_name_the_job_and_the_key() {
        let cases = [
            (
                "schedule = \"61 * * * *\"",
                "export 'seg': schedule: '61 * * * *' is not a valid cron expression",
            ),
            (
                "timezone = \"Mars/Olympus\"",
                "export 'seg': timezone: unknown time zone 'Mars/Olympus'",
            ),
            ("keep = 0", "export 'seg': keep: must be at least 1"),
            (
                "retry_backoff = \"soon\"",
                "export 'seg': retry_backoff: invalid duration 'soon'",
            ),
            (
                "pseudonymize_key = \"hunter2\"",
                "export 'seg': pseudonymize_key: keys never go in the config file",
            ),
            (
                "mask = \"pseudonymize\"\npseudonymize_key_env = \"s3cr3t-value!\"",
                "export 'seg': pseudonymize_key_env: must be the name of an environment variable",
            ),
            (
                "mask_columns = [\"phone\"]",
                "export 'seg': mask_columns: has no effect with mask = \"none\"",
            ),
            (
                "mask = \"mask\"\nmask_columns = [\"city\"]",
                "export 'seg': mask_columns: cannot tell how to mask 'city'",
            ),
            (
                "mask = \"mask\"\nmask_columns = [\"city:address\"]",
                "export 'seg': mask_columns: 'city:address': unknown kind 'address'",
            ),
            (
                "schedule = \"0 0 30 2 *\"",
                "export 'seg': schedule: '0 0 30 2 *' never matches a time",
            ),
        ];
        for (extra, expected) in cases {
            let err = spec(extra).unwrap_err();
            assert!(err.starts_with(expected), "{extra}: {err}");
        }
        let err = toml::from_str::<ExportJob>(
            "name = \"a\"\nquery = \"SELECT 1\"\npath = \"a.csv\"\nformat = \"xlsx\"",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown variant `xlsx`"), "{err}");
    }

    #[test]
    fn queries_must_be_one_select() {
        let q = |sql: &str| {
            let spec = ExportJob {
                query: sql.into(),
                ..toml::from_str("name = \"q\"\nquery = \"x\"\npath = \"q.csv\"").unwrap()
            };
            Job::parse(&spec).map(|_| ()).unwrap_err()
        };
        assert_eq!(
            q("SELECT 1; SELECT 2"),
            "export 'q': query: must be exactly one statement, found 2"
        );
        assert_eq!(
            q("DROP TABLE orders"),
            "export 'q': query: must be a query (SELECT, WITH or VALUES)"
        );
        assert!(q("SELEC 1").starts_with("export 'q': query: "));
    }

    #[test]
    fn format_comes_from_the_extension_unless_given() {
        let job = |path: &str, format: &str| {
            let text = format!("name = \"f\"\nquery = \"SELECT 1\"\npath = \"{path}\"\n{format}");
            Job::parse(&toml::from_str(&text).unwrap())
        };
        assert_eq!(job("a.parquet", "").unwrap().format, ExportFormat::Parquet);
        assert_eq!(job("a.jsonl", "").unwrap().format, ExportFormat::Jsonl);
        assert_eq!(
            job("a.out", "format = \"csv\"").unwrap().format,
            ExportFormat::Csv
        );
        assert!(
            job("a.out", "")
                .unwrap_err()
                .starts_with("export 'f': format: missing")
        );
    }

    #[test]
    fn templates_render_in_the_job_zone() {
        let t = PathTemplate::parse("exports/{name}/{date}-{timestamp}.csv").unwrap();
        // 23:30 UTC on 30 June is already 1 July in Berlin (UTC+2).
        let at = Utc.with_ymd_and_hms(2026, 6, 30, 23, 30, 5).unwrap();
        assert_eq!(
            t.render("seg", at, Tz::Europe__Berlin),
            "exports/seg/2026-07-01-20260701T013005.csv"
        );
        assert_eq!(
            t.render("seg", at, Tz::UTC),
            "exports/seg/2026-06-30-20260630T233005.csv"
        );
        assert!(
            PathTemplate::parse("a/{day}.csv")
                .unwrap_err()
                .contains("unknown placeholder {day}")
        );
        assert!(
            PathTemplate::parse("a/{date.csv")
                .unwrap_err()
                .contains("unmatched '{'")
        );
        assert!(
            PathTemplate::parse("exports/")
                .unwrap_err()
                .contains("names a directory")
        );
    }

    #[test]
    fn schedules_follow_the_time_zone() {
        let job = spec("schedule = \"30 6 * * *\"\ntimezone = \"Europe/Berlin\"").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 6, 30, 12, 0, 0).unwrap();
        // 06:30 in Berlin (summer) is 04:30 UTC.
        assert_eq!(
            job.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 7, 1, 4, 30, 0).unwrap())
        );
        assert_eq!(
            job.latest_at_or_before(t),
            Some(Utc.with_ymd_and_hms(2026, 6, 30, 4, 30, 0).unwrap())
        );
        // six fields: seconds first
        let job = spec("schedule = \"15 * * * * *\"").unwrap();
        assert_eq!(
            job.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 6, 30, 12, 0, 15).unwrap())
        );
    }

    #[test]
    fn mask_columns_default_and_explicit() {
        let job = spec("mask = \"mask\"").unwrap();
        let Masking::Mask(cols) = job.masking else {
            panic!("not mask")
        };
        let names: Vec<(&str, MaskKind, bool)> = cols
            .iter()
            .map(|c| (c.column.as_str(), c.kind, c.required))
            .collect();
        assert_eq!(
            names,
            vec![
                ("name", MaskKind::Name, false),
                ("phone", MaskKind::Phone, false),
                ("email", MaskKind::Email, false)
            ]
        );
        let job = spec("mask = \"mask\"\nmask_columns = [\"mobile\", \"contact:email\"]").unwrap();
        let Masking::Mask(cols) = job.masking else {
            panic!("not mask")
        };
        assert_eq!(cols[0].kind, MaskKind::Phone);
        assert_eq!(cols[1].kind, MaskKind::Email);
        assert!(cols.iter().all(|c| c.required));
        let job = spec("mask = \"pseudonymize\"\nmask_columns = [\"customer_id\"]").unwrap();
        assert!(matches!(
            job.masking,
            Masking::Pseudonymize { ref key_env, ref columns }
                if key_env == DEFAULT_KEY_ENV && columns[0].column == "customer_id"
        ));
    }

    #[test]
    fn names_are_unique() {
        let a: ExportJob =
            toml::from_str("name = \"a\"\nquery = \"SELECT 1\"\npath = \"a.csv\"").unwrap();
        let err = validate_jobs(&[a.clone(), a]).unwrap_err();
        assert_eq!(err, "export 'a': name: two [[export]] jobs have this name");
    }
}
