//! Command-line interface: one clap `Args` struct per subcommand, and
//! [`run`], which dispatches to the library.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Config;
use crate::engine::Engine;
use crate::error::Error;
use crate::ingest::{Format, IngestOptions, ingest_files};
use crate::output::OutputFormat;
use crate::store::{Store, maintenance};

/// `println!` that returns the write error instead of panicking, so that
/// `crmdb tables | head -1` ends quietly (see `main`'s broken-pipe case).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

/// crmdb — an embedded analytical datastore for retail CRM data.
#[derive(Debug, Parser)]
#[command(name = "crmdb", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Data directory (one Delta table per canonical table).
    #[arg(
        long,
        global = true,
        env = "CRMDB_DATA",
        default_value = "./crmdb-data",
        value_name = "DIR"
    )]
    pub data: PathBuf,

    /// Configuration file (default: crmdb.toml in the data directory, if present).
    #[arg(long, global = true, env = "CRMDB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a data directory with every canonical table (idempotent).
    Init,
    /// Load CSV, JSON lines or Parquet files into a table, atomically.
    Ingest(IngestArgs),
    /// Run SQL: a query argument, a file, or an interactive prompt.
    Sql(SqlArgs),
    /// List the tables with their row counts and Delta versions.
    Tables,
    /// Serve SQL over the PostgreSQL wire protocol (psql, BI tools, drivers).
    Serve(crate::server::ServeArgs),
    /// Manage the server's users in crmdb.toml.
    User(crate::server::UserArgs),
    /// Write synthetic CRM data (all six tables) and optionally load it.
    Generate(GenerateArgs),
    /// Materialise `customer_metrics` into `customer_snapshots` for one date.
    Refresh(RefreshArgs),
    /// Export jobs of crmdb.toml: run one now, list them, show their history.
    Export(crate::export::ExportArgs),
    /// Compact small files into larger ones (Delta OPTIMIZE); rows unchanged.
    Compact(CompactArgs),
    /// Delete files no recent table version needs (Delta VACUUM).
    Vacuum(VacuumArgs),
    /// Copy the whole store, each table at one committed version, into a new directory.
    Backup(BackupArgs),
    /// Replace the store at --data with a backup made by `crmdb backup`.
    Restore(RestoreArgs),
}

/// `crmdb compact [TABLE...]`
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Tables to compact (default: every table of the store).
    pub tables: Vec<String>,
}

/// `crmdb vacuum [TABLE...] [--retain-hours H] [--dry-run] [--full]`
#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// Tables to vacuum (default: every table of the store).
    pub tables: Vec<String>,
    /// Keep files removed from a table less than this many hours ago. Below
    /// the default, queries still reading an older version (and time travel
    /// to it) can fail on missing files.
    #[arg(long, value_name = "H", default_value_t = crate::store::maintenance::DEFAULT_RETAIN_HOURS)]
    pub retain_hours: u64,
    /// List the files that would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete files no version refers to (left by interrupted loads)
    /// whose modification time is older than the retention.
    #[arg(long)]
    pub full: bool,
}

/// `crmdb backup DIR`
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the backup: a new or empty directory.
    pub dir: PathBuf,
}

/// `crmdb restore DIR [--force]`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `crmdb backup`.
    pub dir: PathBuf,
    /// Replace an existing store at --data (its contents are lost).
    #[arg(long)]
    pub force: bool,
}

/// `crmdb refresh [--as-of DATE]`
#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// The snapshot date (YYYY-MM-DD); default: `[crm] as_of`, else today (UTC).
    #[arg(long, value_name = "DATE")]
    pub as_of: Option<chrono::NaiveDate>,
}

/// `crmdb generate --customers N --seed S --out DIR`
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Number of customers.
    #[arg(long, default_value_t = 10_000)]
    pub customers: u64,
    /// Random seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// File format.
    #[arg(long, value_enum, default_value = "csv")]
    pub format: crate::generate::OutputFormat,
    /// Last day of the history (YYYY-MM-DD).
    #[arg(long, default_value = "2026-06-30")]
    pub end_date: chrono::NaiveDate,
    /// Years of history.
    #[arg(long, default_value_t = 3)]
    pub years: u32,
    /// Load the generated files into this data directory (created if needed).
    #[arg(long, value_name = "DATA_DIR")]
    pub load: Option<PathBuf>,
}

