//! SSO with a real OpenID Connect provider nobody here wrote:
//! node-oidc-provider (`tests/idp/oidc`, installed by `.ci/run` with
//! `npm ci`), with a code-flow client of this test's own. The whole browser
//! round trip runs over HTTP: Latchkey's authorization URL, the provider's
//! interaction (the test plays the person), its redirect back to
//! Latchkey's callback with `code`, `state` and `iss`, and on to the
//! application, which then polls its login for the session.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{decode_claims, TestApp};

const REDIRECT: &str = "https://app.example/after-sso";
const CLIENT_SECRET: &str = "node-oidc-client-secret-0123456789abcdef";

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp/oidc")
}

/// The provider, started for this test; `None` (skipped) when its npm
/// packages are not installed, which CI never allows.
async fn start_idp(redirect_uri: &str, accounts: Value) -> Option<(tokio::process::Child, String)> {
    let dir = idp_dir();
    if !dir.join("node_modules/oidc-provider").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "node-oidc-provider is not installed: run `npm ci` in tests/idp/oidc (.ci/run does)"
        );
        eprintln!("skipped: node-oidc-provider is not installed (npm ci in tests/idp/oidc)");
        return None;
    }
    let mut child = tokio::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("CLIENT_SECRET", CLIENT_SECRET)
        .env("REDIRECT_URIS", json!([redirect_uri]).to_string())
        .env("ACCOUNTS", accounts.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("listening ") {
                return issuer.to_owned();
            }
        }
        panic!("the provider exited before listening");
    })
    .await
    .expect("the provider starts within 30 s");
    // Keep reading what it prints, or its next line dies of a broken pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some((child, issuer))
}

/// Plays the browser from Latchkey's authorization URL to the
/// application: follows redirects by hand (keeping the provider's cookies),
/// signs in as `account` at the provider's interaction, and answers the
/// application's URL with the time Latchkey's callback took.
async fn browse(
    app: &TestApp,
    start: &str,
    account: &str,
) -> (reqwest::Url, Duration, HashMap<String, String>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut cookies: HashMap<String, String> = HashMap::new();
    let mut url = reqwest::Url::parse(start).unwrap();
    let mut callback = None;
    for _ in 0..12 {
        if url.path().starts_with("/interaction/")
            && !url.query().unwrap_or("").contains("account=")
        {
            url.query_pairs_mut().append_pair("account", account);
        }
        let to_latchkey = url.as_str().starts_with(&app.base);
        let mut request = client.get(url.clone());
        if !to_latchkey && !cookies.is_empty() {
            let jar: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            request = request.header("cookie", jar.join("; "));
        }
        let started = Instant::now();
        let resp = request.send().await.unwrap();
        let took = started.elapsed();
        if to_latchkey {
            callback = Some((
                took,
                url.query_pairs().into_owned().collect::<HashMap<_, _>>(),
            ));
        }
        for value in resp.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                cookies.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
        let status = resp.status();
        assert!(
            status.is_redirection(),
            "{url} answered {status}: {}",
            resp.text().await.unwrap()
        );
        let location = resp.headers()["location"].to_str().unwrap().to_owned();
        let next = url.join(&location).unwrap();
        if next.as_str().starts_with(REDIRECT) {
            let (took, query) = callback.expect("the browser passed Latchkey's callback");
            return (next, took, query);
        }
        url = next;
    }
    panic!("too many redirects");
}

async fn a_person_signs_in_with_node_oidc_provider_and_its_mfa_counts(app: TestApp) {
    let callback = format!(
        "{}/auth/sso/corp/callback",
        app.issuer(latchkey_types::Mode::Test)
    );
    let accounts = json!({
        "alice": {"claims": {"email": "alice@corp.example", "email_verified": true, "name": "Alice"},
                  "amr": ["pwd", "otp"]},
        "mallory": {"claims": {"email": "alice@corp.example", "email_verified": false, "name": "Mallory"},
                    "amr": ["pwd"]},
    });
    let Some((_idp, issuer)) = start_idp(&callback, accounts).await else {
        return;
    };
    let alice = app
        .post(
            "/v1/users",
            json!({"name": "Alice", "kind": "human", "email": "alice@corp.example"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .put(
            "/v1/identity-providers/corp",
            json!({"type": "oidc", "issuer": issuer, "clientId": "latchkey", "clientSecret": CLIENT_SECRET,
                   "linkBy": "email", "trustUpstreamMfa": true}),
        )
        .await;
    assert_eq!(r.expect(201)["callbackUrl"], callback);
    app.put(
        &format!("/v1/tenants/{}/login-policy", app.workspace_id),
        json!({"factors": ["password", "totp", "sso:corp"], "require": [["sso:corp", "totp"]],
               "allowedRedirectUris": [REDIRECT]}),
    )
    .await
    .expect(200);

    let mut server_side = Vec::new();
    for round in 0..3 {
        let login = app
            .send(Method::POST, "/auth/logins", None,
                Some(json!({"sso": "corp", "redirectUri": REDIRECT, "state": format!("round-{round}")})))
            .await;
        let login = login.expect(201).clone();
        let (id, secret) = (
            login["id"].as_str().unwrap(),
            login["secret"].as_str().unwrap(),
        );
        let (landed, took, callback_query) =
            browse(&app, login["authorizationUrl"].as_str().unwrap(), "alice").await;
        server_side.push(took);
        // RFC 9207: the provider said who answered.
        assert_eq!(callback_query.get("iss"), Some(&issuer));
        let landed: HashMap<String, String> = landed.query_pairs().into_owned().collect();
        assert_eq!(landed.get("login_id").map(String::as_str), Some(id));
        assert_eq!(landed.get("state").cloned(), Some(format!("round-{round}")));
        assert!(!landed.contains_key("error"), "{landed:?}");
        let polled = app
            .send(
                Method::GET,
                &format!("/auth/logins/{id}?code={}", landed["code"]),
                Some(secret),
                None,
            )
            .await;
        let polled = polled.expect(200);
        assert_eq!(polled["complete"], true, "{polled}");
        let claims = decode_claims(polled["session"]["accessToken"].as_str().unwrap());
        assert_eq!(claims["sub"], alice.as_str());
        assert_eq!(claims["amr"], json!(["mfa", "otp"]));
    }
    server_side.sort();
    eprintln!(
        "SSO callback with node-oidc-provider (code exchange, ID token check, link): {:?} (median of {})",
        server_side[server_side.len() / 2],
        server_side.len()
    );

    // The same address, unverified at the provider, must not take alice's
    // account: mallory's sign-in is refused.
    let login = app
        .send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"sso": "corp", "redirectUri": REDIRECT})),
        )
        .await;
    let login = login.expect(201).clone();
    let (landed, _, _) = browse(&app, login["authorizationUrl"].as_str().unwrap(), "mallory").await;
    let landed: HashMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(
        landed.get("error").map(String::as_str),
        Some("access_denied"),
        "{landed:?}"
    );
    let polled = app
        .send(
            Method::GET,
            &format!("/auth/logins/{}", login["id"].as_str().unwrap()),
            Some(login["secret"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(polled.expect(200)["complete"], false);
}

crate::on_both_stores!(a_person_signs_in_with_node_oidc_provider_and_its_mfa_counts);
