//! `latchkey serve`: layers flags, environment and the configuration file
//! into one [`Config`], sets up logging and runs the server.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use latchkey_core::Secret;
use latchkey_server::{BootstrapKeys, Config, Settings};
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;

/// The configuration file read when `--config` is not given, if it exists.
const DEFAULT_CONFIG_FILE: &str = "latchkey.toml";

/// Resolves the configuration and runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_tracing();
    let config = resolve(args, &|name| std::env::var(name).ok(), Path::new("."))?;
    latchkey_server::run(config).await?;
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second initialisation (only possible in tests) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Merges the layers: flags and their environment variables (clap has
/// already chosen between those), then the environment-only settings, then
/// the file, then the defaults in [`Config::resolve`]. `env` reads the
/// environment and `cwd` is where the default file is looked for, so tests
/// can supply both.
fn resolve(
    args: ServeArgs,
    env: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
) -> anyhow::Result<Config> {
    // A variable that is set but empty is passed on as empty, as clap does
    // for the flags' variables: the server then refuses it clearly, where
    // treating it as unset could, for a bootstrap key whose secret mount
    // failed, silently generate a key and print it to the logs instead.
    let file = match config_file(args.config.clone(), cwd) {
        Some(path) => Settings::from_file(&path)?,
        None => Settings::default(),
    };
    let upper = args.settings.or(Settings::from_environment_only(env));
    let keys = BootstrapKeys {
        test: env("LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY").map(Secret::new),
        live: env("LATCHKEY_BOOTSTRAP_LIVE_ADMIN_KEY").map(Secret::new),
        master_key: env("LATCHKEY_MASTER_KEY").map(Secret::new),
    };
    Ok(Config::resolve(upper.or(file), keys)?)
}

/// The file named by `--config`/`LATCHKEY_CONFIG` (which must exist), else
/// `latchkey.toml` in `cwd` if it is there.
fn config_file(explicit: Option<PathBuf>, cwd: &Path) -> Option<PathBuf> {
    explicit.or_else(|| {
        let default = cwd.join(DEFAULT_CONFIG_FILE);
        default.is_file().then_some(default)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser as _;
    use latchkey_server::{Database, TlsSource};

    use super::*;
    use crate::cli::{Cli, Command};

    fn serve_args(flags: &[&str]) -> ServeArgs {
        let argv = ["latchkey", "serve"]
            .into_iter()
            .chain(flags.iter().copied());
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Serve(args) => *args,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("latchkey.toml"),
            "issuer = \"https://from-file.example\"\ntoken_ttl_seconds = 600\nworkspace_name = \"File\"\n",
        )
        .unwrap();
        let config = resolve(
            serve_args(&["--issuer", "https://from-flag.example"]),
            &env_of(&[]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.issuer, "https://from-flag.example");
        assert_eq!(config.token_ttl_seconds, 600);
        assert_eq!(config.workspace_name, "File");
        assert_eq!(config.listen.port(), 8080);
    }

    #[test]
    fn environment_only_settings_beat_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("other.toml");
        std::fs::write(
            &file,
            "workspace_id = \"fromfile\"\nworkspace_name = \"File\"\n",
        )
        .unwrap();
        let config = resolve(
            serve_args(&["--config", file.to_str().unwrap()]),
            &env_of(&[("LATCHKEY_WORKSPACE_ID", "acme")]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(config.workspace_id.as_deref(), Some("acme"));
        assert_eq!(config.workspace_name, "File");
    }

    #[test]
    fn bootstrap_keys_come_from_the_environment() {
        let config = resolve(
            serve_args(&[]),
            &env_of(&[("LATCHKEY_BOOTSTRAP_TEST_ADMIN_KEY", "lk_test_admin_x")]),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(
            config.bootstrap_keys.test.as_ref().map(Secret::expose),
            Some("lk_test_admin_x")
        );
        assert!(config.bootstrap_keys.live.is_none());
        assert!(!format!("{config:?}").contains("lk_test_admin_x"));
    }

    #[test]
    fn without_a_file_the_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve(serve_args(&[]), &env_of(&[]), dir.path()).unwrap();
        assert_eq!(config.issuer, "http://127.0.0.1:8080");
        assert!(
            matches!(config.database, Database::Sqlite(ref p) if p == Path::new("latchkey-data"))
        );
    }

    #[test]
    fn a_named_file_must_exist_and_unknown_settings_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let err = resolve(
            serve_args(&["--config", missing.to_str().unwrap()]),
            &env_of(&[]),
            dir.path(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("missing.toml"), "{err:#}");

        std::fs::write(dir.path().join("latchkey.toml"), "listen_port = 1\n").unwrap();
        assert!(resolve(serve_args(&[]), &env_of(&[]), dir.path()).is_err());
    }

    #[test]
    fn tls_flags_and_trusted_proxies_reach_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = resolve(
            serve_args(&[
                "--tls-cert",
                "/etc/latchkey/cert.pem",
                "--tls-key",
                "/etc/latchkey/key.pem",
                "--trusted-proxy",
                "10.0.0.0/8",
                "--trusted-proxy",
                "fd00::/8",
            ]),
            &env_of(&[]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            config.tls,
            Some(TlsSource::Files {
                cert: "/etc/latchkey/cert.pem".into(),
                key: "/etc/latchkey/key.pem".into(),
            })
        );
        assert_eq!(config.issuer, "https://127.0.0.1:8080");
        assert_eq!(config.trusted_proxies.len(), 2);

        let config = resolve(
            serve_args(&["--tls-self-signed", "--data-dir", "/srv/lk"]),
            &env_of(&[]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            config.tls,
            Some(TlsSource::SelfSigned("/srv/lk/tls".into()))
        );
        for off in ["false", "no", "0", "off"] {
            let flag = format!("--tls-self-signed={off}");
            let config = resolve(serve_args(&[&flag]), &env_of(&[]), dir.path()).unwrap();
            assert_eq!(config.tls, None, "{off}");
        }
        for on in ["true", "yes", "1", "on"] {
            let flag = format!("--tls-self-signed={on}");
            let config = resolve(serve_args(&[&flag]), &env_of(&[]), dir.path()).unwrap();
            assert!(config.tls.is_some(), "{on}");
        }
    }

    #[test]
    fn a_file_may_enable_tls_and_bad_tls_settings_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("latchkey.toml"),
            "tls_self_signed = true\ntrusted_proxies = [\"127.0.0.1\"]\n",
        )
        .unwrap();
        let config = resolve(serve_args(&[]), &env_of(&[]), dir.path()).unwrap();
        assert!(matches!(config.tls, Some(TlsSource::SelfSigned(_))));
        assert_eq!(config.trusted_proxies.len(), 1);
        // A flag turns the file's setting off again.
        let config = resolve(
            serve_args(&["--tls-self-signed=false"]),
            &env_of(&[]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.tls, None);

        let err = resolve(
            serve_args(&["--tls-cert", "c.pem"]),
            &env_of(&[]),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("both or neither"), "{err:#}");
        let err = resolve(
            serve_args(&["--trusted-proxy", "10.0.0.0/40"]),
            &env_of(&[]),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("10.0.0.0/40"), "{err:#}");
    }

    /// Every setting of the file has its flag and environment variable
    /// (`--x-y`, `LATCHKEY_X_Y`), except the two read at first start only,
    /// which the environment gives; and the README's table lists each.
    #[test]
    fn every_setting_has_a_flag_a_variable_a_key_and_a_row_in_the_readme() {
        use clap::Args as _;
        let command = Settings::augment_args(clap::Command::new("serve"));
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .unwrap();
        let environment_only = ["workspace_id", "workspace_name"];
        for name in Settings::NAMES {
            let variable = format!("LATCHKEY_{}", name.to_ascii_uppercase());
            let row = readme
                .lines()
                .find(|line| line.starts_with('|') && line.contains(&format!("`{name}`")))
                .unwrap_or_else(|| panic!("README has no row for `{name}`"));
            assert!(row.contains(&format!("`{variable}")), "{row}");
            if environment_only.contains(name) {
                assert!(command.get_arguments().all(|a| a.get_id() != *name));
                let only =
                    Settings::from_environment_only(&|v| (v == variable).then(|| "x".into()));
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("latchkey.toml");
                std::fs::write(&path, format!("{name} = \"x\"\n")).unwrap();
                let file = Settings::from_file(&path).unwrap();
                assert_eq!(format!("{only:?}"), format!("{file:?}"), "{name}");
                continue;
            }
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == *name)
                .unwrap_or_else(|| panic!("no flag for {name}"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(variable.as_str()),
                "{name}"
            );
            let flag = format!("`--{}", arg.get_long().unwrap());
            assert!(row.contains(&flag), "{row} lacks {flag}");
        }
    }

    #[test]
    fn a_flag_a_variable_and_the_file_reach_the_same_setting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("latchkey.toml");
        std::fs::write(&file, "max_connections = 7\nrequest_timeout_seconds = 9\n").unwrap();
        let config = resolve(serve_args(&[]), &env_of(&[]), dir.path()).unwrap();
        assert_eq!(config.connections.max_connections, 7);
        assert_eq!(config.connections.request_timeout.as_secs(), 9);
        let config = resolve(
            serve_args(&["--max-connections", "8"]),
            &env_of(&[]),
            dir.path(),
        )
        .unwrap();
        assert_eq!(config.connections.max_connections, 8);
        assert_eq!(config.connections.request_timeout.as_secs(), 9);
    }

    #[test]
    fn invalid_values_are_reported() {
        let err = resolve(
            serve_args(&["--test-signing-alg", "HS256"]),
            &env_of(&[]),
            Path::new("/nonexistent"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("HS256"), "{err:#}");
    }
}
