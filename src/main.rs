//! The `crmdb` binary: parse the command line, set up logging, run.

use clap::Parser;
use tracing_subscriber::EnvFilter;

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
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
