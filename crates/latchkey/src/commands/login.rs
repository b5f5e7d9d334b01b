//! `latchkey login`, `logout` and `me`: a user (machine or person) logs in
//! through the login API with every factor the policy asks for, and the
//! session (its refresh token) is kept in a file only its owner can read.
//! Machines pass `--password-stdin` and `--totp-secret-file`; people are
//! asked.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use latchkey_core::login::totp;
use latchkey_core::Secret;
use latchkey_types::login::{Factor, LoginObject, Me};
use latchkey_types::oauth::TokenResponse;
use latchkey_types::Mode;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::cli::{LoginArgs, MeArgs, SessionArgs};
use crate::client::{ApiError, Client};
use crate::output::emit;

/// What the session file holds.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionFile {
    url: String,
    mode: Mode,
    user_id: String,
    session_id: String,
    access_token: String,
    refresh_token: String,
}

impl std::fmt::Debug for SessionFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionFile")
            .field("url", &self.url)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

fn session_path(args: &SessionArgs) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.session_file {
        return Ok(path.clone());
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| anyhow!("no HOME: pass --session-file"))?;
    Ok(base.join("latchkey").join("session.json"))
}

/// Writes the session file, readable and writable by its owner only.
fn save(path: &Path, session: &SessionFile) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(session)?;
    let temporary = path.with_extension("json.tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn load(path: &Path) -> anyhow::Result<SessionFile> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no session at {}: run `latchkey login` first",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a session file", path.display()))
}

/// Asks on the terminal without echo, or reads a line of standard input
/// when `from_stdin`.
fn secret_input(prompt: &str, from_stdin: bool) -> anyhow::Result<Secret> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let value = line.trim_end_matches(['\n', '\r']).to_owned();
        if value.is_empty() {
            bail!("standard input held no password");
        }
        return Ok(Secret::new(value));
    }
    if !std::io::stdin().is_terminal() {
        bail!("the login asks for a password: pass --password-stdin, or run in a terminal");
    }
    Ok(Secret::new(rpassword::prompt_password(prompt)?))
}

/// Asks for a code on the terminal.
fn code_input(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("the login asks for a code ({prompt}): run in a terminal");
    }
    eprint!("{prompt}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}

/// The factor to do next, among those offered: what the flags make
/// possible first, then what a person can answer.
fn next_factor(offered: &[Factor], args: &LoginArgs) -> Option<Factor> {
    let mut order = Vec::new();
    if args.password_stdin {
        order.push(Factor::Password);
    }
    if args.totp_secret_file.is_some() {
        order.push(Factor::Totp);
    }
    order.extend([
        Factor::Password,
        Factor::Totp,
        Factor::EmailCode,
        Factor::SmsCode,
        Factor::MagicLink,
        Factor::BackupCode,
    ]);
    order.into_iter().find(|f| offered.contains(f))
}

async fn call(
    client: &Client,
    method: Method,
    path: &[&str],
    body: serde_json::Value,
) -> anyhow::Result<LoginObject> {
    client.send(method, path, &[], Some(&body)).await?.parse()
}

/// `latchkey login`.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.url)?;
    let mode: Mode = args.mode.into();
    let mut body = json!({"mode": mode, "identifier": args.identifier});
    if let Some(t) = &args.tenant {
        body["tenantId"] = t.clone().into();
    }
    let mut login: LoginObject = client
        .send(Method::POST, &["auth", "logins"], &[], Some(&body))
        .await?
        .parse()?;
    let secret = login
        .secret
        .clone()
        .ok_or_else(|| anyhow!("the server did not answer a login secret"))?;
    let id = login.id.clone();
    let with_secret = client.bearer(&secret)?;
    let mut password_used = false;
    while !login.complete {
        let offered: Vec<Factor> = login
            .factors
            .iter()
            .filter(|f| !(password_used && **f == Factor::Password))
            .cloned()
            .collect();
        let Some(factor) = next_factor(&offered, &args) else {
            bail!(
                "the login cannot go on: it offers {:?}",
                login.factors.iter().map(|f| f.name()).collect::<Vec<_>>()
            );
        };
        let step = factor
            .step()
            .ok_or_else(|| anyhow!("{factor} is not done from the command line"))?;
        let path = ["auth", "logins", id.as_str(), step];
        login = match factor {
            Factor::Password => {
                password_used = true;
                let password = secret_input("Password: ", args.password_stdin)?;
                call(
                    &with_secret,
                    Method::POST,
                    &path,
                    json!({"password": password.expose()}),
                )
                .await?
            }
            Factor::Totp => match &args.totp_secret_file {
                Some(file) => {
                    let text = std::fs::read_to_string(file)
                        .with_context(|| format!("cannot read {}", file.display()))?;
                    let secret = totp::decode_secret(text.trim()).ok_or_else(|| {
                        anyhow!("{} does not hold a base32 TOTP secret", file.display())
                    })?;
                    let now = totp::step_at(time::OffsetDateTime::now_utc().unix_timestamp());
                    // Each code counts once: when this step's was used (a
                    // login moments ago), the next step's is still inside
                    // the server's drift window.
                    let code = |step| json!({"code": totp::code_at(&secret, step)});
                    match call(&with_secret, Method::POST, &path, code(now)).await {
                        Err(e) if is_unauthorized(&e) => {
                            call(&with_secret, Method::POST, &path, code(now + 1)).await?
                        }
                        other => other?,
                    }
                }
                None => {
                    let code = code_input("Authenticator code")?;
                    call(&with_secret, Method::POST, &path, json!({"code": code})).await?
                }
            },
            Factor::BackupCode => {
                let code = code_input("Backup code")?;
                call(&with_secret, Method::POST, &path, json!({"code": code})).await?
            }
            Factor::EmailCode | Factor::SmsCode => {
                call(&with_secret, Method::POST, &path, json!({})).await?;
                let code = code_input(if factor == Factor::EmailCode {
                    "Code sent by email"
                } else {
                    "Code sent by SMS"
                })?;
                call(&with_secret, Method::POST, &path, json!({"code": code})).await?
            }
            Factor::MagicLink => {
                call(&with_secret, Method::POST, &path, json!({})).await?;
                eprintln!("A sign-in link was sent by email; open it and confirm. Waiting…");
                let deadline = Instant::now()
                    + args
                        .wait
                        .map(Duration::from_secs)
                        .unwrap_or_else(|| Duration::from_secs(15 * 60));
                let before = login.satisfied.len();
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let polled = call_get(&with_secret, &["auth", "logins", id.as_str()]).await?;
                    if polled.complete || polled.satisfied.len() > before {
                        break polled;
                    }
                    if Instant::now() >= deadline {
                        bail!("the link was not confirmed in time");
                    }
                }
            }
            Factor::Sso(_) => bail!("{factor} is not done from the command line"),
        };
    }
    let Some(session) = login.session else {
        bail!("the login completed, but its session was handed to another request");
    };
    let claims = crate::commands::token::decode_jwt(&session.access_token)?.1;
    let user_id = claims["sub"].as_str().unwrap_or_default().to_owned();
    let path = session_path(&args.session)?;
    save(
        &path,
        &SessionFile {
            url: args.url.clone(),
            mode,
            user_id: user_id.clone(),
            session_id: session.id.clone(),
            access_token: session.access_token,
            refresh_token: session.refresh_token,
        },
    )?;
    emit(&format!(
        "Logged in as {user_id} (session {}, {}); the session is kept in {}.",
        session.id,
        claims["amr"]
            .as_array()
            .map(|a| a
                .iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join("+"))
            .unwrap_or_default(),
        path.display()
    ))?;
    Ok(())
}

