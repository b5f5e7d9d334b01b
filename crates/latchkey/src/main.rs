//! The `latchkey` binary: runs the server (`serve`), administers it over its
//! HTTP API, gets access tokens (`token`) and checks them and API keys (`verify`).

mod cli;
mod client;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let error_code = commands::error_exit_code(&cli.command);
    match commands::run(cli).await {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` puts the whole cause chain on one line. No message is
            // built from a credential, so none can appear here.
            eprintln!("error: {}", output::one_line(&format!("{err:#}")));
            ExitCode::from(error_code)
        }
    }
}
