//! PostgreSQL wire-protocol front end (`crmdb serve`), built on
//! datafusion-postgres / datafusion-pg-catalog / pgwire.
//!
//! What crmdb adds around the library:
//! - one DataFusion session per connection (from [`Engine::session`]), so a
//!   `SET` never reaches another connection;
//! - SCRAM-SHA-256 against salted secrets in crmdb.toml ([`auth`]), `trust`
//!   only on loopback, TLS that stops the server when it cannot load,
//!   `require_tls`;
//! - roles ([`hooks::GateHook`]): admin / analyst / viewer, viewer reading
//!   `customers` with name, phone and email masked ([`masking`]);
//! - `statement_timeout` and CancelRequest applied while rows stream, not only
//!   while planning ([`limits`]); `max_connections` answered with 53300;
//! - PostgreSQL 16 version strings, `current_setting()`, the real
//!   `current_user` ([`functions`]), SAVEPOINT accepted;
//! - primary keys, numeric typmods and array-typed key columns in
//!   pg_catalog ([`catalog`]), and the rewrites and functions drivers'
//!   catalog queries need ([`rewrite`], [`srf`]).

pub mod auth;
pub mod catalog;
pub mod config;
pub mod copy;
pub mod functions;
pub mod hooks;
pub mod limits;
pub mod masking;
pub mod procs;
pub mod rewrite;
pub mod srf;
pub mod wire;

use std::collections::HashMap;
use std::fmt::Debug;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{
    PgCatalogContextProvider, Role as PgRole,
};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, SinkExt, StreamExt};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, METADATA_USER, PgWireConnectionState,
    PgWireServerHandlers, PidSecretKeyGenerator, RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::data::DataRow;
use pgwire::messages::startup::PasswordMessageFamily;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::tokio_rustls::TlsAcceptor;
use pgwire::tokio::tokio_rustls::rustls;
use pgwire::types::format::FormatOptions;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use self::auth::{Secret, UserSource};
use self::config::{AuthMode, Role, ServerConfig, UserEntry};
use self::functions::SessionInfo;
use self::hooks::GateHook;
use self::limits::{CancelRegistry, Limits, Slots};
use crate::cli::Cli;
use crate::engine::{CATALOG, Engine};
use crate::error::{Error, Result};
use crate::plans::PlanCache;

/// The password of the three demo users (`admin`, `analyst`, `viewer`).
pub const DEMO_PASSWORD: &str = "crmdb-demo";

/// `crmdb serve`
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Listen address (default: server.listen of crmdb.toml, else 127.0.0.1:5433).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Serve the bundled sample data from a temporary store, with demo users
    /// admin / analyst / viewer (password `crmdb-demo`).
    #[arg(long)]
    pub demo: bool,
    /// TLS certificate chain (PEM); with --tls-key enables TLS.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM, PKCS#8 or RSA or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Refuse clients that do not use TLS.
    #[arg(long)]
    pub require_tls: bool,
    /// Most concurrent connections (default: server.max_connections).
    #[arg(long)]
    pub max_connections: Option<usize>,
}

/// `crmdb user add NAME --role ROLE`
#[derive(Debug, Clone, clap::Args)]
pub struct UserArgs {
    /// What to do with the user.
    #[command(subcommand)]
    pub action: UserAction,
}

/// Subcommands of `crmdb user`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum UserAction {
    /// Add a user (or replace its role and password) in crmdb.toml.
    Add {
        /// Login name.
        name: String,
        /// admin (load and change data), analyst (read), viewer (read, personal data masked).
        #[arg(long, value_enum)]
        role: Role,
        /// Read the password from standard input (first line) instead of a prompt.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Run `crmdb user ...`: writes the SCRAM secret into the config file
/// (`--config`, else `<data dir>/crmdb.toml`).
pub fn user(cli: &Cli, args: &UserArgs) -> anyhow::Result<()> {
    let UserAction::Add {
        name,
        role,
        password_stdin,
    } = &args.action;
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| cli.data.join(crate::config::Config::FILE_NAME));
    let password = read_password(*password_stdin)?;
    auth::add_user(&path, name, *role, &password)?;
    println!("user {name} ({role}) written to {}", path.display());
    Ok(())
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !from_stdin && stdin.is_terminal() {
        eprint!("password for the new user (input is shown): ");
    }
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        anyhow::bail!("empty password");
    }
    Ok(password)
}

