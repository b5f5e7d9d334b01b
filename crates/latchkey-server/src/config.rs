//! Server configuration: layered settings (flags beat environment beat the
//! `latchkey.toml` file beat defaults) resolved into one validated [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use latchkey_core::signing::Algorithm;
use latchkey_core::Secret;
use latchkey_types::ids::{Identifier as _, TenantId};
use serde::Deserialize;

/// Declares [`Settings`] from one list: each setting's doc comment is its
/// `--help` text, its `#[arg]` its flag and environment variable, and its
/// name its key in `latchkey.toml`; the merge of layers follows from it.
macro_rules! settings {
    ($(
        $(#[$attribute:meta])*
        $name:ident: $type:ty,
    )*) => {
        /// One layer of settings: the flags with their environment variables,
        /// or the file. Every field is optional so layers can be merged;
        /// unknown keys in the file are an error, not ignored.
        #[derive(Debug, Clone, Default, Deserialize, clap::Args)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[$attribute])*
                pub $name: Option<$type>,
            )*
        }

        impl Settings {
            /// This layer, with gaps filled from `lower`.
            pub fn or(self, lower: Settings) -> Settings {
                Settings {
                    $($name: self.$name.or(lower.$name),)*
                }
            }

            /// The name of every setting, as the file spells it.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($name)),*];
        }
    };
}

