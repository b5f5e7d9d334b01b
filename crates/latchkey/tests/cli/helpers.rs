//! The test harness: a real Latchkey server started in this process on port
//! 0 with a fresh store, and runners for the real `latchkey` binary that
//! give it only the environment a test chooses.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_core::Mode;
use latchkey_server::{BootstrapKeys, Config, RunningServer, Settings};
use serde_json::Value;

/// The workspace id every test server is bootstrapped with.
pub const WORKSPACE: &str = "ws-test";

/// The path of the `latchkey` binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_latchkey"))
}

/// A running server and what a test needs to drive the CLI against it.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`, also the issuer.
    pub url: String,
    /// The test-mode admin key it was bootstrapped with.
    pub test_admin: String,
    /// The live-mode admin key it was bootstrapped with.
    pub live_admin: String,
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on a fresh SQLite store in a temporary directory.
    pub async fn spawn() -> TestServer {
        Self::spawn_with(false).await
    }

    /// Like [`TestServer::spawn`], on the native TLS listener with the
    /// development CA (`url` is then `https://…`).
    pub async fn spawn_tls() -> TestServer {
        Self::spawn_with(true).await
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    async fn spawn_with(tls: bool) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls { "https" } else { "http" };
        let settings = Settings {
            listen: Some(addr),
            data_dir: Some(dir.path().to_path_buf()),
            issuer: Some(format!("{scheme}://{addr}")),
            workspace_id: Some(WORKSPACE.into()),
            tls_self_signed: tls.then_some(true),
            ..Default::default()
        };
        let test_admin = credential::generate(Mode::Test, CredentialKind::Admin);
        let live_admin = credential::generate(Mode::Live, CredentialKind::Admin);
        let keys = BootstrapKeys {
            test: Some(test_admin.clone()),
            live: Some(live_admin.clone()),
            master_key: None,
        };
        let config = Config::resolve(settings, keys).unwrap();
        let server =
            latchkey_server::spawn_on(listener, config, Arc::new(SystemClock) as Arc<dyn Clock>)
                .await
                .unwrap();
        TestServer {
            url: format!("{scheme}://{addr}"),
            test_admin: test_admin.expose().to_owned(),
            live_admin: live_admin.expose().to_owned(),
            _server: server,
            _dir: dir,
        }
    }

    /// Runs `latchkey args…` with only `LATCHKEY_URL` and `env` set.
    pub async fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        self.run_with_stdin(env, args, None).await
    }

    /// Like [`TestServer::run`], writing `stdin` to the process's stdin.
    pub async fn run_with_stdin(
        &self,
        env: &[(&str, &str)],
        args: &[&str],
        stdin: Option<&str>,
    ) -> Output {
        let mut all = vec![("LATCHKEY_URL", self.url.as_str())];
        all.extend_from_slice(env);
        run_binary(&all, args, stdin).await
    }

    /// Runs an admin command with the test-mode admin key in the environment.
    pub async fn admin(&self, args: &[&str]) -> Output {
        let key = self.test_admin.clone();
        self.run(&[("LATCHKEY_ADMIN_KEY", &key)], args).await
    }

    /// Runs an admin command with `--json`, asserts success and parses stdout.
    pub async fn admin_json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.admin(&args).await;
        assert_success(&out);
        serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("stdout of {args:?} is not JSON ({e}): {}", stdout(&out)))
    }

    /// A test-mode machine with a client secret: `(user id, secret)`.
    pub async fn machine_with_secret(&self, name: &str) -> (String, String) {
        let user = self.admin_json(&["users", "create", "--name", name]).await;
        let user = user["id"].as_str().unwrap().to_owned();
        let secret = self.admin_json(&["secrets", "create", &user]).await;
        (user, secret["secret"].as_str().unwrap().to_owned())
    }

    /// An access token of `user` from `latchkey token`, with extra flags.
    pub async fn token(&self, user: &str, secret: &str, flags: &[&str]) -> String {
        let mut args = vec!["token", "--client-id", user];
        args.extend_from_slice(flags);
        let out = self.run(&[("LATCHKEY_CLIENT_SECRET", secret)], &args).await;
        assert_success(&out);
        stdout(&out).trim().to_owned()
    }

    /// A new test-mode API key of `user` with extra flags: `(id, value)`.
    pub async fn api_key(&self, user: &str, flags: &[&str]) -> (String, String) {
        let mut args = vec!["api-keys", "create", "--user", user];
        args.extend_from_slice(flags);
        let created = self.admin_json(&args).await;
        (
            created["id"].as_str().unwrap().to_owned(),
            created["key"].as_str().unwrap().to_owned(),
        )
    }
}

/// Runs the binary with exactly `env` (nothing inherited), `args` and
/// optional `stdin`, in a blocking task.
pub async fn run_binary(env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(binary());
    cmd.env_clear().args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit status 0, showing both streams otherwise.
#[track_caller]
pub fn assert_success(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

/// Asserts this exit status, showing both streams otherwise.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// Asserts that `secret` appears in neither stream.
#[track_caller]
pub fn assert_not_echoed(o: &Output, secret: &str) {
    assert!(
        !stdout(o).contains(secret),
        "stdout echoes it: {}",
        stdout(o)
    );
    assert!(
        !stderr(o).contains(secret),
        "stderr echoes it: {}",
        stderr(o)
    );
}

/// Whether a file named `program` is in a directory of this machine's `PATH`.
pub fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
