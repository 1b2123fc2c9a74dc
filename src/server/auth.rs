//! Users and SCRAM-SHA-256 secrets.
//!
//! A secret is stored as `SCRAM-SHA-256$<iterations>:<salt>$<salted password>`
//! (both base64): the RFC 5802 `SaltedPassword = Hi(password, salt, i)` with a
//! random 16-byte salt per user. pgwire's SCRAM server needs exactly that
//! value; the password itself is never written anywhere. (PostgreSQL stores
//! the derived `StoredKey:ServerKey` pair instead; the salted password is one
//! step earlier in the same derivation, so treat crmdb.toml like a key file:
//! readable by the operator only.)

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use pgwire::api::auth::sasl::scram::gen_salted_password;
use pgwire::api::auth::{AuthSource, LoginInfo, Password};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::SASLInitialResponse;

use super::config::{Role, ServerConfig, UserEntry};
use crate::error::{Error, Result};

/// Iterations of PBKDF2 in new secrets (PostgreSQL's default).
pub const ITERATIONS: usize = 4096;
const PREFIX: &str = "SCRAM-SHA-256$";

/// A parsed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// PBKDF2 iterations.
    pub iterations: usize,
    /// The per-user random salt.
    pub salt: Vec<u8>,
    /// `Hi(password, salt, iterations)`.
    pub salted_password: Vec<u8>,
}

impl Secret {
    /// Derive a secret for `password` with a fresh random salt.
    pub fn derive(password: &str) -> Secret {
        let salt: [u8; 16] = rand::random();
        let salted_password = gen_salted_password(password, &salt, ITERATIONS);
        Secret {
            iterations: ITERATIONS,
            salt: salt.to_vec(),
            salted_password,
        }
    }

    /// Parse the stored form; the error says what is wrong (never panics).
    pub fn parse(text: &str) -> std::result::Result<Secret, String> {
        let rest = text.strip_prefix(PREFIX).ok_or_else(|| {
            format!("secret does not start with '{PREFIX}' (write it with `crmdb user add`)")
        })?;
        let (params, key) = rest
            .split_once('$')
            .ok_or("secret lacks the '$<salted password>' part")?;
        let (iters, salt) = params
            .split_once(':')
            .ok_or("secret lacks '<iterations>:<salt>'")?;
        let iterations: usize = iters
            .parse()
            .map_err(|_| format!("secret has a bad iteration count '{iters}'"))?;
        if iterations < 4096 {
            return Err(format!(
                "secret has {iterations} iterations; SCRAM requires at least 4096"
            ));
        }
        let salt = STANDARD
            .decode(salt)
            .map_err(|e| format!("secret salt is not base64: {e}"))?;
        let salted_password = STANDARD
            .decode(key)
            .map_err(|e| format!("secret key is not base64: {e}"))?;
        if salt.is_empty() || salted_password.len() != 32 {
            return Err("secret has an empty salt or a key that is not 32 bytes".to_string());
        }
        Ok(Secret {
            iterations,
            salt,
            salted_password,
        })
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{PREFIX}{}:{}${}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.salted_password)
        )
    }
}

/// Check every user's secret and name; called before the server starts.
pub fn validate_users(config: &ServerConfig) -> Result<()> {
    for (i, user) in config.users.iter().enumerate() {
        if user.name.is_empty() {
            return Err(Error::Usage(format!("server.users[{i}]: empty user name")));
        }
        if config.users.iter().filter(|u| u.name == user.name).count() > 1 {
            return Err(Error::Usage(format!(
                "server.users: user '{}' is listed twice",
                user.name
            )));
        }
        Secret::parse(&user.secret)
            .map_err(|e| Error::Usage(format!("server.users '{}': {e}", user.name)))?;
        if Secret::parse(&user.secret).map(|s| s.iterations) != Ok(ITERATIONS) {
            return Err(Error::Usage(format!(
                "server.users '{}': only {ITERATIONS} iterations are supported; re-create it with `crmdb user add`",
                user.name
            )));
        }
    }
    Ok(())
}