settings! {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LATCHKEY_LISTEN", value_name = "ADDR")]
    listen: SocketAddr,
    /// Directory of the SQLite database [default: ./latchkey-data].
    #[arg(long, env = "LATCHKEY_DATA_DIR", value_name = "DIR")]
    data_dir: PathBuf,
    /// A postgres:// URL to store data in PostgreSQL instead of SQLite.
    #[arg(long, env = "LATCHKEY_DATABASE_URL", value_name = "URL", hide_env_values = true)]
    database_url: String,
    /// Issuer URL of live mode, put in its tokens and metadata; test mode's
    /// issuer is this URL with `/test` after it [default: http://LISTEN,
    /// or https://LISTEN with TLS].
    #[arg(long, env = "LATCHKEY_ISSUER", value_name = "URL")]
    issuer: String,
    /// Default access-token lifetime in seconds [default: 3600].
    #[arg(long, env = "LATCHKEY_TOKEN_TTL_SECONDS", value_name = "SECONDS")]
    token_ttl_seconds: i64,
    /// Algorithm of the first test-mode signing key: EdDSA (default), ES256 or RS256.
    #[arg(long, env = "LATCHKEY_TEST_SIGNING_ALG", value_name = "ALG")]
    test_signing_alg: String,
    /// Algorithm of the first live-mode signing key: EdDSA (default), ES256 or RS256.
    #[arg(long, env = "LATCHKEY_LIVE_SIGNING_ALG", value_name = "ALG")]
    live_signing_alg: String,
    /// Workspace id used at first start [default: 8 random characters].
    /// Environment (LATCHKEY_WORKSPACE_ID) or file only.
    #[arg(skip)]
    workspace_id: String,
    /// Workspace name used at first start [default: Workspace].
    /// Environment (LATCHKEY_WORKSPACE_NAME) or file only.
    #[arg(skip)]
    workspace_name: String,
    /// File holding the master key that seals private signing keys
    /// [default: LATCHKEY_MASTER_KEY, else DATA_DIR/master.key, created on
    /// first start].
    #[arg(long, env = "LATCHKEY_MASTER_KEY_FILE", value_name = "FILE")]
    master_key_file: PathBuf,
    /// How long a rotated-in signing key is published before it signs
    /// [default: 600; must exceed the JWKS max-age of 300].
    #[arg(long, env = "LATCHKEY_SIGNING_KEY_PUBLISH_AHEAD_SECONDS", value_name = "SECONDS")]
    signing_key_publish_ahead_seconds: i64,
    /// Rotate signing keys automatically every this many days [default: off].
    #[arg(long, env = "LATCHKEY_SIGNING_KEY_ROTATION_DAYS", value_name = "DAYS")]
    signing_key_rotation_days: i64,
    /// Longest lifetime of a custom token from POST /v1/tokens [default: 3600].
    #[arg(long, env = "LATCHKEY_CUSTOM_TOKEN_MAX_TTL_SECONDS", value_name = "SECONDS")]
    custom_token_max_ttl_seconds: i64,
    /// Most bytes of JSON a token's `authorization` claim may take; the
    /// farthest descendants that do not fit are left out and the token says
    /// `authorizationTruncated: true` [default: 4096, 512 to 12288].
    #[arg(long, env = "LATCHKEY_TOKEN_AUTHORIZATION_MAX_BYTES", value_name = "BYTES")]
    token_authorization_max_bytes: usize,
    /// Most API-key values cached in memory, per mode [default: 1000000].
    #[arg(long, env = "LATCHKEY_CACHE_API_KEYS", value_name = "N")]
    cache_api_keys: usize,
    /// Most users cached in memory, per mode [default: 100000].
    #[arg(long, env = "LATCHKEY_CACHE_PRINCIPALS", value_name = "N")]
    cache_principals: usize,
    /// Seconds a cached entry is served before it is re-read in the
    /// background; changes are pushed, this is a safety net [default: 60].
    #[arg(long, env = "LATCHKEY_CACHE_TTL_SECONDS", value_name = "SECONDS")]
    cache_ttl_seconds: u64,
    /// Redis URL (redis://…): per-key rate limits, brute-force counters and
    /// assertion replay checks become exact across nodes [default: per node].
    #[arg(long, env = "LATCHKEY_REDIS_URL", value_name = "URL", hide_env_values = true)]
    redis_url: String,
    /// Most open connections; more are closed at once [default: 10000].
    #[arg(long, env = "LATCHKEY_MAX_CONNECTIONS", value_name = "N")]
    max_connections: usize,
    /// Seconds a client has to send a request's headers [default: 10].
    #[arg(long, env = "LATCHKEY_HEADER_READ_TIMEOUT_SECONDS", value_name = "SECONDS")]
    header_read_timeout_seconds: u64,
    /// Seconds to answer one request, reading its body included; later is
    /// 408 [default: 30].
    #[arg(long, env = "LATCHKEY_REQUEST_TIMEOUT_SECONDS", value_name = "SECONDS")]
    request_timeout_seconds: u64,
    /// Failed credential checks per minute from one address before it is
    /// refused with 429 [default: 50].
    #[arg(long, env = "LATCHKEY_MAX_FAILURES_PER_ADDRESS", value_name = "N")]
    max_failures_per_address: u32,
    /// Failed checks per minute for one client id from one address before
    /// that address is refused for it; ten times this from all addresses
    /// marks the client as under attack [default: 10].
    #[arg(long, env = "LATCHKEY_MAX_FAILURES_PER_CLIENT", value_name = "N")]
    max_failures_per_client: u32,
    /// PEM certificate chain for native TLS, leaf first (with --tls-key).
    /// Reloaded on SIGHUP.
    #[arg(long, env = "LATCHKEY_TLS_CERT", value_name = "FILE")]
    tls_cert: PathBuf,
    /// PEM private key for native TLS (with --tls-cert). Reloaded on SIGHUP.
    #[arg(long, env = "LATCHKEY_TLS_KEY", value_name = "FILE")]
    tls_key: PathBuf,
    /// Serve TLS with a development CA and certificate made once in
    /// DATA_DIR/tls/; clients trust its ca.pem [default: false].
    #[arg(
        long,
        env = "LATCHKEY_TLS_SELF_SIGNED",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    tls_self_signed: bool,
    /// A proxy (CIDR or address) whose X-Forwarded-Proto: https is believed;
    /// repeat for several. The variable takes a comma-separated list
    /// [default: none].
    #[arg(
        long = "trusted-proxy",
        env = "LATCHKEY_TRUSTED_PROXIES",
        value_name = "CIDR",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// SMTP server for login codes and links: smtp://user:pass@host:port
    /// (STARTTLS with ?tls=required) or smtps://… [default: none; test mode
    /// then writes to the test outbox].
    #[arg(long, env = "LATCHKEY_SMTP_URL", value_name = "URL", hide_env_values = true)]
    smtp_url: String,
    /// The From of login emails; by default `Latchkey <no-reply@localhost>`.
    #[arg(long, env = "LATCHKEY_MAIL_FROM", value_name = "MAILBOX")]
    mail_from: String,
    /// HTTPS endpoint that sends SMS: POST {to, text}, signed with
    /// Latchkey-Signature [default: none; test mode then writes to the test
    /// outbox].
    #[arg(long, env = "LATCHKEY_SMS_WEBHOOK_URL", value_name = "URL")]
    sms_webhook_url: String,
    /// Key of the SMS webhook's HMAC-SHA256 signature (required with the URL).
    #[arg(long, env = "LATCHKEY_SMS_WEBHOOK_SECRET", value_name = "SECRET", hide_env_values = true)]
    sms_webhook_secret: String,
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// The settings only the environment (or the file) gives, never a flag,
    /// read with `env`: the workspace's id and name for the first start.
    pub fn from_environment_only(env: &dyn Fn(&str) -> Option<String>) -> Settings {
        Settings {
            workspace_id: env("LATCHKEY_WORKSPACE_ID"),
            workspace_name: env("LATCHKEY_WORKSPACE_NAME"),
            ..Settings::default()
        }
    }
}