/// Run `crmdb serve` until Ctrl-C.
pub async fn serve(cli: &Cli, args: &ServeArgs) -> anyhow::Result<()> {
    let (_demo_dir, engine, mut server) = if args.demo {
        let (dir, engine) = crate::demo::open_demo()
            .await
            .context("loading the sample data")?;
        (Some(dir), engine, demo_server_config()?)
    } else {
        let store = crate::store::Store::open(&cli.data).await?;
        let config = Arc::new(crate::config::Config::load(
            cli.config.as_deref(),
            &cli.data,
        )?);
        let server = config.server.clone();
        (None, Engine::open(store, config).await?, server)
    };
    if let Some(listen) = &args.listen {
        server.listen = listen.clone();
    }
    if args.tls_cert.is_some() {
        server.tls_cert = args.tls_cert.clone();
        server.tls_key = args.tls_key.clone();
    }
    server.require_tls |= args.require_tls;
    if let Some(n) = args.max_connections {
        server.max_connections = n;
    }
    let running = Server::start(engine.clone(), server.clone()).await?;
    // scheduled exports (crate::export) run in the background until shutdown
    let _exports = crate::export::start_scheduler(&engine)?;
    // `[crm] refresh_schedule`: customer_snapshots on a schedule
    let _refresh = crate::views::snapshot::RefreshSchedule::from_config(
        &engine,
        Arc::new(crate::export::scheduler::SystemClock),
    )?
    .map(|schedule| AbortOnDrop(schedule.spawn()));
    let addr = running.local_addr();
    println!("crmdb is listening on {addr} (PostgreSQL 16 protocol, database '{CATALOG}')");
    if args.demo {
        println!();
        println!("demo users: admin, analyst, viewer — password {DEMO_PASSWORD}");
        println!("  postgresql://analyst:{DEMO_PASSWORD}@{addr}/{CATALOG}");
        println!("  psql \"postgresql://analyst:{DEMO_PASSWORD}@{addr}/{CATALOG}\"");
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!("shutting down");
    running.stop();
    Ok(())
}

/// The server section of the demo: three users with [`DEMO_PASSWORD`].
pub fn demo_server_config() -> Result<ServerConfig> {
    let users = [Role::Admin, Role::Analyst, Role::Viewer]
        .into_iter()
        .map(|role| UserEntry {
            name: role.as_str().to_string(),
            role,
            secret: Secret::derive(DEMO_PASSWORD).to_string(),
        })
        .collect();
    Ok(ServerConfig {
        users,
        ..ServerConfig::default()
    })
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting connections (open connections end with their tasks).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Everything connections share.
struct Shared {
    engine: Engine,
    /// The primary-key indexes listed in pg_catalog, for `pg_get_indexdef`.
    indexes: Arc<catalog::IndexDefs>,
    config: ServerConfig,
    users: Arc<Vec<UserEntry>>,
    default_timeout: Option<Duration>,
    connections: Arc<ConnectionManager>,
    cancels: Arc<CancelRegistry>,
    /// Execution slots of statements that read store tables or views.
    slots: Arc<Slots>,
    scram_iterations: usize,
    pids: Arc<RandomPidSecretKeyGenerator>,
    /// Parses as datafusion-postgres does, for the plan cache.
    parser: Arc<PostgresCompatibilityParser>,
}

/// The server entry point used by `crmdb serve` and by tests.
pub struct Server;

impl Server {
    /// Check the configuration, bind, and serve in a background task.
    /// Fails (never falls back) on a TLS setting that cannot be loaded, a
    /// non-loopback address without authentication, or bad user secrets.
    pub async fn start(engine: Engine, config: ServerConfig) -> Result<RunningServer> {
        let default_timeout = config.default_statement_timeout().map_err(Error::Usage)?;
        auth::validate_users(&config)?;
        let addr: SocketAddr = tokio::net::lookup_host(&config.listen)
            .await
            .map_err(|e| Error::Usage(format!("server.listen = '{}': {e}", config.listen)))?
            .next()
            .ok_or_else(|| {
                Error::Usage(format!(
                    "server.listen = '{}' resolves to no address",
                    config.listen
                ))
            })?;
        if config.auth == AuthMode::Trust && !addr.ip().is_loopback() {
            return Err(Error::Usage(format!(
                "refusing to listen on {addr} without authentication: auth = \"trust\" is allowed only on a loopback address"
            )));
        }
        if config.auth == AuthMode::ScramSha256 && config.users.is_empty() {
            return Err(Error::Usage(
                "no users configured: add one with `crmdb user add NAME --role ROLE` (or use `crmdb serve --demo`)".into(),
            ));
        }
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(load_tls(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(Error::Usage(
                    "TLS needs both a certificate and a key".into(),
                ));
            }
        };
        if config.require_tls && tls.is_none() {
            return Err(Error::Usage(
                "require_tls is set but no TLS certificate and key are configured".into(),
            ));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(PathBuf::from(addr.to_string()), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io(PathBuf::from(addr.to_string()), e))?;
        // A second server over the same engine keeps the first one's index
        // list: both answer from the one pg_catalog registered last.
        let indexes = engine
            .catalog_list()
            .catalog(CATALOG)
            .and_then(|c| c.schema("pg_catalog"))
            .and_then(|s| {
                let any: &dyn std::any::Any = s.as_ref();
                any.downcast_ref::<catalog::PgCatalogOverlay>()
                    .map(|o| o.indexes())
            })
            .unwrap_or_default();
        // Register pg_catalog (with crmdb's amendments) in the shared catalog
        // once; sessions add its functions (see `with_pg_functions`).
        setup_pg_catalog(&engine.session(), CATALOG, RoleCatalog::new(&config.users))
            .map_err(|e| Error::DataFusion(*e))?;
        let crm = engine
            .catalog_list()
            .catalog(CATALOG)
            .ok_or_else(|| Error::Usage(format!("catalog {CATALOG} missing")))?;
        let library = crm
            .schema("pg_catalog")
            .ok_or_else(|| Error::Usage("pg_catalog was not registered".into()))?;
        crm.register_schema(
            "pg_catalog",
            Arc::new(catalog::PgCatalogOverlay::new(
                library,
                engine.catalog_list().clone(),
                indexes.clone(),
            )),
        )?;
        let tables: Vec<String> = crm
            .schema_names()
            .iter()
            .filter(|s| !matches!(s.as_str(), "pg_catalog" | "information_schema"))
            .filter_map(|s| crm.schema(s))
            .flat_map(|s| s.table_names())
            .collect();
        let active = config.active_statements();
        tracing::info!(
            slots = active,
            tables = tables.len(),
            "statements reading tables run at most {active} at a time"
        );
        let slots = Arc::new(Slots::new(active, tables));
        let shared = Arc::new(Shared {
            indexes,
            slots,
            users: Arc::new(config.users.clone()),
            engine,
            default_timeout,
            connections: Arc::new(ConnectionManager::new()),
            cancels: Arc::new(CancelRegistry::default()),
            scram_iterations: auth::ITERATIONS,
            parser: Arc::new(PostgresCompatibilityParser::new()),
            pids: Arc::new(RandomPidSecretKeyGenerator::default()),
            config,
        });
        let limiter = Arc::new(Semaphore::new(shared.config.max_connections.max(1)));
        tracing::info!(%addr, tls = tls.is_some(), "crmdb server listening");
        let task = tokio::spawn(accept_loop(listener, tls, shared, limiter));
        Ok(RunningServer { addr, task })
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    limiter: Arc<Semaphore>,
) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let tls = tls.clone();
        let permit = limiter.clone().try_acquire_owned();
        tokio::spawn(async move {
            match permit {
                Ok(_permit) => {
                    let handlers = Arc::new(Connection::new(shared));
                    if let Err(e) = wire::serve(socket, tls, handlers).await {
                        tracing::debug!(%peer, "connection ended with an error: {e}");
                    }
                }
                Err(_) => {
                    tracing::warn!(%peer, "connection refused: max_connections reached");
                    let _ = refuse_too_many(socket, tls).await;
                }
            }
        });
    }
}

/// Answer a connection over the limit with FATAL 53300, as PostgreSQL does
/// (after the startup packet, so clients show the message).
async fn refuse_too_many(
    socket: tokio::net::TcpStream,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let handlers = Arc::new(TooMany);
    wire::serve(socket, tls, handlers).await
}

struct TooMany;

#[async_trait]
impl StartupHandler for TooMany {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(_) = message {
            let info = ErrorInfo::new(
                "FATAL".into(),
                "53300".into(),
                "sorry, too many clients already".into(),
            );
            client
                .send(PgWireBackendMessage::ErrorResponse(info.into()))
                .await?;
            client.close().await?;
        }
        Ok(())
    }
}

impl PgWireServerHandlers for TooMany {
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::new(TooMany)
    }
}

