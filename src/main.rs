//! The `crmdb` binary: parse the command line, set up logging, run.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc rather than the system allocator: loads and scans allocate and
/// free many column buffers above glibc's mmap threshold, and with glibc each
/// of them came back as fresh pages to be faulted in and zeroed (a third of
/// a Parquet load's time in `clear_page`, measured with perf).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = crmdb::cli::Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn,buoyant_kernel=off,deltalake_core::operations::merge=error",
        1 => "info,buoyant_kernel=warn",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // SQL planning recurses over the expression tree; a large stack
        // (reserved, committed only as used) keeps long generated filters
        // within reach, and the operator limit of the server's rewrite
        // refuses deeper ones before they are planned.
        .thread_stack_size(crmdb::server::rewrite::PLANNER_STACK_BYTES)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crmdb::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output went away (`crmdb sql … | head`): stop
        // quietly with the status a shell gives a process killed by SIGPIPE.
        Err(e) if broken_pipe(&e) => std::process::ExitCode::from(141),
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `e` and its causes, leaving out a cause whose text the message already
/// carries (DataFusion repeats its parser error as its source, for one).
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let df = cause
            .downcast_ref::<datafusion::error::DataFusionError>()
            .or(match cause.downcast_ref::<crmdb::error::Error>() {
                Some(crmdb::error::Error::DataFusion(df)) => Some(df),
                _ => None,
            });
        let part = match df {
            // "SQL error: ParserError(\"…\")" says it in Debug form.
            Some(datafusion::error::DataFusionError::SQL(parser, _)) => parser.to_string(),
            _ => cause.to_string(),
        };
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// Whether `e` was caused by writing to a closed pipe.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