/// A configuration error, for the operator.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Secrets that come from the environment only, never from the file:
/// admin keys to install at first start instead of generated ones, and the
/// master key.
#[derive(Debug, Clone, Default)]
pub struct BootstrapKeys {
    /// `LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY`.
    pub test: Option<Secret>,
    /// `LATCHKEY_BOOTSTRAP_LIVE_ADMIN_KEY`.
    pub live: Option<Secret>,
    /// `LATCHKEY_MASTER_KEY`: 32 bytes, base64 or hex.
    pub master_key: Option<Secret>,
}

/// Where the master key that seals private signing keys comes from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// `LATCHKEY_MASTER_KEY`.
    Value(Secret),
    /// `master_key_file` / `LATCHKEY_MASTER_KEY_FILE`.
    File(PathBuf),
    /// `master.key` in the data directory, created on first start.
    DataDir(PathBuf),
}

/// Where the TLS certificate and key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// `tls_cert` and `tls_key`: PEM files, read again on reload (SIGHUP).
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
    /// `tls_self_signed`: a development CA and server certificate in this
    /// directory, created on first start and reused after.
    SelfSigned(PathBuf),
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite file `latchkey.db` in this directory.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (it may hold a password: redacted in `Debug`).
    Postgres(Secret),
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The database.
    pub database: Database,
    /// The configured issuer URL, without a trailing slash: live mode's
    /// issuer, and the base of every URL the server names.
    pub issuer: String,
    /// Test mode's issuer, `{issuer}/test`: each mode is its own issuer,
    /// so a token of one never verifies as the other's.
    pub test_issuer: String,
    /// Default token lifetime in seconds.
    pub token_ttl_seconds: i64,
    /// First signing-key algorithm per mode: (test, live).
    pub signing_algs: (Algorithm, Algorithm),
    /// Workspace id for first start.
    pub workspace_id: Option<String>,
    /// Workspace name for first start.
    pub workspace_name: String,
    /// Admin keys for first start.
    pub bootstrap_keys: BootstrapKeys,
    /// The master key's source.
    pub master_key: MasterKeySource,
    /// Publish-ahead time of rotated-in signing keys, in seconds.
    pub publish_ahead_seconds: i64,
    /// Automatic rotation period in days, if any.
    pub rotation_days: Option<i64>,
    /// Cap on custom-token lifetimes, in seconds.
    pub custom_token_max_ttl_seconds: i64,
    /// The byte budget of a token's `authorization` claim.
    pub token_authorization_max_bytes: usize,
    /// How long cached credentials, roles and tenants are served before
    /// they are re-read (the bound on how long another node's write goes
    /// unseen here if its notification is lost).
    pub cache_ttl: std::time::Duration,
    /// Bounds of the in-memory caches, per mode.
    pub cache_sizes: crate::authn::cache::CacheSizes,
    /// Redis for cross-node rate limits and replay checks, when given (it
    /// may hold a password: redacted in `Debug`).
    pub redis_url: Option<Secret>,
    /// Brute-force limits.
    pub bruteforce: crate::authn::bruteforce::Limits,
    /// Connection cap and timeouts.
    pub connections: crate::http::serve::ConnLimits,
    /// Native TLS, when on.
    pub tls: Option<TlsSource>,
    /// Peers whose `X-Forwarded-Proto: https` marks a request as TLS.
    pub trusted_proxies: Vec<IpNet>,
    /// Where login codes and links go.
    pub delivery: DeliveryConfig,
}