/// The SCRAM [`AuthSource`] over the configured users. An unknown user gets a
/// throw-away secret so the exchange fails exactly like a wrong password
/// (SQLSTATE 28P01) and does not reveal which names exist: its salt is the
/// same on every attempt (derived from the name and a key made at start, as
/// PostgreSQL's mock salt), since a salt that changed between two attempts
/// would tell an unknown name from a real one.
#[derive(Debug)]
pub struct UserSource {
    users: Arc<Vec<UserEntry>>,
}

impl UserSource {
    /// Over the given users (their secrets were validated at start).
    pub fn new(users: Arc<Vec<UserEntry>>) -> UserSource {
        UserSource { users }
    }
}

#[async_trait]
impl AuthSource for UserSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().unwrap_or_default();
        let secret = self
            .users
            .iter()
            .find(|u| u.name == name)
            .and_then(|u| Secret::parse(&u.secret).ok());
        let secret = match secret {
            Some(s) => s,
            None => {
                tracing::info!(user = name, "login refused: unknown user");
                let salt = mock_salt(name);
                let key: [u8; 32] = rand::random();
                Secret {
                    iterations: ITERATIONS,
                    salt: salt.to_vec(),
                    salted_password: key.to_vec(),
                }
            }
        };
        Ok(Password::new(Some(secret.salt), secret.salted_password))
    }
}

/// The salt shown for an unknown user `name`: stable for the life of the
/// process, unpredictable without its random key.
fn mock_salt(name: &str) -> [u8; 16] {
    static KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let mac = gen_salted_password(name, key, 1);
    let mut salt = [0u8; 16];
    for (s, m) in salt.iter_mut().zip(mac) {
        *s = m;
    }
    salt
}

/// The error a refused login gets, as PostgreSQL words it.
pub fn auth_failed(user: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        "28P01".to_string(),
        format!("password authentication failed for user \"{user}\""),
    )))
}

/// `crmdb user add`: write (or replace) `name` with `role` and a new secret
/// for `password` into the config file at `path` (created if missing). Other
/// sections and keys of the file are kept.
pub fn add_user(path: &Path, name: &str, role: Role, password: &str) -> Result<()> {
    if name.is_empty() || name.chars().any(|c| c.is_control()) {
        return Err(Error::Usage(format!("invalid user name '{name}'")));
    }
    if password.is_empty() {
        return Err(Error::Usage("empty password".to_string()));
    }
    let text = if path.exists() {
        std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?
    } else {
        String::new()
    };
    let mut doc: toml::Table = toml::from_str(&text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let server = doc
        .entry("server")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let server = server.as_table_mut().ok_or_else(|| Error::Config {
        path: path.to_path_buf(),
        reason: "[server] is not a table".to_string(),
    })?;
    let users = server
        .entry("users")
        .or_insert_with(|| toml::Value::Array(Vec::new()));
    let users = users.as_array_mut().ok_or_else(|| Error::Config {
        path: path.to_path_buf(),
        reason: "server.users is not a list".to_string(),
    })?;
    users.retain(|u| u.get("name").and_then(|n| n.as_str()) != Some(name));
    let mut entry = toml::Table::new();
    entry.insert("name".into(), toml::Value::String(name.to_string()));
    entry.insert(
        "role".into(),
        toml::Value::String(role.as_str().to_string()),
    );
    entry.insert(
        "secret".into(),
        toml::Value::String(Secret::derive(password).to_string()),
    );
    users.push(toml::Value::Table(entry));
    let out = toml::to_string_pretty(&doc).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, out).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(())
}