fn load_tls(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bad = |path: &Path, reason: String| Error::Config {
        path: path.to_path_buf(),
        reason: format!("TLS: {reason}"),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(bad(cert, "no certificate found in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, e.to_string()))?;
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(cert, e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

/// Users as PostgreSQL roles, for `pg_roles` / psql `\du`.
#[derive(Debug, Clone)]
struct RoleCatalog {
    users: Arc<HashMap<String, Role>>,
}

impl RoleCatalog {
    fn new(users: &[UserEntry]) -> RoleCatalog {
        RoleCatalog {
            users: Arc::new(users.iter().map(|u| (u.name.clone(), u.role)).collect()),
        }
    }
}

#[async_trait]
impl PgCatalogContextProvider for RoleCatalog {
    async fn roles(&self) -> Vec<String> {
        let mut names: Vec<String> = self.users.keys().cloned().collect();
        names.sort();
        names
    }

    async fn role(&self, name: &str) -> Option<PgRole> {
        let role = *self.users.get(name)?;
        Some(PgRole {
            name: name.to_string(),
            is_superuser: role == Role::Admin,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: vec![],
            inherited_roles: vec![role.as_str().to_string()],
        })
    }
}

/// One client connection: its startup/auth state, and after login its own
/// DataFusion session.
struct Connection {
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    startup: Arc<Startup>,
}

/// Filled in when the login succeeds.
struct ConnState {
    info: Arc<SessionInfo>,
    /// A `COPY … FROM STDIN` waiting for its data.
    copy: Arc<copy::CopySlot>,
    service: OnceLock<Arc<DfSessionService>>,
    /// The session `service` runs statements in.
    session: OnceLock<Arc<SessionContext>>,
    /// Plans of this session's statement shapes.
    plans: PlanCache,
    limits: OnceLock<Limits>,
    /// The login was refused (FATAL sent, connection closing).
    refused: std::sync::atomic::AtomicBool,
    /// The client's first SASL message has been received.
    sasl_started: std::sync::atomic::AtomicBool,
}

impl ConnState {
    /// The logged-in session. pgwire answers a failed login (FATAL) by
    /// switching the connection to ReadyForQuery before it closes its write
    /// side, and keeps reading: a query sent after the refusal arrives here
    /// without a session and must not run anywhere.
    fn service(&self) -> PgWireResult<&Arc<DfSessionService>> {
        self.service
            .get()
            .ok_or_else(|| fatal("08P01", "the connection has not logged in".into()))
    }
}

impl Connection {
    fn new(shared: Arc<Shared>) -> Connection {
        let state = Arc::new(ConnState {
            info: SessionInfo::new(),
            copy: Arc::new(copy::CopySlot::default()),
            service: OnceLock::new(),
            session: OnceLock::new(),
            plans: PlanCache::default(),
            limits: OnceLock::new(),
            refused: std::sync::atomic::AtomicBool::new(false),
            sasl_started: std::sync::atomic::AtomicBool::new(false),
        });
        let params = Arc::new(server_parameters());
        let inner = match shared.config.auth {
            AuthMode::ScramSha256 => {
                let mut scram = ScramAuth::new(Arc::new(UserSource::new(shared.users.clone())));
                scram.set_iterations(shared.scram_iterations);
                Inner::Scram(
                    SASLAuthStartupHandler::new(params)
                        .with_scram(scram)
                        .with_pid_secret_key_generator(shared.pids.clone())
                        .with_connection_manager(shared.connections.clone()),
                )
            }
            AuthMode::Trust => Inner::Trust,
        };
        let startup = Arc::new(Startup {
            shared: shared.clone(),
            state: state.clone(),
            inner,
        });
        Connection {
            shared,
            state,
            startup,
        }
    }
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut p = DefaultServerParameterProvider::default();
    p.server_version = functions::SERVER_VERSION.to_string();
    p.is_superuser = false;
    p.date_style = "ISO, MDY".to_string();
    p
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::new(Queries {
            state: self.state.clone(),
            parser: self.shared.parser.clone(),
        })
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::new(Queries {
            state: self.state.clone(),
            parser: self.shared.parser.clone(),
        })
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(Cancels {
            shared: self.shared.clone(),
        })
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        Arc::new(copy::WireCopyHandler::new(
            self.state.copy.clone(),
            self.shared.engine.clone(),
        ))
    }
}

enum Inner {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Trust,
}

struct Startup {
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    inner: Inner,
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        code.into(),
        message,
    )))
}

#[async_trait]
impl StartupHandler for Startup {
    /// A refused login ends as in PostgreSQL: the FATAL ErrorResponse, then
    /// the server closes the connection. (Returned to pgwire, a FATAL error
    /// is followed by a ReadyForQuery that clients such as asyncpg trip
    /// over, and the connection would be left in the ready state.)
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        use std::sync::atomic::Ordering;
        if self.state.refused.load(Ordering::Acquire) {
            return Ok(());
        }
        match self.login(client, message).await {
            Err(PgWireError::UserError(info)) if info.is_fatal() => {
                self.state.refused.store(true, Ordering::Release);
                client
                    .send(PgWireBackendMessage::ErrorResponse((*info).into()))
                    .await?;
                client.close().await?;
                Ok(())
            }
            other => other,
        }
    }
}