/// Where login codes and links go. Without a channel, test mode writes
/// messages to the test outbox and live mode cannot send them.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The SMTP server (the URL may hold a password: redacted in `Debug`).
    pub smtp_url: Option<Secret>,
    /// The From of login emails.
    pub mail_from: String,
    /// The SMS webhook.
    pub sms_webhook_url: Option<String>,
    /// The SMS webhook's signing key.
    pub sms_webhook_secret: Option<Secret>,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            smtp_url: None,
            mail_from: DEFAULT_MAIL_FROM.to_owned(),
            sms_webhook_url: None,
            sms_webhook_secret: None,
        }
    }
}

/// The From of login emails when none is set.
pub const DEFAULT_MAIL_FROM: &str = "Latchkey <no-reply@localhost>";

/// Whether `url` is an https URL, or http to a loopback host (a local SMS
/// gateway, a test).
fn https_or_loopback(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

fn resolve_delivery(settings: &mut Settings) -> Result<DeliveryConfig, ConfigError> {
    let nonempty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let smtp_url = nonempty(settings.smtp_url.take());
    if let Some(url) = &smtp_url {
        if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
            return Err(ConfigError(
                "smtp_url must start with smtp:// or smtps://".into(),
            ));
        }
    }
    let mail_from =
        nonempty(settings.mail_from.take()).unwrap_or_else(|| DEFAULT_MAIL_FROM.to_owned());
    if mail_from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(ConfigError(format!(
            "mail_from {mail_from:?} is not a mailbox such as Latchkey <no-reply@example.com>"
        )));
    }
    let sms_webhook_url = nonempty(settings.sms_webhook_url.take());
    let sms_webhook_secret = nonempty(settings.sms_webhook_secret.take());
    if let Some(url) = &sms_webhook_url {
        if !https_or_loopback(url) {
            return Err(ConfigError(
                "sms_webhook_url must be an https:// URL (http:// only to localhost)".into(),
            ));
        }
        if sms_webhook_secret.is_none() {
            return Err(ConfigError(
                "sms_webhook_url needs sms_webhook_secret".into(),
            ));
        }
    }
    Ok(DeliveryConfig {
        smtp_url: smtp_url.map(Secret::new),
        mail_from,
        sms_webhook_url,
        sms_webhook_secret: sms_webhook_secret.map(Secret::new),
    })
}

impl Config {
    /// The issuer of `mode`: the configured URL for live, `{issuer}/test`
    /// for test.
    pub fn issuer_of(&self, mode: latchkey_types::Mode) -> &str {
        match mode {
            latchkey_types::Mode::Live => &self.issuer,
            latchkey_types::Mode::Test => &self.test_issuer,
        }
    }
}

/// Longest token lifetime accepted anywhere: one day.
pub const MAX_TOKEN_TTL_SECONDS: i64 = 86_400;