/// `crmdb ingest TABLE FILE...`
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Target table (customers, orders, order_items, interactions, promotions, promotion_exposures).
    pub table: String,
    /// Input files; the format comes from the extension unless --format is given.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Input format (default: from the file extension).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// CSV field delimiter (one character; `\t` for tab).
    #[arg(long, default_value = ",")]
    pub delimiter: String,
    /// Skip input columns the table does not have instead of failing.
    #[arg(long)]
    pub ignore_unknown: bool,
    /// Write bad rows (with their reasons) to this CSV file and load the good rows.
    #[arg(long, value_name = "PATH")]
    pub reject_file: Option<PathBuf>,
}

/// `crmdb sql [QUERY]`
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// SQL to run (several statements separated by ';' are allowed).
    pub query: Option<String>,
    /// Read SQL from a file ('-' for standard input).
    #[arg(short, long, value_name = "FILE", conflicts_with = "query")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Query the bundled sample data (loaded into a temporary store) instead of --data.
    #[arg(long)]
    pub demo: bool,
    /// Print each statement's time (planning and execution into memory, not
    /// printing) to standard error: `-- statement N: R rows in S s`.
    #[arg(long)]
    pub timing: bool,
}

fn parse_delimiter(s: &str) -> Result<u8, Error> {
    match s {
        "\\t" | "tab" | "\t" => Ok(b'\t'),
        _ if s.len() == 1 && s.is_ascii() => Ok(s.as_bytes()[0]),
        _ => Err(Error::Usage(format!(
            "--delimiter must be a single ASCII character, got {s:?}"
        ))),
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Arc<Config>> {
    Ok(Arc::new(Config::load(cli.config.as_deref(), &cli.data)?))
}

async fn open_engine(cli: &Cli) -> anyhow::Result<Engine> {
    let store = Store::open(&cli.data).await?;
    let config = load_config(cli)?;
    Ok(Engine::open(store, config).await?)
}

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init => {
            let store = Store::init(&cli.data).await?;
            outln!("initialised crmdb store at {}", store.path().display());
            Ok(())
        }
        Command::Ingest(args) => ingest(&cli, args).await,
        Command::Sql(args) => sql(&cli, args).await,
        Command::Tables => tables(&cli).await,
        Command::Serve(args) => crate::server::serve(&cli, args).await,
        Command::User(args) => crate::server::user(&cli, args),
        Command::Generate(args) => generate(args).await,
        Command::Refresh(args) => refresh(&cli, args).await,
        Command::Export(args) => crate::export::cli(&cli, args).await,
        Command::Compact(args) => compact(&cli, args).await,
        Command::Vacuum(args) => vacuum(&cli, args).await,
        Command::Backup(args) => backup(&cli, args).await,
        Command::Restore(args) => restore(&cli, args).await,
    }
}

async fn compact(cli: &Cli, args: &CompactArgs) -> anyhow::Result<()> {
    let store = Store::open(&cli.data).await?;
    for table in store.resolve_tables(&args.tables)? {
        let report = maintenance::compact(&store, &table).await?;
        outln!("{report}");
    }
    Ok(())
}

async fn vacuum(cli: &Cli, args: &VacuumArgs) -> anyhow::Result<()> {
    let store = Store::open(&cli.data).await?;
    let tables = store.resolve_tables(&args.tables)?;
    if args.retain_hours < maintenance::DEFAULT_RETAIN_HOURS && !args.dry_run {
        eprintln!(
            "warning: --retain-hours {} is below the default {} h: files replaced less than {} h \
             ago are deleted too, so a query still reading an older table version (or time \
             travel to one) can fail on a missing file",
            args.retain_hours,
            maintenance::DEFAULT_RETAIN_HOURS,
            maintenance::DEFAULT_RETAIN_HOURS
        );
    }
    let opts = maintenance::VacuumOptions {
        retain_hours: args.retain_hours,
        dry_run: args.dry_run,
        full: args.full,
    };
    for table in tables {
        let report = maintenance::vacuum(&store, &table, &opts).await?;
        outln!("{report}");
    }
    Ok(())
}