impl Startup {
    async fn login<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            if self.shared.config.require_tls && !client.is_secure() {
                return Err(fatal(
                    "28000",
                    "this server requires TLS (sslmode=require)".into(),
                ));
            }
            if let Some(db) = startup.parameters.get("database")
                && db != CATALOG
                && db
                    != startup
                        .parameters
                        .get("user")
                        .map(String::as_str)
                        .unwrap_or_default()
            {
                return Err(fatal(
                    "3D000",
                    format!("database \"{db}\" does not exist (the database is \"{CATALOG}\")"),
                ));
            }
        }
        // The first password message of a SCRAM login is decoded here, not
        // by pgwire (see [`auth::sasl_initial_response`]).
        let message = match message {
            PgWireFrontendMessage::PasswordMessageFamily(PasswordMessageFamily::Raw(body))
                if matches!(self.inner, Inner::Scram(_))
                    && !self
                        .state
                        .sasl_started
                        .swap(true, std::sync::atomic::Ordering::AcqRel) =>
            {
                let msg = auth::sasl_initial_response(&body).map_err(|why| {
                    fatal("08P01", format!("malformed SASL initial response: {why}"))
                })?;
                PgWireFrontendMessage::PasswordMessageFamily(
                    PasswordMessageFamily::SASLInitialResponse(msg),
                )
            }
            other => other,
        };
        let result = match &self.inner {
            Inner::Scram(h) => h.on_startup(client, message).await,
            Inner::Trust => {
                // trust logs in at Startup; the session must exist before ReadyForQuery
                if let PgWireFrontendMessage::Startup(startup) = &message {
                    pgwire::api::auth::protocol_negotiation(client, startup).await?;
                    pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                    let (pid, key) = self.shared.pids.generate(client);
                    client.set_pid_and_secret_key(pid, key);
                    let user = startup.parameters.get("user").cloned().unwrap_or_default();
                    self.open_session(&user)
                        .await
                        .map_err(|e| fatal("XX000", e.to_string()))?;
                    pgwire::api::auth::finish_authentication(client, &server_parameters()).await?;
                }
                Ok(())
            }
        };
        if result.is_err() && matches!(self.inner, Inner::Scram(_)) {
            let user = client
                .metadata()
                .get(METADATA_USER)
                .cloned()
                .unwrap_or_default();
            tracing::info!(user = %user, "login failed");
            return Err(auth::auth_failed(&user));
        }
        result?;
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery)
            && self.state.service.get().is_none()
        {
            let user = client
                .metadata()
                .get(METADATA_USER)
                .cloned()
                .unwrap_or_default();
            self.open_session(&user)
                .await
                .map_err(|e| fatal("XX000", e.to_string()))?;
        }
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery)
            && self.state.limits.get().is_none()
        {
            let (pid, key) = client.pid_and_secret_key();
            let _ = self.state.limits.set(Limits::new(
                self.shared.cancels.register(pid, &key),
                self.shared.slots.clone(),
            ));
        }
        Ok(())
    }

    /// Build the logged-in user's session: engine session, pg_catalog
    /// functions, crmdb's functions, masking for viewers, the gate hook.
    async fn open_session(&self, user: &str) -> Result<()> {
        let role = match self.shared.users.iter().find(|u| u.name == user) {
            Some(u) => u.role,
            None if self.shared.config.auth == AuthMode::Trust => Role::Analyst,
            None => return Err(Error::PermissionDenied(format!("unknown user {user}"))),
        };
        if let Ok(mut u) = self.state.info.user.write() {
            *u = user.to_string();
        }
        let ctx = with_pg_functions(
            self.shared.engine.session(),
            RoleCatalog::new(&self.shared.config.users),
        )?;
        functions::register(&ctx, &self.state.info);
        ctx.register_udf(functions::get_indexdef(self.shared.indexes.clone()));
        ctx.register_udf(functions::col_description(self.shared.indexes.clone()));
        for f in procs::udfs() {
            ctx.register_udf(f);
        }
        let ctx = if role == Role::Viewer {
            masking::masked_session(ctx).await?
        } else {
            ctx
        };
        if let Some(t) = self.shared.default_timeout {
            self.state
                .info
                .set("statement_timeout", &format!("{}ms", t.as_millis()));
        }
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(GateHook::new(role, self.state.info.clone())),
            // COPY … TO 'file' (admins only, after the gate) through the atomic writer
            Arc::new(crate::export::copy::CopyToHook),
            // COPY … TO STDOUT (anyone) and COPY … FROM STDIN (admins, after the gate)
            Arc::new(copy::WireCopyHook::new(self.state.copy.clone())),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let ctx = Arc::new(ctx);
        let service = Arc::new(DfSessionService::new_with_hooks(ctx.clone(), hooks));
        let _ = self.state.session.set(ctx);
        let _ = self.state.service.set(service);
        tracing::info!(user, %role, "session opened");
        Ok(())
    }
}