impl Config {
    /// Resolves merged settings against the defaults and validates them.
    pub fn resolve(
        mut settings: Settings,
        bootstrap_keys: BootstrapKeys,
    ) -> Result<Config, ConfigError> {
        let listen = settings
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = settings
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("latchkey-data"));
        let master_key = match (&bootstrap_keys.master_key, &settings.master_key_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "give the master key as LATCHKEY_MASTER_KEY or as a file, not both".into(),
                ))
            }
            (Some(v), None) => MasterKeySource::Value(v.clone()),
            (None, Some(f)) => MasterKeySource::File(f.clone()),
            (None, None) => MasterKeySource::DataDir(data_dir.clone()),
        };
        let publish_ahead_seconds = settings.signing_key_publish_ahead_seconds.unwrap_or(600);
        if publish_ahead_seconds <= crate::JWKS_MAX_AGE_SECONDS as i64 {
            return Err(ConfigError(format!(
                "signing_key_publish_ahead_seconds must be longer than the JWKS max-age ({} s)",
                crate::JWKS_MAX_AGE_SECONDS
            )));
        }
        let rotation_days = settings.signing_key_rotation_days;
        if rotation_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(ConfigError(
                "signing_key_rotation_days must be between 1 and 3650".into(),
            ));
        }
        let custom_token_max_ttl_seconds = settings.custom_token_max_ttl_seconds.unwrap_or(3600);
        if !(1..=MAX_TOKEN_TTL_SECONDS).contains(&custom_token_max_ttl_seconds) {
            return Err(ConfigError(format!(
                "custom_token_max_ttl_seconds must be between 1 and {MAX_TOKEN_TTL_SECONDS}"
            )));
        }
        use latchkey_core::authorization::{
            DEFAULT_BUDGET_BYTES, MAX_BUDGET_BYTES, MIN_BUDGET_BYTES,
        };
        let token_authorization_max_bytes = settings
            .token_authorization_max_bytes
            .unwrap_or(DEFAULT_BUDGET_BYTES);
        if !(MIN_BUDGET_BYTES..=MAX_BUDGET_BYTES).contains(&token_authorization_max_bytes) {
            return Err(ConfigError(format!(
                "token_authorization_max_bytes must be between {MIN_BUDGET_BYTES} and {MAX_BUDGET_BYTES}"
            )));
        }
        let cache_sizes = crate::authn::cache::CacheSizes {
            api_keys: settings
                .cache_api_keys
                .unwrap_or(crate::authn::cache::DEFAULT_API_KEYS),
            principals: settings
                .cache_principals
                .unwrap_or(crate::authn::cache::DEFAULT_PRINCIPALS),
        };
        if !(1..=100_000_000).contains(&cache_sizes.api_keys)
            || !(1..=100_000_000).contains(&cache_sizes.principals)
        {
            return Err(ConfigError(
                "cache_api_keys and cache_principals must be between 1 and 100000000".into(),
            ));
        }
        let cache_ttl = match settings.cache_ttl_seconds {
            None => crate::authn::cache::DEFAULT_TTL,
            Some(s @ 1..=86_400) => std::time::Duration::from_secs(s),
            Some(_) => {
                return Err(ConfigError(
                    "cache_ttl_seconds must be between 1 and 86400".into(),
                ))
            }
        };
        let bruteforce = crate::authn::bruteforce::Limits {
            per_address: settings.max_failures_per_address.unwrap_or(50),
            per_client: settings.max_failures_per_client.unwrap_or(10),
        };
        if bruteforce.per_address == 0 || bruteforce.per_client == 0 {
            return Err(ConfigError(
                "max_failures_per_address and max_failures_per_client must be 1 or more".into(),
            ));
        }
        let defaults = crate::http::serve::ConnLimits::default();
        let seconds = |v: Option<u64>, default: std::time::Duration, name: &str| match v {
            None => Ok(default),
            Some(s @ 1..=3600) => Ok(std::time::Duration::from_secs(s)),
            Some(_) => Err(ConfigError(format!("{name} must be between 1 and 3600"))),
        };
        let connections = crate::http::serve::ConnLimits {
            max_connections: match settings.max_connections {
                None => defaults.max_connections,
                Some(n @ 1..=1_000_000) => n,
                Some(_) => {
                    return Err(ConfigError(
                        "max_connections must be between 1 and 1000000".into(),
                    ))
                }
            },
            header_read_timeout: seconds(
                settings.header_read_timeout_seconds,
                defaults.header_read_timeout,
                "header_read_timeout_seconds",
            )?,
            request_timeout: seconds(
                settings.request_timeout_seconds,
                defaults.request_timeout,
                "request_timeout_seconds",
            )?,
        };
        let delivery = resolve_delivery(&mut settings)?;
        let redis_url = settings.redis_url.filter(|u| !u.is_empty());
        if let Some(url) = &redis_url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(ConfigError(
                    "redis_url must start with redis:// or rediss://".into(),
                ));
            }
        }
        let tls = match (
            settings.tls_cert,
            settings.tls_key,
            settings.tls_self_signed.unwrap_or(false),
        ) {
            (None, None, false) => None,
            (Some(cert), Some(key), false) => Some(TlsSource::Files { cert, key }),
            (None, None, true) => Some(TlsSource::SelfSigned(data_dir.join("tls"))),
            (Some(_), Some(_), true) => {
                return Err(ConfigError(
                    "give tls_cert and tls_key, or tls_self_signed, not both".into(),
                ))
            }
            (Some(_), None, _) | (None, Some(_), _) => {
                return Err(ConfigError(
                    "tls_cert and tls_key go together: give both or neither".into(),
                ))
            }
        };
        let trusted_proxies = settings
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .map(|cidr| parse_cidr(cidr))
            .collect::<Result<Vec<_>, _>>()?;
        let database = match settings.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(Secret::new(url))
            }
            Some(url) if url.starts_with("sqlite:") => {
                return Err(ConfigError(format!(
                    "database_url {url:?}: use data_dir for SQLite; database_url is for postgres:// URLs"
                )))
            }
            Some(_) => {
                return Err(ConfigError("database_url must be a postgres:// URL".into()))
            }
            None => Database::Sqlite(data_dir),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let issuer = settings
            .issuer
            .unwrap_or_else(|| format!("{scheme}://{listen}"))
            .trim_end_matches('/')
            .to_owned();
        if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
            return Err(ConfigError(format!(
                "issuer {issuer:?} must be an http(s) URL"
            )));
        }
        let token_ttl_seconds = settings.token_ttl_seconds.unwrap_or(3600);
        if !(1..=MAX_TOKEN_TTL_SECONDS).contains(&token_ttl_seconds) {
            return Err(ConfigError(format!(
                "token_ttl_seconds must be between 1 and {MAX_TOKEN_TTL_SECONDS}"
            )));
        }
        let alg = |s: Option<String>, which: &str| match s {
            None => Ok(Algorithm::EdDSA),
            Some(s) => Algorithm::parse(&s).ok_or_else(|| {
                ConfigError(format!(
                    "{which}_signing_alg {s:?}: use EdDSA, ES256 or RS256"
                ))
            }),
        };
        let signing_algs = (
            alg(settings.test_signing_alg, "test")?,
            alg(settings.live_signing_alg, "live")?,
        );
        if let Some(id) = &settings.workspace_id {
            if let Err(invalid) = TenantId::parse(id.as_str()) {
                return Err(ConfigError(format!("workspace {invalid}")));
            }
        }
        Ok(Config {
            listen,
            database,
            test_issuer: latchkey_types::Mode::Test.issuer(&issuer),
            issuer,
            token_ttl_seconds,
            signing_algs,
            workspace_id: settings.workspace_id,
            workspace_name: settings
                .workspace_name
                .unwrap_or_else(|| "Workspace".to_owned()),
            bootstrap_keys,
            master_key,
            publish_ahead_seconds,
            rotation_days,
            custom_token_max_ttl_seconds,
            token_authorization_max_bytes,
            cache_ttl,
            cache_sizes,
            redis_url: redis_url.map(Secret::new),
            bruteforce,
            connections,
            tls,
            trusted_proxies,
            delivery,
        })
    }
}