async fn backup(cli: &Cli, args: &BackupArgs) -> anyhow::Result<()> {
    let store = Store::open(&cli.data).await?;
    let start = Instant::now();
    let copies = maintenance::backup(&store, &args.dir).await?;
    for copy in &copies {
        outln!("{copy}");
    }
    eprintln!(
        "backup of {} written to {} in {:.2} s",
        store.path().display(),
        args.dir.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn restore(cli: &Cli, args: &RestoreArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let copies = maintenance::restore(&args.dir, &cli.data, args.force).await?;
    for copy in &copies {
        outln!("{copy}");
    }
    eprintln!(
        "restored {} into {} in {:.2} s",
        args.dir.display(),
        cli.data.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn ingest(cli: &Cli, args: &IngestArgs) -> anyhow::Result<()> {
    let store = Store::open(&cli.data).await?;
    let opts = IngestOptions {
        delimiter: parse_delimiter(&args.delimiter)?,
        ignore_unknown: args.ignore_unknown,
        reject_file: args.reject_file.clone(),
        format: args.format,
        ..IngestOptions::default()
    };
    let progress = if std::io::stderr().is_terminal() {
        let pb = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_message(format!("loading {}", args.table));
        pb
    } else {
        ProgressBar::hidden()
    };
    let start = Instant::now();
    let report = ingest_files(&store, &args.table, &args.files, &opts, &progress).await?;
    let secs = start.elapsed().as_secs_f64();
    outln!("{report}");
    eprintln!(
        "{} rows in {secs:.2} s ({:.0} rows/s)",
        report.rows_read,
        report.rows_read as f64 / secs.max(1e-9)
    );
    if report.rejected > 0
        && let Some(p) = &args.reject_file
    {
        {
            eprintln!(
                "{} rejected row(s) written to {}",
                report.rejected,
                p.display()
            );
        }
    }
    Ok(())
}

async fn sql(cli: &Cli, args: &SqlArgs) -> anyhow::Result<()> {
    let (_demo_dir, engine) = if args.demo {
        let (dir, engine) = crate::demo::open_demo()
            .await
            .context("loading the sample data")?;
        (Some(dir), engine)
    } else {
        (None, open_engine(cli).await?)
    };
    let ctx = engine.session();
    let text = match (&args.query, &args.file) {
        (Some(q), _) => Some(q.clone()),
        (None, Some(f)) if f.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading SQL from standard input")?;
            Some(s)
        }
        (None, Some(f)) => Some(std::fs::read_to_string(f).map_err(|e| Error::io(f, e))?),
        (None, None) if !std::io::stdin().is_terminal() => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading SQL from standard input")?;
            Some(s)
        }
        (None, None) => None,
    };
    match text {
        Some(sql) => {
            let mut stdout = std::io::stdout().lock();
            if args.timing {
                let mut stderr = std::io::stderr().lock();
                crate::shell::run_script_timed(&ctx, &sql, args.format, &mut stdout, &mut stderr)
                    .await?;
            } else {
                crate::shell::run_script(&ctx, &sql, args.format, &mut stdout).await?;
            }
        }
        None => crate::shell::interactive(&ctx, args.format).await?,
    }
    Ok(())
}

async fn tables(cli: &Cli) -> anyhow::Result<()> {
    let store = Store::open(&cli.data).await?;
    outln!("{:<22} {:>12} {:>8}", "table", "rows", "version");
    for def in crate::store::schema::TABLES {
        let table = store.table(def.name).await?;
        let rows: usize = table
            .snapshot()?
            .log_data()
            .iter()
            .filter_map(|f| f.num_records())
            .sum();
        outln!(
            "{:<22} {:>12} {:>8}",
            def.name,
            rows,
            table.version().unwrap_or(0)
        );
    }
    Ok(())
}

async fn refresh(cli: &Cli, args: &RefreshArgs) -> anyhow::Result<()> {
    let engine = open_engine(cli).await?;
    let start = Instant::now();
    let report = crate::views::snapshot::refresh(&engine, args.as_of).await?;
    outln!("{report}");
    eprintln!("in {:.2} s", start.elapsed().as_secs_f64());
    Ok(())
}

async fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let mut opts = crate::generate::GenerateOptions::new(args.customers, args.seed, &args.out);
    opts.format = args.format;
    opts.end_date = args.end_date;
    opts.years = args.years;
    let start = Instant::now();
    let summary = crate::generate::generate(&opts, &|_, _| {})?;
    for (table, rows, path, bytes) in &summary.tables {
        outln!(
            "{table:<22} {rows:>12} rows {bytes:>14} bytes  {}",
            path.display()
        );
    }
    eprintln!("generated in {:.1} s", start.elapsed().as_secs_f64());
    if let Some(data) = &args.load {
        let store = Store::init(data).await?;
        let hidden = ProgressBar::hidden();
        for (table, _, path, _) in &summary.tables {
            let report = ingest_files(
                &store,
                table,
                std::slice::from_ref(path),
                &IngestOptions::default(),
                &hidden,
            )
            .await?;
            outln!("{report}");
        }
    }
    Ok(())
}