/// `ctx` with datafusion-pg-catalog's functions and type planner. The
/// library's setup also registers a fresh pg_catalog schema; that goes to a
/// scratch catalog here, so the shared one (registered once by
/// [`Server::start`], with its OIDs) is never replaced by a connecting client.
fn with_pg_functions(ctx: SessionContext, roles: RoleCatalog) -> Result<SessionContext> {
    use datafusion::catalog::{
        CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    };
    use datafusion::execution::SessionStateBuilder;
    let scratch_catalogs = Arc::new(MemoryCatalogProviderList::new());
    scratch_catalogs.register_catalog(CATALOG.to_string(), Arc::new(MemoryCatalogProvider::new()));
    let scratch = SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(ctx.state())
            .with_catalog_list(scratch_catalogs.clone())
            .build(),
    );
    setup_pg_catalog(&scratch, CATALOG, roles).map_err(|e| Error::DataFusion(*e))?;
    // The scratch pg_catalog holds the scratch catalog list, which holds it:
    // a reference cycle that kept every session's copy of the pg_catalog
    // tables (about 5 MB) alive after its connection closed.
    if let Some(crm) = scratch_catalogs.catalog(CATALOG) {
        crm.deregister_schema("pg_catalog", true)?;
    }
    let state = SessionStateBuilder::new_from_existing(scratch.state())
        .with_catalog_list(ctx.state().catalog_list().clone())
        .build();
    Ok(SessionContext::new_with_state(state))
}