/// A trusted-proxy entry: a CIDR (`10.0.0.0/8`, `fd00::/8`) or one address.
fn parse_cidr(text: &str) -> Result<IpNet, ConfigError> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError(format!(
                "trusted proxy {text:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8, nor an IP address"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_has_its_own_issuer_under_the_configured_url() {
        use latchkey_types::Mode;
        for (given, live, test) in [
            (None, "http://127.0.0.1:8080", "http://127.0.0.1:8080/test"),
            (
                Some("https://auth.example/"),
                "https://auth.example",
                "https://auth.example/test",
            ),
            (
                Some("https://example.com/auth"),
                "https://example.com/auth",
                "https://example.com/auth/test",
            ),
        ] {
            let config = Config::resolve(
                Settings {
                    issuer: given.map(str::to_owned),
                    ..Default::default()
                },
                BootstrapKeys::default(),
            )
            .unwrap();
            assert_eq!(config.issuer_of(Mode::Live), live);
            assert_eq!(config.issuer_of(Mode::Test), test);
        }
    }

    #[test]
    fn database_and_redis_passwords_stay_out_of_debug() {
        let config = Config::resolve(
            Settings {
                database_url: Some("postgres://app:pg-hunter2@db/latchkey".into()),
                redis_url: Some("redis://:redis-hunter2@cache:6379".into()),
                ..Default::default()
            },
            BootstrapKeys::default(),
        )
        .unwrap();
        let text = format!("{config:?}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn higher_layers_win_and_defaults_fill_the_rest() {
        let flags = Settings {
            issuer: Some("https://auth.example/".into()),
            ..Default::default()
        };
        let file: Settings = toml::from_str(
            "issuer = \"http://file\"\ntoken_ttl_seconds = 600\nlisten = \"0.0.0.0:9000\"",
        )
        .unwrap();
        let c = Config::resolve(flags.or(file), BootstrapKeys::default()).unwrap();
        assert_eq!(c.issuer, "https://auth.example");
        assert_eq!(c.token_ttl_seconds, 600);
        assert_eq!(c.listen.port(), 9000);
        assert!(matches!(c.database, Database::Sqlite(ref p) if p == Path::new("latchkey-data")));
        assert_eq!(c.signing_algs, (Algorithm::EdDSA, Algorithm::EdDSA));
    }

    #[test]
    fn unknown_or_invalid_settings_are_errors() {
        assert!(toml::from_str::<Settings>("listen_port = 1").is_err());
        let bad = |s: Settings| Config::resolve(s, BootstrapKeys::default()).is_err();
        assert!(bad(Settings {
            token_ttl_seconds: Some(0),
            ..Default::default()
        }));
        assert!(bad(Settings {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        }));
        assert!(bad(Settings {
            live_signing_alg: Some("HS256".into()),
            ..Default::default()
        }));
        assert!(bad(Settings {
            workspace_id: Some("Bad Id".into()),
            ..Default::default()
        }));
        assert!(bad(Settings {
            issuer: Some("ftp://x".into()),
            ..Default::default()
        }));
    }

    #[test]
    fn the_default_issuer_follows_the_listen_address() {
        let c = Config::resolve(Settings::default(), BootstrapKeys::default()).unwrap();
        assert_eq!(c.issuer, "http://127.0.0.1:8080");
    }

    #[test]
    fn with_tls_the_default_issuer_is_https_and_an_explicit_one_is_kept() {
        let tls = Settings {
            tls_self_signed: Some(true),
            data_dir: Some("/var/lib/latchkey".into()),
            ..Default::default()
        };
        let c = Config::resolve(tls.clone(), BootstrapKeys::default()).unwrap();
        assert_eq!(c.issuer, "https://127.0.0.1:8080");
        assert_eq!(
            c.tls,
            Some(TlsSource::SelfSigned("/var/lib/latchkey/tls".into()))
        );
        let explicit = Settings {
            issuer: Some("https://auth.example".into()),
            ..tls
        };
        let c = Config::resolve(explicit, BootstrapKeys::default()).unwrap();
        assert_eq!(c.issuer, "https://auth.example");
    }

    #[test]
    fn tls_files_come_in_pairs_and_exclude_self_signed() {
        let resolve = |s: Settings| Config::resolve(s, BootstrapKeys::default());
        let pair = Settings {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve(pair.clone()).unwrap().tls,
            Some(TlsSource::Files { .. })
        ));
        let err = resolve(Settings {
            tls_key: None,
            ..pair.clone()
        })
        .unwrap_err();
        assert!(err.0.contains("both or neither"), "{err}");
        let err = resolve(Settings {
            tls_self_signed: Some(true),
            ..pair
        })
        .unwrap_err();
        assert!(err.0.contains("not both"), "{err}");
    }

    #[test]
    fn trusted_proxies_take_ipv4_and_ipv6_cidrs_and_single_addresses() {
        let s = Settings {
            trusted_proxies: Some(vec![
                "10.0.0.0/8".into(),
                "fd00::/8".into(),
                "192.0.2.7".into(),
                "::1".into(),
            ]),
            ..Default::default()
        };
        let c = Config::resolve(s, BootstrapKeys::default()).unwrap();
        let contains = |ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            c.trusted_proxies.iter().any(|n| n.contains(&ip))
        };
        assert!(contains("10.1.2.3") && contains("fd12::1") && contains("192.0.2.7"));
        assert!(contains("::1"));
        assert!(!contains("192.0.2.8") && !contains("11.0.0.1") && !contains("fe80::1"));
        for bad in ["10.0.0.0/33", "fd00::/129", "not-a-cidr", "10.0.0/8", ""] {
            let s = Settings {
                trusted_proxies: Some(vec![bad.into()]),
                ..Default::default()
            };
            let err = Config::resolve(s, BootstrapKeys::default()).unwrap_err();
            assert!(err.0.contains("trusted proxy"), "{bad}: {err}");
        }
    }
}
