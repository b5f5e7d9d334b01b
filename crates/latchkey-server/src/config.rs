//! Server configuration: layered settings (flags beat environment beat the
//! `latchkey.toml` file beat defaults) resolved into one validated [`Config`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use latchkey_core::signing::Algorithm;
use latchkey_core::Secret;
use serde::Deserialize;

/// One layer of settings. Every field is optional so layers can be merged;
/// unknown keys in the file are an error, not ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on (`127.0.0.1:8080`).
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded SQLite database (`./latchkey-data`).
    pub data_dir: Option<PathBuf>,
    /// `postgres://…` to use PostgreSQL instead of SQLite.
    pub database_url: Option<String>,
    /// The issuer URL put in tokens and metadata.
    pub issuer: Option<String>,
    /// Default access-token lifetime in seconds (3600).
    pub token_ttl_seconds: Option<i64>,
    /// Algorithm of the first test-mode signing key (`EdDSA`).
    pub test_signing_alg: Option<String>,
    /// Algorithm of the first live-mode signing key (`EdDSA`).
    pub live_signing_alg: Option<String>,
    /// Workspace id used at first start (8 random characters otherwise).
    pub workspace_id: Option<String>,
    /// Workspace name used at first start.
    pub workspace_name: Option<String>,
    /// File holding the master key (instead of `LATCHKEY_MASTER_KEY`).
    pub master_key_file: Option<PathBuf>,
    /// How long a rotated-in key is published before it signs (600).
    pub signing_key_publish_ahead_seconds: Option<i64>,
    /// Rotate signing keys automatically every this many days (off).
    pub signing_key_rotation_days: Option<i64>,
    /// Longest lifetime of a custom token from `POST /v1/tokens` (3600).
    pub custom_token_max_ttl_seconds: Option<i64>,
}

impl Settings {
    /// Reads a TOML settings file.
    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// This layer, with gaps filled from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            issuer: self.issuer.or(lower.issuer),
            token_ttl_seconds: self.token_ttl_seconds.or(lower.token_ttl_seconds),
            test_signing_alg: self.test_signing_alg.or(lower.test_signing_alg),
            live_signing_alg: self.live_signing_alg.or(lower.live_signing_alg),
            workspace_id: self.workspace_id.or(lower.workspace_id),
            workspace_name: self.workspace_name.or(lower.workspace_name),
            master_key_file: self.master_key_file.or(lower.master_key_file),
            signing_key_publish_ahead_seconds: self
                .signing_key_publish_ahead_seconds
                .or(lower.signing_key_publish_ahead_seconds),
            signing_key_rotation_days: self
                .signing_key_rotation_days
                .or(lower.signing_key_rotation_days),
            custom_token_max_ttl_seconds: self
                .custom_token_max_ttl_seconds
                .or(lower.custom_token_max_ttl_seconds),
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

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Database {
    /// SQLite file `latchkey.db` in this directory.
    Sqlite(PathBuf),
    /// A PostgreSQL URL.
    Postgres(String),
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The database.
    pub database: Database,
    /// Issuer URL, without a trailing slash.
    pub issuer: String,
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
}

/// Longest token lifetime accepted anywhere: one day.
pub const MAX_TOKEN_TTL_SECONDS: i64 = 86_400;

impl Config {
    /// Resolves merged settings against the defaults and validates them.
    pub fn resolve(
        settings: Settings,
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
        let database = match settings.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Database::Postgres(url)
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
        let issuer = settings
            .issuer
            .unwrap_or_else(|| format!("http://{listen}"))
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
            if !latchkey_core::ids::is_valid_tenant_id(id) {
                return Err(ConfigError(format!(
                    "workspace id {id:?} must match [a-z0-9][a-z0-9_-]{{0,62}}"
                )));
            }
        }
        Ok(Config {
            listen,
            database,
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