struct Cancels {
    shared: Arc<Shared>,
}

#[async_trait]
impl CancelHandler for Cancels {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.shared.cancels.cancel(request.pid, &request.secret_key);
        self.shared
            .connections
            .cancel(request.pid, &request.secret_key)
            .await;
    }
}

/// The query handlers of one connection: datafusion-postgres' service with
/// crmdb's limits around it.
struct Queries {
    state: Arc<ConnState>,
    parser: Arc<PostgresCompatibilityParser>,
}

impl Queries {
    fn service(&self) -> PgWireResult<&Arc<DfSessionService>> {
        self.state.service()
    }

    fn limits(&self) -> Limits {
        self.state.limits.get().cloned().unwrap_or_default()
    }

    /// Run a single query through the session's kept plans (see
    /// [`crate::plans`]); `None` when it is not one, and the service runs it.
    /// Anything but a query may change what plans depend on (settings,
    /// objects), so it empties the cache.
    async fn kept_plan<C: ClientInfo>(
        &self,
        client: &C,
        query: &str,
    ) -> PgWireResult<Option<Response>> {
        let Some(ctx) = self.state.session.get() else {
            return Ok(None);
        };
        let Ok(mut statements) = self.parser.parse(query) else {
            return Ok(None);
        };
        if statements.iter().any(|s| !matches!(s, Statement::Query(_))) {
            self.state.plans.clear();
        }
        // (a query that changes data, `WITH … INSERT`, has no shape: the
        // gate hook judges it on the usual path)
        let (Some(statement), None) = (statements.pop(), statements.pop()) else {
            return Ok(None);
        };
        let planned = self
            .state
            .plans
            .run(ctx, &statement)
            .await
            .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let Some(planned) = planned else {
            return Ok(None);
        };
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(arrow_pg::datatypes::arrow_schema_to_pg_fields(
            &planned.schema,
            &Format::UnifiedText,
            Some(options),
        )?);
        let encode = fields.clone();
        let rows = planned
            .stream
            .map(move |batch| {
                let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send + Sync> =
                    match batch {
                        Ok(batch) => arrow_pg::datatypes::encode_recordbatch(encode.clone(), batch),
                        Err(e) => Box::new(std::iter::once(Err(PgWireError::ApiError(e.into())))),
                    };
                futures::stream::iter(rows)
            })
            .flatten();
        Ok(Some(Response::Query(QueryResponse::new(fields, rows))))
    }