fn is_unauthorized(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiError>()
        .is_some_and(|a| a.status == reqwest::StatusCode::UNAUTHORIZED)
}

async fn call_get(client: &Client, path: &[&str]) -> anyhow::Result<LoginObject> {
    client.get(path, &[]).await?.parse()
}

/// Refreshes the session's tokens and saves them.
async fn refresh(path: &Path, session: &mut SessionFile) -> anyhow::Result<()> {
    let client = Client::new(&session.url)?;
    let form = [
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", session.refresh_token.clone()),
    ];
    let resp = client
        .post_public_form(&["oauth", "token"], &form)
        .await
        .context("the session could not be refreshed; run `latchkey login` again")?;
    let tokens: TokenResponse = resp.parse()?;
    session.access_token = tokens.access_token;
    if let Some(next) = tokens.refresh_token {
        session.refresh_token = next;
    }
    save(path, session)
}

/// `latchkey me`.
pub async fn me(args: MeArgs) -> anyhow::Result<()> {
    let path = session_path(&args.session)?;
    let mut session = load(&path)?;
    let expired = crate::commands::token::decode_jwt(&session.access_token)
        .ok()
        .and_then(|(_, c)| c["exp"].as_i64())
        .is_none_or(|exp| exp <= time::OffsetDateTime::now_utc().unix_timestamp() + 30);
    if expired {
        refresh(&path, &mut session).await?;
    }
    if args.access_token {
        return Ok(emit(&session.access_token)?);
    }
    let client = Client::new(&session.url)?;
    let resp = match client
        .bearer(&session.access_token)?
        .get(&["v1", "me"], &[])
        .await
    {
        Err(e) if is_unauthorized(&e) => {
            refresh(&path, &mut session).await?;
            client
                .bearer(&session.access_token)?
                .get(&["v1", "me"], &[])
                .await?
        }
        other => other?,
    };
    if args.json {
        return Ok(emit(&resp.body)?);
    }
    let me: Me = resp.parse()?;
    let factors = [("password", me.factors.password), ("totp", me.factors.totp)]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ");
    Ok(emit(&format!(
        "{} ({}, {:?})\nsession {} in {}, logged in with {}\nfactors: {}{}",
        me.user.id,
        me.user.name,
        me.user.kind,
        me.session.id,
        me.session.tenant_id,
        me.session
            .factors
            .iter()
            .map(|f| f.name())
            .collect::<Vec<_>>()
            .join(" + "),
        if factors.is_empty() { "none" } else { &factors },
        if me.factors.totp {
            format!(" ({} backup codes left)", me.factors.backup_codes_left)
        } else {
            String::new()
        }
    ))?)
}

/// `latchkey logout`.
pub async fn logout(args: SessionArgs) -> anyhow::Result<()> {
    let path = session_path(&args)?;
    let session = load(&path)?;
    let client = Client::new(&session.url)?.anonymous();
    let ended = client
        .send(
            Method::POST,
            &["auth", "logout"],
            &[],
            Some(&json!({"refreshToken": session.refresh_token})),
        )
        .await;
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    match ended {
        Ok(_) => Ok(emit(&format!("Logged out; {} removed.", path.display()))?),
        Err(e) if is_unauthorized(&e) => Ok(emit(&format!(
            "The session had already ended; {} removed.",
            path.display()
        ))?),
        Err(e) => Err(e),
    }
}
