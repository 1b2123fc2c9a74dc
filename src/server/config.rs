//! The `[server]` section of crmdb.toml: where `crmdb serve` listens, how
//! clients authenticate, TLS, limits and the users with their roles.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:5433"
//! auth = "scram-sha-256"          # or "trust" (loopback only)
//! require_tls = false
//! tls_cert = "/etc/crmdb/server.crt"
//! tls_key = "/etc/crmdb/server.key"
//! max_connections = 100
//! statement_timeout = "5min"     # default per session; "0" = none
//! max_active_statements = 0      # statements reading tables at once; 0 = 2 × cores
//!
//! [[server.users]]
//! name = "alice"
//! role = "analyst"
//! secret = "SCRAM-SHA-256$4096:<salt>$<salted password>"   # written by `crmdb user add`
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of `crmdb serve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// How clients authenticate.
    pub auth: AuthMode,
    /// Refuse clients that do not negotiate TLS.
    pub require_tls: bool,
    /// PEM certificate chain; with `tls_key` enables TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8); with `tls_cert` enables TLS.
    pub tls_key: Option<PathBuf>,
    /// Most concurrent client connections; more are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// Default `statement_timeout` of a session, e.g. "30s", "5min", "0" (none).
    pub statement_timeout: String,
    /// Most statements reading store tables or views that run at once
    /// (the others wait their turn); 0 = twice the cores.
    pub max_active_statements: usize,
    /// The users allowed to connect.
    pub users: Vec<UserEntry>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:5433".to_string(),
            auth: AuthMode::ScramSha256,
            require_tls: false,
            tls_cert: None,
            tls_key: None,
            max_connections: 100,
            statement_timeout: "0".to_string(),
            max_active_statements: 0,
            users: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// The default statement timeout, parsed (`None` = no limit).
    pub fn default_statement_timeout(&self) -> Result<Option<Duration>, String> {
        parse_duration(&self.statement_timeout).map_err(|e| {
            format!(
                "server.statement_timeout = '{}': {e}",
                self.statement_timeout
            )
        })
    }

    /// `max_active_statements`, with 0 resolved to twice the cores.
    pub fn active_statements(&self) -> usize {
        match self.max_active_statements {
            0 => 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The user entry called `name`.
    pub fn user(&self, name: &str) -> Option<&UserEntry> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthMode {
    /// SCRAM-SHA-256 against the salted verifiers of `[[server.users]]`.
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
    /// No password. Allowed only on a loopback listen address; every client
    /// gets the role of its user entry, or `analyst` for unknown names.
    #[serde(rename = "trust")]
    Trust,
}

/// A role decides what a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads, loads and changes data; DDL; engine settings.
    Admin,
    /// Reads everything.
    Analyst,
    /// Reads with personal data (name, phone, email) masked.
    Viewer,
}

impl Role {
    /// The lower-case name used in the config file and in `pg_roles`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Analyst => "analyst",
            Role::Viewer => "viewer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user of the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// Login name.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// SCRAM-SHA-256 secret, `SCRAM-SHA-256$<iterations>:<salt base64>$<salted password base64>`
    /// (see [`crate::server::auth`]); never the password itself.
    pub secret: String,
}

/// Parse a PostgreSQL-style duration: `"1500"` (ms), `"250ms"`, `"2s"`,
/// `"5min"`, `"1h"`; `"0"` means no limit.
pub fn parse_duration(text: &str) -> Result<Option<Duration>, String> {
    let t = text.trim().trim_matches('\'').trim_matches('"').trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration '{text}': expected e.g. 500ms, 2s, 5min"))?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => n,
        "s" | "sec" => n.saturating_mul(1000),
        "min" => n.saturating_mul(60_000),
        "h" => n.saturating_mul(3_600_000),
        "d" => n.saturating_mul(86_400_000),
        other => {
            return Err(format!(
                "invalid duration unit '{other}' in '{text}': use ms, s, min, h or d"
            ));
        }
    };
    Ok(if ms == 0 {
        None
    } else {
        Some(Duration::from_millis(ms))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_postgres() {
        assert_eq!(
            parse_duration("1500"),
            Ok(Some(Duration::from_millis(1500)))
        );
        assert_eq!(parse_duration("'1s'"), Ok(Some(Duration::from_secs(1))));
        assert_eq!(parse_duration("5min"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_duration("0"), Ok(None));
        assert!(parse_duration("5 parsecs").unwrap_err().contains("parsecs"));
        assert!(parse_duration("soon").unwrap_err().contains("soon"));
    }

    #[test]
    fn server_section_parses() {
        let c: ServerConfig = toml::from_str(
            "listen = '0.0.0.0:6000'\nauth = 'trust'\n[[users]]\nname = 'a'\nrole = 'viewer'\nsecret = 'x'\n",
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:6000");
        assert_eq!(c.auth, AuthMode::Trust);
        assert_eq!(c.users[0].role, Role::Viewer);
        assert!(toml::from_str::<ServerConfig>("listn = 'x'").is_err());
    }
}
