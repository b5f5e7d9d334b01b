//! `latchkey serve` as a child process: first-start output, a second start
//! on the same data, a graceful stop on SIGTERM, and a bad configuration.

use std::io::BufRead as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// A free port on loopback: bound, read, and released for `serve` to take.
pub(crate) fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A `latchkey serve` child whose stderr is collected by a thread as it
/// comes (so a chatty log can never fill the pipe and block the server).
pub(crate) struct Serve {
    pub(crate) child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
    pub(crate) url: String,
}

impl Serve {
    /// Starts `latchkey serve` in `cwd` with its data in `data_dir`, on a
    /// free port, with nothing inherited from this environment.
    fn start(cwd: &Path, data_dir: &Path) -> Serve {
        Serve::start_with(cwd, data_dir, &[])
    }

    /// Like [`Serve::start`], with more arguments for `serve`.
    pub(crate) fn start_with(cwd: &Path, data_dir: &Path, extra: &[&str]) -> Serve {
        let port = free_port();
        let mut child = Command::new(binary())
            .env_clear()
            .current_dir(cwd)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pipe = std::io::BufReader::new(child.stderr.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in pipe.lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Serve {
            child,
            stderr,
            reader: Some(reader),
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Polls `/healthz` until it answers 200, for at most 30 seconds.
    pub(crate) async fn wait_healthy(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(resp) = client.get(format!("{}/healthz", self.url)).send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("serve exited early with {status}: {}", self.stderr_text());
            }
            assert!(Instant::now() < deadline, "serve did not become healthy");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits up to `limit` for the exit status.
    fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("serve did not stop within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the child wrote to stderr so far; all of it once it exited.
    pub(crate) fn stderr_text(&mut self) -> String {
        if let (Ok(Some(_)), Some(reader)) = (self.child.try_wait(), self.reader.take()) {
            reader.join().unwrap();
        }
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value printed after `NAME=` on its own line of the first-start banner.
pub(crate) fn printed(stderr: &str, name: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{name}=")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_prints_the_admin_keys_once_on_first_start_and_stops_cleanly_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("data");

    let mut first = Serve::start(cwd.path(), &data);
    first.wait_healthy().await;
    // The banner is printed before the server listens, so it is there now.
    let stderr = first.stderr_text();
    let test_keys = printed(&stderr, "LATCHKEY_TEST_ADMIN_KEY");
    let live_keys = printed(&stderr, "LATCHKEY_LIVE_ADMIN_KEY");
    assert_eq!(test_keys.len(), 1, "{stderr}");
    assert_eq!(live_keys.len(), 1, "{stderr}");
    assert!(test_keys[0].starts_with("lk_test_admin_"), "{stderr}");
    assert!(live_keys[0].starts_with("lk_live_admin_"), "{stderr}");
    // The printed test key administers the server.
    let out = run_binary(
        &[
            ("LATCHKEY_URL", &first.url),
            ("LATCHKEY_ADMIN_KEY", &test_keys[0]),
        ],
        &["workspace", "--json"],
        None,
    )
    .await;
    assert_success(&out);

    let status = first.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    let stderr = first.stderr_text();
    for key in [&test_keys[0], &live_keys[0]] {
        assert_eq!(
            stderr.matches(key.as_str()).count(),
            1,
            "printed once: {stderr}"
        );
    }
    assert_eq!(
        stderr.matches("admin keys (shown once").count(),
        1,
        "{stderr}"
    );

    // A second start on the same data prints no key, and the first key
    // still works.
    let mut second = Serve::start(cwd.path(), &data);
    second.wait_healthy().await;
    let out = run_binary(
        &[
            ("LATCHKEY_URL", &second.url),
            ("LATCHKEY_ADMIN_KEY", &test_keys[0]),
        ],
        &["workspace", "--json"],
        None,
    )
    .await;
    assert_success(&out);
    let status = second.terminate(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}");
    let stderr = second.stderr_text();
    assert!(!stderr.contains("lk_test_admin_"), "{stderr}");
    assert!(!stderr.contains("lk_live_admin_"), "{stderr}");
    assert!(!stderr.contains("shown once"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_setting_in_latchkey_toml_stops_serve_with_a_clear_message() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("latchkey.toml"), "listen_port = 8080\n").unwrap();
    let out = tokio::task::spawn_blocking({
        let cwd = cwd.path().to_path_buf();
        move || {
            Command::new(binary())
                .env_clear()
                .current_dir(&cwd)
                .args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())])
                .arg("--data-dir")
                .arg(cwd.join("data"))
                .stdin(Stdio::null())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success(), "serve must refuse the file");
    let err = stderr(&out);
    assert!(err.contains("latchkey.toml"), "{err}");
    assert!(err.contains("unknown field `listen_port`"), "{err}");
    assert!(err.lines().any(|l| l.starts_with("error: ")), "{err}");
    assert!(!cwd.path().join("data").exists(), "nothing was created");
}
