//! The README's "Walk-through" and "API keys" sections, run against the
//! real server: once literally, as a shell script cut out of the README, and
//! once command by command with the output checked in detail.

use std::path::Path;

use serde_json::Value;

use crate::helpers::*;

/// The README at the root of the workspace.
fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of the README from the heading `from` up to the heading `to`.
fn section<'a>(readme: &'a str, from: &str, to: &str) -> &'a str {
    let start = readme
        .find(from)
        .unwrap_or_else(|| panic!("no {from:?} in the README"));
    let end = readme[start..].find(to).map_or(readme.len(), |i| start + i);
    &readme[start..end]
}

/// The fenced code blocks of `text` in language `lang`, in order.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&fence) {
        let body = &rest[i + fence.len()..];
        let end = body.find("```").expect("an unterminated code block");
        out.push(body[..end].to_owned());
        rest = &body[end + 3..];
    }
    out
}

/// The walk-through and API-key sections of the README.
fn walk_through_text(readme: &str) -> String {
    format!(
        "{}{}",
        section(readme, "## Walk-through", "## API keys"),
        section(readme, "## API keys", "## Introspection and revocation")
    )
}

/// Runs `script` with bash (`-euo pipefail`), the built binary first on
/// `PATH`, `LATCHKEY_URL` set to the server and nothing else from this
/// environment, in `cwd`.
async fn run_script(server: &TestServer, script: String, cwd: &Path) -> std::process::Output {
    let bin_dir = binary().parent().unwrap().to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let url = server.url.clone();
    let dir = cwd.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &script])
            .env_clear()
            .env("PATH", path)
            .env("LATCHKEY_URL", url)
            .current_dir(&dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walk_through_runs_as_written_in_a_shell() {
    for tool in ["bash", "jq", "curl"] {
        if !have(tool) {
            eprintln!("skipped: `{tool}` is not installed (the README's commands use it)");
            return;
        }
    }
    let server = TestServer::spawn().await;
    let readme = readme();
    let text = walk_through_text(&readme);
    // The README's placeholders and its default address become this test
    // server's; every command is otherwise run as written.
    let script = blocks(&text, "sh")
        .join("\n")
        .replace("lk_test_admin_…", &server.test_admin)
        .replace("http://127.0.0.1:8080", &server.url);
    assert!(script.contains("latchkey api-keys create"), "{script}");
    let cwd = tempfile::tempdir().unwrap();
    let out = run_script(&server, script, cwd.path()).await;
    assert_success(&out);
    let text = stdout(&out);
    // The decoded token, the token over plain HTTP, and the key's verdict.
    assert!(text.contains("\"tenantId\": \"eu\""), "{text}");
    assert!(text.contains("\"access_token\":"), "{text}");
    assert!(text.contains("\"valid\":true"), "{text}");
    assert!(text.contains("\"remaining\":999"), "{text}");
    assert!(
        text.contains(r#""authorization":{"eu":{"roles":["operator"]}}"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walk_through_works_command_by_command() {
    let server = TestServer::spawn().await;
    let run = |args: &'static [&'static str]| server.admin(args);
    for args in [
        &["tenants", "create", "--id", "acme", "--name", "Acme"][..],
        &[
            "tenants", "create", "--id", "eu", "--name", "Acme EU", "--parent", "acme",
        ],
        &[
            "tenants",
            "create",
            "--id",
            "eu-factory",
            "--name",
            "EU factory",
            "--parent",
            "eu",
        ],
        &[
            "tenants",
            "create",
            "--id",
            "partners",
            "--name",
            "Partners",
            "--parent",
            "acme",
            "--no-cascade",
        ],
        &[
            "roles",
            "set",
            "operator",
            "--permission",
            "telemetry:write",
            "--permission",
            "telemetry:read",
        ],
        &[
            "roles",
            "set",
            "iot-remote",
            "--permission",
            "device:command",
        ],
    ] {
        assert_success(&run(args).await);
    }
    let user = server
        .admin_json(&["users", "create", "--name", "sensor-17"])
        .await;
    let user = user["id"].as_str().unwrap().to_owned();
    let ws = server.admin_json(&["workspace"]).await;
    let ws = ws["id"].as_str().unwrap().to_owned();
    assert_success(
        &server
            .admin(&["members", "set", &ws, &user, "--role", "iot-remote"])
            .await,
    );
    assert_success(
        &server
            .admin(&["members", "set", "eu", &user, "--role", "operator"])
            .await,
    );
    let secret = server.admin_json(&["secrets", "create", &user]).await;
    let secret = secret["secret"].as_str().unwrap().to_owned();

    // The token, decoded: the claims the README shows, with its values.
    let out = server
        .run(
            &[],
            &[
                "token",
                "--client-id",
                &user,
                "--client-secret",
                &secret,
                "--tenant",
                "eu",
                "--scope",
                "telemetry:write",
                "--audience",
                "https://telemetry.acme.example",
                "--decode",
            ],
        )
        .await;
    assert_success(&out);
    let text = stdout(&out);
    let (token, decoded) = text.split_once('\n').unwrap();
    let claims_text = decoded
        .find("\n{")
        .map(|i| &decoded[i + 1..])
        .expect("header, then claims");
    let claims: Value = serde_json::from_str(claims_text).unwrap();
    let readme = readme();
    let shown: Value = serde_json::from_str(&blocks(&walk_through_text(&readme), "json")[0])
        .expect("the README's claims block is JSON");
    for (name, value) in shown.as_object().unwrap() {
        assert!(
            claims.get(name).is_some(),
            "the README shows {name:?}, the token lacks it"
        );
        let fixed = ["aud", "scope", "mode", "tenantId", "kind", "authorization"];
        if fixed.contains(&name.as_str()) {
            assert_eq!(&claims[name], value, "claim {name}");
        }
    }
    assert_eq!(claims["iss"], format!("{}/test", server.url));
    assert_eq!(claims["sub"], user.as_str());

    // `latchkey verify` agrees, as a test-mode token for that audience.
    let out = server
        .run(
            &[],
            &[
                "verify",
                token,
                "--mode",
                "test",
                "--audience",
                "https://telemetry.acme.example",
            ],
        )
        .await;
    assert_exit(&out, 0);

    // `latchkey authorization "$USER_ID" --tenant acme`.
    let out = server
        .admin(&["authorization", &user, "--tenant", "acme"])
        .await;
    assert_success(&out);
    // The token's tenant, and each descendant where the user holds roles
    // itself (eu), with the roles effective there; partners, a boundary,
    // and eu-factory, where the user holds nothing itself, have no entry.
    assert_eq!(
        stdout(&out),
        "TENANT  ROLES\nacme    iot-remote\neu      iot-remote, operator\n"
    );

    // The API-key section: create, then verify (the README uses curl).
    let created = server
        .admin_json(&[
            "api-keys",
            "create",
            "--user",
            &user,
            "--tenant",
            "eu",
            "--role",
            "operator",
            "--remaining",
            "1000",
            "--rate-limit",
            "100/60",
        ])
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let out = server.admin(&["verify", &key, "--json"]).await;
    assert_exit(&out, 0);
    let verdict: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["tenantId"], "eu");
    assert_eq!(verdict["roles"], serde_json::json!(["operator"]));
    assert_eq!(
        verdict["authorization"],
        serde_json::json!({"eu": {"roles": ["operator"]}})
    );
    assert_eq!(verdict["remaining"], 999);
    assert_eq!(verdict["expiresAt"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_login_walk_through_runs_as_written_in_a_shell() {
    for tool in ["bash", "jq", "curl", "python3"] {
        if !have(tool) {
            eprintln!("skipped: `{tool}` is not installed (the README's commands use it)");
            return;
        }
    }
    let pyotp = std::process::Command::new("python3")
        .args(["-c", "import pyotp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !pyotp {
        assert!(std::env::var("CI").is_err(), "CI must have pyotp installed");
        eprintln!("skipped: python3 with pyotp is not available");
        return;
    }
    let server = TestServer::spawn().await;
    let readme = readme();
    let text = section(&readme, "## Logins and sessions", "## Signing keys");
    let script = blocks(text, "sh")
        .join("\n")
        .replace("lk_test_admin_…", &server.test_admin)
        .replace("localhost:8080", &server.url);
    assert!(script.contains("latchkey login"), "{script}");
    let cwd = tempfile::tempdir().unwrap();
    let out = run_script(&server, script, cwd.path()).await;
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("backupCodes"), "{text}");
    assert!(
        text.contains("mfa+otp+pwd"),
        "the second login used TOTP: {text}"
    );
    assert!(text.contains("\"session\""), "/v1/me answered: {text}");
    assert!(text.contains("Logged out"), "{text}");
    assert!(!cwd.path().join("session.json").exists());
}