    fn timeout<C: ClientInfo>(&self, client: &C) -> Option<Duration> {
        // datafusion-postgres keeps `SET statement_timeout` in the metadata;
        // before any SET, the configured default applies.
        match client.metadata().get("statement_timeout_ms") {
            Some(ms) => ms
                .parse::<u64>()
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            None if self.state.info.setting("statement_timeout").as_deref() == Some("0") => None,
            None => self
                .state
                .info
                .setting("statement_timeout")
                .and_then(|s| config::parse_duration(&s).ok().flatten()),
        }
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let service = self.service()?.clone();
        rewrite::check_complexity(query).map_err(|e| hooks::pg_error("54001", e))?;
        let limits = self.limits();
        let guard = limits.start(self.timeout(client));
        let slot = limits.slot(&guard, query).await?;
        let rewritten = rewrite::rewrite(query);
        let query = rewritten.as_deref().unwrap_or(query);
        let responses = guard
            .run(async {
                if let Some(response) = self.kept_plan(client, query).await? {
                    return Ok(vec![response]);
                }
                SimpleQueryHandler::do_query(service.as_ref(), client, query).await
            })
            .await?;
        // A `SET statement_timeout` among the statements applies to the rows
        // that stream after it, so read the setting again.
        let guard = limits.start(self.timeout(client));
        Ok(responses
            .into_iter()
            .map(|r| guard.wrap(r, slot.clone()))
            .collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(Parser {
            state: self.state.clone(),
        })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let service = self.service()?.clone();
        if !matches!(
            &portal.statement.statement.1,
            Some((Statement::Query(_), _))
        ) {
            // settings or objects may change: kept plans depend on both
            self.state.plans.clear();
        }
        let limits = self.limits();
        let guard = limits.start(self.timeout(client));
        let slot = limits.slot(&guard, &portal.statement.statement.0).await?;
        let response = guard
            .run(ExtendedQueryHandler::do_query(
                service.as_ref(),
                client,
                portal,
                max_rows,
            ))
            .await?;
        Ok(guard.wrap(response, slot))
    }
}

/// Parses through the connection's datafusion-postgres parser, mapping errors
/// to SQLSTATEs.
struct Parser {
    state: Arc<ConnState>,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let service = self.state.service()?;
        rewrite::check_complexity(sql).map_err(|e| hooks::pg_error("54001", e))?;
        let rewritten = rewrite::rewrite(sql);
        let sql = rewritten.as_deref().unwrap_or(sql);
        let statement = service
            .query_parser()
            .parse_sql(client, sql, types)
            .await
            .map_err(limits::map_error)?;
        Ok(statement.map(|(text, parsed)| {
            (
                text,
                parsed.map(|(stmt, plan)| (stmt, typed_limit_placeholders(plan))),
            )
        }))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        let service = self.state.service()?;
        service.query_parser().get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&pgwire::api::portal::Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        let service = self.state.service()?;
        service
            .query_parser()
            .get_result_schema(stmt, column_format)
    }
}

