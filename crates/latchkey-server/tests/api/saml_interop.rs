//! SAML 2.0 with a real identity provider nobody here wrote: samlify with
//! its libxml2 schema validator (`tests/idp/saml`, installed by `.ci/run`
//! with `npm ci`). The whole round trip runs over HTTP: Latchkey's
//! redirect to the IdP with a deflated `AuthnRequest`, the IdP fetching
//! Latchkey's SP metadata (the request's issuer) and answering a signed
//! response (the test plays the person and the browser's auto-post), the
//! post to Latchkey's ACS, and on to the application, which polls its
//! login for the session. The attack suite on responses is
//! `latchkey-core`'s `tests/saml.rs`; here are the ones that need the
//! server: a replayed post, a post without `RelayState` (unsolicited), an
//! answer to another login's request, SHA-1 refused unless allowed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use latchkey_types::Mode;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{decode_claims, TestApp};

const REDIRECT: &str = "https://app.example/after-saml";

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp/saml")
}

/// The IdP, started for this test; `None` (skipped) when its npm packages
/// are not installed, which CI never allows.
async fn start_idp(accounts: Value) -> Option<(tokio::process::Child, String)> {
    let dir = idp_dir();
    if !dir.join("node_modules/samlify").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "samlify is not installed: run `npm ci` in tests/idp/saml (.ci/run does)"
        );
        eprintln!("skipped: samlify is not installed (npm ci in tests/idp/saml)");
        return None;
    }
    let mut child = tokio::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .env("ACCOUNTS", accounts.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(base) = line.strip_prefix("listening ") {
                return base.to_owned();
            }
        }
        panic!("the IdP exited before listening");
    })
    .await
    .expect("the IdP starts within 30 s");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some((child, base))
}

/// The IdP's signed answer to Latchkey's redirect, as its auto-post page
/// would send it: the ACS URL and the form fields.
async fn sign_in_at_idp(redirect: &str, account: &str, options: &[(&str, &str)]) -> Value {
    let mut url = reqwest::Url::parse(redirect).unwrap();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("account", account);
        for (k, v) in options {
            q.append_pair(k, v);
        }
    }
    let resp = reqwest::get(url).await.unwrap();
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert!(status.is_success(), "the IdP answered {status}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn decoded(answer: &Value) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(answer["SAMLResponse"].as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// Posts the IdP's answer to the ACS as the browser would; answers the
/// status, the `Location` and the time the ACS took.
async fn post_to_acs(
    acs: &str,
    response: &str,
    relay_state: Option<&str>,
) -> (u16, Option<String>, Duration) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut form = vec![("SAMLResponse", response)];
    if let Some(r) = relay_state {
        form.push(("RelayState", r));
    }
    let started = Instant::now();
    let resp = client.post(acs).form(&form).send().await.unwrap();
    let took = started.elapsed();
    let location = resp
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (resp.status().as_u16(), location, took)
}

async fn start_login(app: &TestApp, state: &str) -> (String, String, String) {
    let login = app
        .send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"sso": "corp", "redirectUri": REDIRECT, "state": state})),
        )
        .await;
    let login = login.expect(201);
    (
        login["id"].as_str().unwrap().to_owned(),
        login["secret"].as_str().unwrap().to_owned(),
        login["authorizationUrl"].as_str().unwrap().to_owned(),
    )
}

/// The login, polled with the code its browser brought back (if any).
async fn poll(app: &TestApp, id: &str, secret: &str, code: Option<&String>) -> Value {
    let query = code.map(|c| format!("?code={c}")).unwrap_or_default();
    app.send(
        Method::GET,
        &format!("/auth/logins/{id}{query}"),
        Some(secret),
        None,
    )
    .await
    .expect(200)
    .clone()
}