/// Decode the body of a client's first SASL message (SASLInitialResponse:
/// mechanism name, NUL, Int32 length or −1, data), or say what is wrong.
///
/// pgwire 0.41 decodes this message by trusting its length field, and a
/// length beyond the body (or a body cut before it) panics the connection's
/// task; crmdb decodes it here first and refuses a malformed one with
/// 08P01, as PostgreSQL does.
pub fn sasl_initial_response(body: &[u8]) -> std::result::Result<SASLInitialResponse, String> {
    let nul = body
        .iter()
        .position(|&b| b == 0)
        .ok_or("the mechanism name is not NUL-terminated")?;
    let mechanism = std::str::from_utf8(&body[..nul])
        .map_err(|_| "the mechanism name is not valid UTF-8".to_string())?;
    let rest = &body[nul + 1..];
    let len_bytes: [u8; 4] = rest
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("the message ends before its data length")?;
    let data = &rest[4..];
    let data = match i32::from_be_bytes(len_bytes) {
        -1 => None,
        n if usize::try_from(n).ok() == Some(data.len()) => {
            Some(bytes::Bytes::copy_from_slice(data))
        }
        n => {
            return Err(format!(
                "its data length {n} does not match the {} bytes that follow",
                data.len()
            ));
        }
    };
    Ok(SASLInitialResponse::new(mechanism.to_string(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_bad_ones_are_errors() {
        let s = Secret::derive("pw");
        let text = s.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:"));
        assert!(!text.contains("pw$"));
        assert_eq!(Secret::parse(&text), Ok(s.clone()));
        // same password, new salt: a different secret
        assert_ne!(Secret::derive("pw").salt, s.salt);
        assert!(
            Secret::parse("md5abc")
                .unwrap_err()
                .contains("does not start")
        );
        assert!(
            Secret::parse("SCRAM-SHA-256$4096:$")
                .unwrap_err()
                .contains("empty salt")
        );
        assert!(
            Secret::parse("SCRAM-SHA-256$10:AAAA$AAAA")
                .unwrap_err()
                .contains("4096")
        );
        assert!(
            Secret::parse("SCRAM-SHA-256$4096:!!$AAAA")
                .unwrap_err()
                .contains("base64")
        );
    }

    #[test]
    fn sasl_initial_responses_are_decoded_or_refused_without_panicking() {
        let mut ok = b"SCRAM-SHA-256\0".to_vec();
        ok.extend(5i32.to_be_bytes());
        ok.extend(b"n,,n=");
        let m = sasl_initial_response(&ok).unwrap();
        assert_eq!(m.auth_method, "SCRAM-SHA-256");
        assert_eq!(m.data.as_deref(), Some(&b"n,,n="[..]));
        let mut none = b"SCRAM-SHA-256\0".to_vec();
        none.extend((-1i32).to_be_bytes());
        assert_eq!(sasl_initial_response(&none).unwrap().data, None);
        let mut huge = b"SCRAM-SHA-256\0".to_vec();
        huge.extend(327_604_531i32.to_be_bytes());
        huge.extend(b"n,,n=");
        assert_eq!(
            sasl_initial_response(&huge).unwrap_err(),
            "its data length 327604531 does not match the 5 bytes that follow"
        );
        let mut negative = b"SCRAM-SHA-256\0".to_vec();
        negative.extend((-7i32).to_be_bytes());
        assert!(sasl_initial_response(&negative).is_err());
        assert_eq!(
            sasl_initial_response(b"SCRAM-SHA-256\0\0\0").unwrap_err(),
            "the message ends before its data length"
        );
        assert_eq!(
            sasl_initial_response(b"SCRAM-SHA-256").unwrap_err(),
            "the mechanism name is not NUL-terminated"
        );
        assert!(sasl_initial_response(b"\xff\0\0\0\0\0").is_err());
    }

    #[test]
    fn an_unknown_user_gets_the_same_salt_every_time() {
        assert_eq!(mock_salt("mallory"), mock_salt("mallory"));
        assert_ne!(mock_salt("mallory"), mock_salt("eve"));
    }

    #[test]
    fn add_user_writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crmdb.toml");
        std::fs::write(&path, "[engine]\nbatch_size = 1024\n").unwrap();
        add_user(&path, "alice", Role::Analyst, "s3cret").unwrap();
        add_user(&path, "alice", Role::Viewer, "other").unwrap();
        add_user(&path, "bob", Role::Admin, "x").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cret"));
        let config = crate::config::Config::from_file(&path).unwrap();
        assert_eq!(config.engine.batch_size, 1024);
        assert_eq!(config.server.users.len(), 2);
        assert_eq!(config.server.user("alice").unwrap().role, Role::Viewer);
        validate_users(&config.server).unwrap();
    }
}