/// `plan` with its untyped `LIMIT $n` / `OFFSET $n` placeholders typed
/// bigint, as PostgreSQL types them. DataFusion infers no type there, which
/// datafusion-postgres describes as unknown and then decodes as text, so a
/// driver's int (asyncpg's prepared `LIMIT $1`) failed.
fn typed_limit_placeholders(
    plan: datafusion::logical_expr::LogicalPlan,
) -> datafusion::logical_expr::LogicalPlan {
    use datafusion::arrow::datatypes::{DataType, Field};
    use datafusion::common::tree_node::Transformed;
    use datafusion::logical_expr::{Expr, LogicalPlan};
    let original = plan.clone();
    let typed = |e: Box<Expr>| -> (Box<Expr>, bool) {
        match *e {
            Expr::Placeholder(mut p) if p.field.is_none() => {
                p.field = Some(Arc::new(Field::new(&p.id, DataType::Int64, true)));
                (Box::new(Expr::Placeholder(p)), true)
            }
            other => (Box::new(other), false),
        }
    };
    plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::Limit(mut limit) => {
            let mut changed = false;
            if let Some(skip) = limit.skip.take() {
                let (e, c) = typed(skip);
                limit.skip = Some(e);
                changed |= c;
            }
            if let Some(fetch) = limit.fetch.take() {
                let (e, c) = typed(fetch);
                limit.fetch = Some(e);
                changed |= c;
            }
            Ok(if changed {
                Transformed::yes(LogicalPlan::Limit(limit))
            } else {
                Transformed::no(LogicalPlan::Limit(limit))
            })
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
    .unwrap_or(original)
}

/// Aborts a background task when dropped (when `serve` returns).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