fn landed(location: &str) -> HashMap<String, String> {
    assert!(location.starts_with(REDIRECT), "{location}");
    reqwest::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

async fn a_person_signs_in_with_a_samlify_idp(app: TestApp) {
    let accounts = json!({
        "alice": {"nameId": "alice@corp.example",
                  "nameIdFormat": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
                  "attributes": {"email": "alice@corp.example", "name": "Alice Corp"},
                  "authnContextClassRef": "https://refeds.org/profile/mfa"},
        "bob": {"nameId": "bob@corp.example",
                "attributes": {"email": "bob@corp.example"}},
    });
    let Some((_idp, idp_base)) = start_idp(accounts).await else {
        return;
    };
    let metadata = reqwest::get(format!("{idp_base}/metadata"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    app.post("/v1/tenants", json!({"id": "staff", "name": "Staff"}))
        .await
        .expect(201);
    let tenant = "staff";
    let provider = json!({"type": "saml", "metadataXml": metadata, "trustUpstreamMfa": true,
        "provisioning": {"enabled": true, "tenantId": tenant, "roles": ["member"]}});
    let put = app
        .put("/v1/identity-providers/corp", provider.clone())
        .await;
    let put = put.expect(201);
    let sp_entity = format!("{}/auth/saml/corp/metadata", app.issuer(Mode::Test));
    let acs = format!("{}/auth/saml/corp/acs", app.issuer(Mode::Test));
    assert_eq!(put["metadataUrl"], sp_entity);
    assert_eq!(put["acsUrl"], acs);
    assert_eq!(put["entityId"], format!("{idp_base}/metadata"));
    assert_eq!(put["clockSkewSeconds"], 60);
    // The SP metadata is served where its entity id says.
    let sp_metadata = app.client.get(&sp_entity).send().await.unwrap();
    assert_eq!(sp_metadata.status(), 200);
    assert_eq!(
        sp_metadata.headers()["content-type"],
        "application/samlmetadata+xml"
    );
    assert!(sp_metadata
        .text()
        .await
        .unwrap()
        .contains(&format!("Location=\"{acs}\"")));
    let unknown = app
        .client
        .get(format!(
            "{}/auth/saml/nobody/metadata",
            app.issuer(Mode::Test)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.put(
        &format!("/v1/tenants/{}/login-policy", app.workspace_id),
        json!({"factors": ["password", "totp", "sso:corp"], "require": [["sso:corp", "totp"]],
               "allowedRedirectUris": [REDIRECT]}),
    )
    .await
    .expect(200);

    // An SSO login must name where the browser brings its code back.
    app.send(
        Method::POST,
        "/auth/logins",
        None,
        Some(json!({"sso": "corp"})),
    )
    .await
    .expect_problem(400, "invalid_request");

    // Alice signs in three times, with each signing shape samlify has; her
    // IdP's MFA context counts as the policy's second factor.
    let mut server_side = Vec::new();
    let mut alice = None;
    for (round, sign) in ["assertion", "response", "both"].iter().enumerate() {
        let (id, secret, redirect) = start_login(&app, &format!("round-{round}")).await;
        assert!(redirect.starts_with(&format!("{idp_base}/sso?SAMLRequest=")));
        let answer = sign_in_at_idp(&redirect, "alice", &[("sign", sign)]).await;
        assert_eq!(answer["acsUrl"], acs.as_str());
        // What samlify signed, as asked.
        let xml = decoded(&answer);
        let assertion_at = xml.find("<saml:Assertion").unwrap();
        let signatures: Vec<bool> = xml
            .match_indices("SignatureValue>")
            .step_by(2)
            .map(|(i, _)| i > assertion_at)
            .collect();
        let want = match *sign {
            "assertion" => vec![true],
            "response" => vec![false],
            _ => vec![false, true],
        };
        assert_eq!(signatures, want, "sign={sign}: {xml}");
        let (status, location, took) = post_to_acs(
            &acs,
            answer["SAMLResponse"].as_str().unwrap(),
            answer["RelayState"].as_str(),
        )
        .await;
        server_side.push(took);
        assert_eq!(status, 303, "sign={sign}: {location:?}");
        let landed = landed(&location.unwrap());
        assert_eq!(landed.get("login_id"), Some(&id));
        assert_eq!(landed.get("state").cloned(), Some(format!("round-{round}")));
        assert!(!landed.contains_key("error"), "sign={sign}: {landed:?}");
        // Whoever holds the login's secret but not the browser's code
        // (someone who started it and sent another person's browser
        // through) gets no session.
        app.send(
            Method::GET,
            &format!("/auth/logins/{id}"),
            Some(&secret),
            None,
        )
        .await
        .expect_problem(403, "forbidden");
        let polled = poll(&app, &id, &secret, landed.get("code")).await;
        assert_eq!(polled["complete"], true, "sign={sign}: {polled}");
        let claims = decode_claims(polled["session"]["accessToken"].as_str().unwrap());
        // Provisioned the first time, the same user after.
        let sub = claims["sub"].as_str().unwrap().to_owned();
        assert_eq!(alice.get_or_insert_with(|| sub.clone()), &sub);
        assert_eq!(claims["amr"], json!(["mfa", "otp"]));

        // The same post again: the flow is spent.
        let (again, location, _) = post_to_acs(
            &acs,
            answer["SAMLResponse"].as_str().unwrap(),
            answer["RelayState"].as_str(),
        )
        .await;
        assert_eq!(again, 400, "a replayed post: {location:?}");
    }
    server_side.sort();
    eprintln!(
        "SAML ACS with samlify (signature, conditions, replay cache, link): {:?} (median of {})",
        server_side[server_side.len() / 2],
        server_side.len()
    );
    let user = app
        .get(&format!("/v1/users/{}", alice.as_deref().unwrap()))
        .await;
    let user = user.expect(200);
    assert_eq!(user["email"], "alice@corp.example");
    assert_eq!(user["name"], "Alice Corp");

    // Bob's IdP login names no second factor: the policy still asks TOTP.
    let (id, secret, redirect) = start_login(&app, "bob").await;
    let answer = sign_in_at_idp(&redirect, "bob", &[]).await;
    let (status, _, _) = post_to_acs(
        &acs,
        answer["SAMLResponse"].as_str().unwrap(),
        answer["RelayState"].as_str(),
    )
    .await;
    assert_eq!(status, 303);
    let polled = poll(&app, &id, &secret, None).await;
    assert_eq!(polled["complete"], false, "{polled}");

    // Unsolicited: no RelayState finds no flow.
    let (_, _, redirect) = start_login(&app, "unsolicited").await;
    let answer = sign_in_at_idp(&redirect, "alice", &[]).await;
    let (status, location, _) =
        post_to_acs(&acs, answer["SAMLResponse"].as_str().unwrap(), None).await;
    assert_eq!((status, location), (400, None));

    // An answer to another login's request, posted with this login's
    // RelayState, is refused, and the application hears of it.
    let (_, _, first) = start_login(&app, "first").await;
    let (id, secret, second) = start_login(&app, "second").await;
    let to_first = sign_in_at_idp(&first, "alice", &[]).await;
    let second_relay = reqwest::Url::parse(&second)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let (status, location, _) = post_to_acs(
        &acs,
        to_first["SAMLResponse"].as_str().unwrap(),
        Some(&second_relay),
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        landed(&location.unwrap()).get("error").map(String::as_str),
        Some("access_denied")
    );
    assert_eq!(poll(&app, &id, &secret, None).await["complete"], false);

    // SHA-1 is refused by default, and accepted once the provider allows it.
    for allow in [false, true] {
        if allow {
            let mut p = provider.clone();
            p["allowSha1"] = json!(true);
            app.put("/v1/identity-providers/corp", p).await.expect(200);
        }
        let (id, secret, redirect) = start_login(&app, "sha1").await;
        let answer = sign_in_at_idp(&redirect, "alice", &[("alg", "sha1")]).await;
        assert!(decoded(&answer).contains("xmldsig#rsa-sha1"));
        let (status, location, _) = post_to_acs(
            &acs,
            answer["SAMLResponse"].as_str().unwrap(),
            answer["RelayState"].as_str(),
        )
        .await;
        assert_eq!(status, 303);
        let landed = landed(&location.unwrap());
        assert_eq!(landed.contains_key("error"), !allow, "allowSha1 {allow}");
        let polled = poll(&app, &id, &secret, landed.get("code")).await;
        assert_eq!(polled["complete"], allow);
    }
}

crate::on_both_stores!(a_person_signs_in_with_a_samlify_idp);
