//! The `latchkey` binary: runs the server (`serve`), administers it over its
//! HTTP API, and gets access tokens (`token`).

mod cli;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` puts the whole cause chain on one line. No message is
            // built from a credential, so none can appear here.
            eprintln!("error: {}", output::one_line(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}
