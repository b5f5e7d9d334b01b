//! The subcommands: one module per area, each turning parsed arguments into
//! requests to the server (or, for `serve`, into a running server) and output.

mod api_keys;
mod audit;
mod authorization;
mod identity_providers;
mod login;
mod members;
mod migration;
mod roles;
mod secrets;
mod serve;
mod signing_keys;
mod tenants;
mod token;
mod trusted_issuers;
mod users;
mod verify;
mod workspace;

use std::collections::HashSet;
use std::process::ExitCode;

use anyhow::bail;
use latchkey_types::Page;
use serde::de::DeserializeOwned;

use crate::cli::{AdminOpts, Cli, Command, PageArgs};
use crate::client::{Client, Response};
use crate::output::emit;

/// Runs the parsed command line and returns the exit status of a command
/// that finished (`verify` exits with 1 on an invalid verdict). An error is
/// reported by the caller with [`error_exit_code`].
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let result = match cli.command {
        Command::Verify(args) => return verify::run(args).await,
        Command::Serve(args) => serve::run(*args).await,
        Command::Workspace(args) => workspace::run(&Admin::new(args.admin)?).await,
        Command::Tenants(args) => tenants::run(&Admin::new(args.admin)?, args.command).await,
        Command::Users(args) => users::run(&Admin::new(args.admin)?, args.command).await,
        Command::Roles(args) => roles::run(&Admin::new(args.admin)?, args.command).await,
        Command::IdentityProviders(args) => {
            identity_providers::run(&Admin::new(args.admin)?, args.command).await
        }
        Command::TrustedIssuers(args) => {
            trusted_issuers::run(&Admin::new(args.admin)?, args.command).await
        }
        Command::SigningKeys(args) => {
            signing_keys::run(&Admin::new(args.admin)?, args.command).await
        }
        Command::Members(args) => members::run(&Admin::new(args.admin)?, args.command).await,
        Command::Secrets(args) => secrets::run(&Admin::new(args.admin)?, args.command).await,
        Command::Authorization(args) => {
            let admin = Admin::new(args.admin)?;
            authorization::run(&admin, &args.user, args.tenant).await
        }
        Command::ApiKeys(args) => api_keys::run(&Admin::new(args.admin)?, args.command).await,
        Command::Audit(args) => audit::run(&Admin::new(args.admin)?, args.query).await,
        Command::Import(args) => {
            let admin = Admin::new(args.admin)?;
            return migration::import(&admin, &args.file, args.dry_run, args.atomic).await;
        }
        Command::Export(args) => migration::export(&Admin::new(args.admin)?).await,
        Command::Token(args) => token::run(args).await,
        Command::Login(args) => login::login(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::Me(args) => login::me(args).await,
    };
    result.map(|()| ExitCode::SUCCESS)
}

/// The exit status for an error of `command`: 2 for `verify`, whose 1 means
/// "invalid", and 1 for everything else.
pub fn error_exit_code(command: &Command) -> u8 {
    match command {
        Command::Verify(_) => 2,
        _ => 1,
    }
}

/// An admin session: a client holding the admin key, and the output choice.
#[derive(Debug)]
pub(crate) struct Admin {
    client: Client,
    json: bool,
}

impl Admin {
    fn new(opts: AdminOpts) -> anyhow::Result<Admin> {
        Ok(Admin {
            client: Client::with_admin_key(&opts.url, opts.admin_key)?,
            json: opts.json,
        })
    }

    /// Prints one record: the raw body with `--json`, else `render` of it
    /// parsed as `T`.
    fn show<T: DeserializeOwned>(
        &self,
        resp: &Response,
        render: impl FnOnce(&T) -> String,
    ) -> anyhow::Result<()> {
        if self.json {
            emit(&resp.body)?;
        } else {
            emit(&render(&resp.parse::<T>()?))?;
        }
        Ok(())
    }

    /// Reports a change without a record to show (a delete): the raw body,
    /// if any, with `--json`, else `message`.
    fn done(&self, resp: &Response, message: &str) -> anyhow::Result<()> {
        if self.json {
            if !resp.body.trim().is_empty() {
                emit(&resp.body)?;
            }
        } else {
            emit(message)?;
        }
        Ok(())
    }

    /// Fetches a list (one page, or every page with `--all`) and prints it:
    /// the raw page with `--json` (with `--all`, one page holding every item
    /// and `"nextCursor": null`), else `render` of the items.
    async fn list<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        filters: &[(&str, Option<String>)],
        page: &PageArgs,
        render: impl FnOnce(&[T]) -> String,
    ) -> anyhow::Result<()> {
        let mut query = filters.to_vec();
        query.push(("limit", page.limit.map(|l| l.to_string())));
        query.push(("cursor", page.cursor.clone()));
        let first = self.client.get(segments, &query).await?;
        if !page.all {
            if self.json {
                emit(&first.body)?;
                return Ok(());
            }
            let page: Page<T> = first.parse()?;
            emit(&render(&page.data))?;
            if let Some(cursor) = page.next_cursor {
                eprintln!("More results: add --cursor {cursor}, or --all for every page.");
            }
            return Ok(());
        }

        let mut items: Vec<serde_json::Value> = Vec::new();
        let mut seen = HashSet::new();
        let mut resp = first;
        loop {
            let page: Page<serde_json::Value> = resp.parse()?;
            items.extend(page.data);
            let Some(cursor) = page.next_cursor else {
                break;
            };
            // A server that hands back a cursor it already gave would keep
            // this loop going forever.
            if !seen.insert(cursor.clone()) {
                bail!("the server returned the same cursor twice; stopping");
            }
            if let Some(slot) = query.iter_mut().find(|(k, _)| *k == "cursor") {
                slot.1 = Some(cursor);
            }
            resp = self.client.get(segments, &query).await?;
        }
        if self.json {
            let merged = serde_json::json!({ "data": items, "nextCursor": null });
            emit(&merged.to_string())?;
        } else {
            let typed = items
                .into_iter()
                .map(serde_json::from_value)
                .collect::<Result<Vec<T>, _>>()
                .map_err(|e| {
                    anyhow::anyhow!("the server's response is not what this version of latchkey expects ({e}); --json shows it as sent")
                })?;
            emit(&render(&typed))?;
        }
        Ok(())
    }
}

/// A JSON request body from a file, or from standard input for `-`.
pub(crate) fn read_json_file<T: DeserializeOwned>(
    file: &std::path::Path,
    what: &str,
) -> anyhow::Result<T> {
    use anyhow::Context as _;
    use std::io::Read as _;
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not {what}", file.display()))
}
