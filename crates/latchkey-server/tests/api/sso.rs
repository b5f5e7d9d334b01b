//! SSO through OpenID Connect, against a provider this test runs and
//! controls (so it can send what a hostile or broken provider sends): the
//! happy path, then every answer that must be refused (state, iss, nonce,
//! PKCE, forged and misdirected ID tokens, an unverified email used to
//! link an account). The round trip with a real provider
//! (node-oidc-provider) is in `oidc_interop.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, State};
use axum::routing::{get, post};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::signing::{Algorithm, SigningKey};
use parking_lot::Mutex;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{decode_claims, Reply, TestApp};

const REDIRECT: &str = "https://app.example/signed-in";

/// What the provider will answer at its token endpoint, and what it saw.
#[derive(Default)]
struct Script {
    /// The ID token to hand out next.
    id_token: Option<String>,
    /// PKCE challenges by code: the token endpoint checks the verifier.
    challenges: HashMap<String, String>,
    /// Token requests seen.
    exchanges: usize,
}

struct FakeIdp {
    issuer: String,
    key: SigningKey,
    script: Arc<Mutex<Script>>,
}

async fn token_endpoint(
    State(script): State<Arc<Mutex<Script>>>,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut s = script.lock();
    s.exchanges += 1;
    let code = form.get("code").cloned().unwrap_or_default();
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let expected = s.challenges.get(&code).cloned();
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    if form.get("grant_type").map(String::as_str) != Some("authorization_code")
        || expected.as_deref() != Some(computed.as_str())
    {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    axum::Json(json!({
        "access_token": "provider-access-token",
        "token_type": "Bearer",
        "id_token": s.id_token.clone().unwrap_or_default(),
    }))
    .into_response()
}

impl FakeIdp {
    async fn start() -> FakeIdp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let key = SigningKey::generate(Algorithm::RS256).unwrap();
        let script = Arc::new(Mutex::new(Script::default()));
        let discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "authorization_response_iss_parameter_supported": true,
        });
        let jwks = json!({"keys": [key.public_jwk()]});
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let d = discovery.clone();
                    async move { axum::Json(d) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let j = jwks.clone();
                    async move { axum::Json(j) }
                }),
            )
            .route("/token", post(token_endpoint))
            .route(
                "/user",
                get(|headers: axum::http::HeaderMap| async move {
                    use axum::response::IntoResponse;
                    // GitHub-style userinfo: a numeric id, no email_verified.
                    if headers.get("authorization").and_then(|v| v.to_str().ok())
                        != Some("Bearer provider-access-token")
                    {
                        return axum::http::StatusCode::UNAUTHORIZED.into_response();
                    }
                    axum::Json(
                        json!({"id": 583231, "login": "octocat", "email": "octo@corp.example",
                        "amr": ["mfa"]}),
                    )
                    .into_response()
                }),
            )
            .with_state(script.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        FakeIdp {
            issuer,
            key,
            script,
        }
    }
}

/// A login started with `sso: corp`: its id, secret, and the parameters
/// of the authorization URL.
async fn begin(app: &TestApp) -> (String, String, HashMap<String, String>) {
    let r = app
        .send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"sso": "corp", "redirectUri": REDIRECT, "state": "app-state-1"})),
        )
        .await;
    let body = r.expect(201).clone();
    let url = reqwest::Url::parse(body["authorizationUrl"].as_str().unwrap()).unwrap();
    let params = url.query_pairs().into_owned().collect();
    (
        body["id"].as_str().unwrap().to_owned(),
        body["secret"].as_str().unwrap().to_owned(),
        params,
    )
}

/// The browser comes back: the callback's answer (not followed).
async fn come_back(app: &TestApp, query: &[(&str, &str)]) -> Reply {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = reqwest::Url::parse_with_params(
        &format!(
            "{}/auth/sso/corp/callback",
            app.issuer(latchkey_types::Mode::Test)
        ),
        query,
    )
    .unwrap();
    let resp = client.get(url).send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    Reply {
        status,
        headers,
        body: Value::Null,
        text,
    }
}

fn location(r: &Reply) -> HashMap<String, String> {
    assert_eq!(r.status, 303, "{}", r.text);
    let url = reqwest::Url::parse(r.headers["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap(),
            url.path()
        ),
        REDIRECT
    );
    url.query_pairs().into_owned().collect()
}

impl FakeIdp {
    /// The ID token a good provider would send for this flow, edited.
    fn id_token(
        &self,
        app: &TestApp,
        params: &HashMap<String, String>,
        edit: impl FnOnce(&mut Value),
    ) -> String {
        let now = app.now();
        let mut claims = json!({
            "iss": self.issuer, "aud": "latchkey", "sub": "alice-at-corp",
            "email": "alice@corp.example", "email_verified": true, "name": "Alice",
            "iat": now, "exp": now + 300, "nonce": params["nonce"], "amr": ["pwd", "otp"],
        });
        edit(&mut claims);
        app.sign(&self.key, &claims, true)
    }

    /// Prepares the token endpoint: `code` redeems to `id_token` with the
    /// flow's PKCE challenge.
    fn expect(&self, code: &str, params: &HashMap<String, String>, id_token: String) {
        let mut s = self.script.lock();
        s.challenges
            .insert(code.to_owned(), params["code_challenge"].clone());
        s.id_token = Some(id_token);
    }
}

async fn configure(app: &TestApp, idp: &FakeIdp, extra: Value) {
    let mut body = json!({
        "type": "oidc", "issuer": idp.issuer, "clientId": "latchkey",
        "clientSecret": "corp-client-secret-0123456789", "linkBy": "email",
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = app.put("/v1/identity-providers/corp", body).await;
    assert!(r.status == 201 || r.status == 200, "{}", r.text);
    assert!(
        !r.text.contains("corp-client-secret"),
        "the secret is shown: {}",
        r.text
    );
    app.put(
        &format!("/v1/tenants/{}/login-policy", app.workspace_id),
        json!({"factors": ["password", "totp", "sso:corp"], "require": [["sso:corp", "totp"], ["password", "totp"]],
               "allowedRedirectUris": [REDIRECT]}),
    )
    .await
    .expect(200);
}

async fn oidc_logins_link_by_verified_email_and_refuse_every_bad_answer(app: TestApp) {
    let idp = FakeIdp::start().await;
    let alice = app
        .post(
            "/v1/users",
            json!({"name": "Alice", "email": "alice@corp.example", "kind": "human"}),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    configure(&app, &idp, json!({"trustUpstreamMfa": true})).await;
    let provider = app.get("/v1/identity-providers/corp").await;
    let provider = provider.expect(200);
    assert_eq!(
        provider["callbackUrl"],
        format!(
            "{}/auth/sso/corp/callback",
            app.issuer(latchkey_types::Mode::Test)
        )
    );
    assert_eq!(provider["clientSecretSet"], true);

    // The happy path: the provider vouches for alice with pwd+otp, which
    // counts for the policy's totp because the provider is trusted for MFA.
    let (id, secret, params) = begin(&app).await;
    assert_eq!(params["code_challenge_method"], "S256");
    assert_eq!(params["client_id"], "latchkey");
    assert!(params["scope"].contains("openid"));
    idp.expect("code-1", &params, idp.id_token(&app, &params, |_| {}));
    let back = come_back(
        &app,
        &[
            ("code", "code-1"),
            ("state", &params["state"]),
            ("iss", &idp.issuer),
        ],
    )
    .await;
    let landed = location(&back);
    assert_eq!(landed.get("login_id"), Some(&id));
    assert_eq!(landed.get("state").map(String::as_str), Some("app-state-1"));
    assert!(!landed.contains_key("error"), "{landed:?}");
    assert!(
        !back.headers["location"].to_str().unwrap().contains("lk_"),
        "a secret in the URL"
    );
    // The session goes only to a poll with the code the browser brought
    // back: whoever started a login and sent someone else's browser
    // through it gets nothing (found in review).
    for wrong in ["", "?code=not-the-code"] {
        let polled = app
            .send(
                Method::GET,
                &format!("/auth/logins/{id}{wrong}"),
                Some(&secret),
                None,
            )
            .await;
        polled.expect_problem(403, "forbidden");
    }
    let polled = app
        .send(
            Method::GET,
            &format!("/auth/logins/{id}?code={}", landed["code"]),
            Some(&secret),
            None,
        )
        .await;
    let polled = polled.expect(200);
    assert_eq!(polled["complete"], true, "{polled}");
    let claims = decode_claims(polled["session"]["accessToken"].as_str().unwrap());
    assert_eq!(claims["sub"], alice.as_str());
    assert_eq!(claims["amr"], json!(["mfa", "otp"]));
    // The callback is used once: the same state again is refused.
    let again = come_back(
        &app,
        &[
            ("code", "code-1"),
            ("state", &params["state"]),
            ("iss", &idp.issuer),
        ],
    )
    .await;
    assert_eq!(again.status, 400, "{}", again.text);

    // Each bad answer: the browser goes back with error=access_denied (or
    // gets a page when the state names no flow) and the login gets nothing.
    type Case = (&'static str, fn(&mut Value), Option<&'static str>);
    let cases: Vec<Case> = vec![
        (
            "another audience",
            |c| c["aud"] = json!("someone-else"),
            None,
        ),
        (
            "expired",
            |c| c["exp"] = json!(c["iat"].as_i64().unwrap() - 3600),
            None,
        ),
        ("wrong nonce", |c| c["nonce"] = json!("not-the-nonce"), None),
        (
            "no nonce",
            |c| {
                c.as_object_mut().unwrap().remove("nonce");
            },
            None,
        ),
        (
            "another issuer in the token",
            |c| c["iss"] = json!("https://evil.example"),
            None,
        ),
        ("alg none", |_| {}, Some("none")),
        ("HS256 keyed with the public key", |_| {}, Some("hs256")),
        ("signed by a stranger", |_| {}, Some("stranger")),
        ("wrong iss parameter", |_| {}, Some("iss")),
        ("missing iss parameter", |_| {}, Some("no-iss")),
        ("a code of another flow (PKCE)", |_| {}, Some("pkce")),
        ("the provider reports an error", |_| {}, Some("error")),
    ];
    for (i, (why, edit, special)) in cases.into_iter().enumerate() {
        let (id, secret, params) = begin(&app).await;
        let code = format!("code-bad-{i}");
        let mut token = idp.id_token(&app, &params, edit);
        match special {
            Some("none") => {
                let parts: Vec<&str> = token.split('.').collect();
                token = format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD
                        .encode(json!({"alg": "none", "kid": idp.key.kid()}).to_string()),
                    parts[1]
                );
            }
            Some("hs256") => {
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                header.kid = Some(idp.key.kid().to_owned());
                let claims = decode_claims(&token);
                let public = serde_json::to_vec(idp.key.public_jwk()).unwrap();
                token = jsonwebtoken::encode(
                    &header,
                    &claims,
                    &jsonwebtoken::EncodingKey::from_secret(&public),
                )
                .unwrap();
            }
            Some("stranger") => {
                let stranger = SigningKey::generate(Algorithm::RS256).unwrap();
                let claims = decode_claims(&token);
                let forged = app.sign(&stranger, &claims, false);
                let mut parts: Vec<String> = forged.split('.').map(str::to_owned).collect();
                parts[0] = URL_SAFE_NO_PAD
                    .encode(json!({"alg": "RS256", "kid": idp.key.kid()}).to_string());
                token = parts.join(".");
            }
            _ => {}
        }
        let mut challenge_params = params.clone();
        if special == Some("pkce") {
            // The code was issued to another browser's challenge.
            challenge_params.insert(
                "code_challenge".into(),
                URL_SAFE_NO_PAD.encode(Sha256::digest(b"another verifier")),
            );
        }
        idp.expect(&code, &challenge_params, token);
        let mut query: Vec<(&str, String)> =
            vec![("code", code.clone()), ("state", params["state"].clone())];
        match special {
            Some("iss") => query.push(("iss", "https://evil.example".into())),
            Some("no-iss") => {}
            Some("error") => {
                query = vec![
                    ("error", "access_denied".into()),
                    ("state", params["state"].clone()),
                    ("iss", idp.issuer.clone()),
                ]
            }
            _ => query.push(("iss", idp.issuer.clone())),
        }
        let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let back = come_back(&app, &query).await;
        let landed = location(&back);
        assert_eq!(
            landed.get("error").map(String::as_str),
            Some("access_denied"),
            "{why}: {landed:?}"
        );
        let polled = app
            .send(
                Method::GET,
                &format!("/auth/logins/{id}"),
                Some(&secret),
                None,
            )
            .await;
        let polled = polled.expect(200);
        assert_eq!(polled["complete"], false, "{why}: {polled}");
        assert_eq!(polled["satisfied"], json!([]), "{why}: {polled}");
    }
    // A state nobody issued, and none at all: a page, no redirect.
    for query in [
        vec![("code", "x"), ("state", "made-up")],
        vec![("code", "x")],
    ] {
        let r = come_back(&app, &query).await;
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.headers.get("location").is_none());
    }
}

async fn an_unverified_email_links_nobody_and_provisioning_creates_users(app: TestApp) {
    let idp = FakeIdp::start().await;
    app.post(
        "/v1/users",
        json!({"name": "Bob", "email": "bob@corp.example", "kind": "human"}),
    )
    .await
    .expect(201);
    configure(&app, &idp, json!({})).await;
    app.put(
        &format!("/v1/tenants/{}/login-policy", app.workspace_id),
        json!({"factors": ["password", "sso:corp"], "require": [["sso:corp"], ["password"]],
               "allowedRedirectUris": [REDIRECT]}),
    )
    .await
    .expect(200);
    // bob@ is not verified by the provider: it links nobody, and the
    // provider may not create users.
    let (id, secret, params) = begin(&app).await;
    idp.expect(
        "u-1",
        &params,
        idp.id_token(&app, &params, |c| {
            c["sub"] = json!("bob-at-corp");
            c["email"] = json!("bob@corp.example");
            c["email_verified"] = json!(false);
        }),
    );
    let back = come_back(
        &app,
        &[
            ("code", "u-1"),
            ("state", &params["state"]),
            ("iss", &idp.issuer),
        ],
    )
    .await;
    assert_eq!(
        location(&back).get("error").map(String::as_str),
        Some("access_denied")
    );
    let polled = app
        .send(
            Method::GET,
            &format!("/auth/logins/{id}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(polled.expect(200)["complete"], false);

    // With provisioning on, the same person gets a new user (not bob's),
    // linked to the subject: the next login finds it without email.
    app.post("/v1/tenants", json!({"id": "staff", "name": "Staff"}))
        .await
        .expect(201);
    configure(
        &app,
        &idp,
        json!({"provisioning": {"enabled": true, "tenantId": "staff", "roles": ["member"]}}),
    )
    .await;
    app.put(
        &format!("/v1/tenants/{}/login-policy", app.workspace_id),
        json!({"factors": ["password", "sso:corp"], "require": [["sso:corp"], ["password"]],
               "allowedRedirectUris": [REDIRECT]}),
    )
    .await
    .expect(200);
    let mut users = Vec::new();
    for code in ["p-1", "p-2"] {
        let (id, secret, params) = begin(&app).await;
        idp.expect(
            code,
            &params,
            idp.id_token(&app, &params, |c| {
                c["sub"] = json!("bob-at-corp");
                c["email"] = json!("bob@corp.example");
                c["email_verified"] = json!(false);
                c["amr"] = json!(["pwd"]);
            }),
        );
        let back = come_back(
            &app,
            &[
                ("code", code),
                ("state", &params["state"]),
                ("iss", &idp.issuer),
            ],
        )
        .await;
        let landed = location(&back);
        assert!(!landed.contains_key("error"));
        let polled = app
            .send(
                Method::GET,
                &format!("/auth/logins/{id}?code={}", landed["code"]),
                Some(&secret),
                None,
            )
            .await;
        let polled = polled.expect(200);
        assert_eq!(polled["complete"], true, "{polled}");
        users
            .push(decode_claims(polled["session"]["accessToken"].as_str().unwrap())["sub"].clone());
    }
    assert_eq!(users[0], users[1]);
    let user = app
        .get(&format!("/v1/users/{}", users[0].as_str().unwrap()))
        .await;
    let user = user.expect(200);
    assert_eq!(user["kind"], "human");
    assert_eq!(user["emailVerified"], false);
    let roles = app
        .get(&format!(
            "/v1/users/{}/authorization?tenantId=staff",
            users[0].as_str().unwrap()
        ))
        .await;
    assert!(roles.text.contains("member"), "{}", roles.text);
    let audit = app.get("/v1/audit-events?action=identity.linked").await;
    assert_eq!(audit.expect(200)["data"].as_array().unwrap().len(), 1);
    // A login for bob's identifier cannot be completed by someone else's
    // provider account.
    let r = app
        .send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"identifier": "bob@corp.example", "sso": "corp", "redirectUri": REDIRECT})),
        )
        .await;
    let body = r.expect(201).clone();
    let url = reqwest::Url::parse(body["authorizationUrl"].as_str().unwrap()).unwrap();
    let params: HashMap<String, String> = url.query_pairs().into_owned().collect();
    idp.expect(
        "p-3",
        &params,
        idp.id_token(&app, &params, |c| c["sub"] = json!("bob-at-corp")),
    );
    let back = come_back(
        &app,
        &[
            ("code", "p-3"),
            ("state", &params["state"]),
            ("iss", &idp.issuer),
        ],
    )
    .await;
    assert_eq!(
        location(&back).get("error").map(String::as_str),
        Some("access_denied")
    );
}

async fn identity_providers_are_checked_and_never_show_their_secret(app: TestApp) {
    let bad = [
        json!({"type": "oidc", "clientId": "x", "clientSecret": "y"}),
        json!({"type": "oidc", "issuer": "not a url", "clientId": "x", "clientSecret": "y"}),
        json!({"type": "oidc", "issuer": "https://idp.example", "clientSecret": "y"}),
        json!({"type": "oidc", "issuer": "https://idp.example", "clientId": "x"}),
        json!({"type": "oauth2", "authorizationUrl": "https://gh/authorize", "clientId": "x", "clientSecret": "y"}),
        json!({"type": "saml", "entityId": "https://idp", "ssoUrl": "https://idp/sso"}),
        json!({"type": "oidc", "issuer": "https://idp.example", "clientId": "x", "clientSecret": "y", "claimMapping": {"roles": "groups"}}),
        json!({"type": "oidc", "issuer": "https://idp.example", "clientId": "x", "clientSecret": "y", "provisioning": {"enabled": true, "tenantId": "nowhere"}}),
        json!({"issuer": "https://idp.example", "clientId": "x", "clientSecret": "y"}),
    ];
    for body in bad {
        let r = app.put("/v1/identity-providers/p", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    assert_eq!(
        app.get("/v1/identity-providers").await.expect(200)["data"],
        json!([])
    );
    let github = json!({"type": "oauth2", "authorizationUrl": "https://github.com/login/oauth/authorize",
        "tokenUrl": "https://github.com/login/oauth/access_token", "userinfoUrl": "https://api.github.com/user",
        "clientId": "Iv1.abc", "clientSecret": "gh-secret-value-0123456789",
        "claimMapping": {"subject": "id", "name": "login"}});
    let r = app
        .put("/v1/identity-providers/github", github.clone())
        .await;
    let body = r.expect(201).clone();
    assert_eq!(body["clientSecretSet"], true);
    assert_eq!(body["claimMapping"]["subject"], "id");
    // A replacement without the secret keeps it.
    let mut without = github.clone();
    without.as_object_mut().unwrap().remove("clientSecret");
    let r = app
        .put("/v1/identity-providers/github", without.clone())
        .await;
    assert_eq!(r.expect(200)["clientSecretSet"], true);
    // Pointed at another provider, the old secret is not kept (nor are the
    // old provider's links to users): a new one is required.
    let mut elsewhere = without.clone();
    elsewhere["tokenUrl"] = json!("https://git.evil.example/login/oauth/access_token");
    let r = app
        .put("/v1/identity-providers/github", elsewhere.clone())
        .await;
    r.expect_problem(400, "invalid_request");
    assert!(r.text.contains("clientSecret"), "{}", r.text);
    elsewhere["clientSecret"] = json!("another-secret-0123456789");
    app.put("/v1/identity-providers/github", elsewhere)
        .await
        .expect(200);
    app.put("/v1/identity-providers/github", github.clone())
        .await
        .expect(200);
    for path in ["/v1/identity-providers/github", "/v1/identity-providers"] {
        let r = app.get(path).await;
        assert!(!r.text.contains("gh-secret-value"), "{}", r.text);
    }
    // An SSO factor the policy does not allow is refused.
    let r = app
        .send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"sso": "github"})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    app.delete("/v1/identity-providers/github")
        .await
        .expect(204);
    app.get("/v1/identity-providers/github")
        .await
        .expect_problem(404, "not_found");
}

/// A plain OAuth 2.0 provider (GitHub-style): no ID token, the person read
/// from userinfo through the claim mapping, and never counted as MFA.
async fn oauth2_providers_read_userinfo_and_never_count_as_mfa(app: TestApp) {
    let idp = FakeIdp::start().await;
    let r = app
        .put(
            "/v1/identity-providers/corp",
            json!({"type": "oauth2", "authorizationUrl": format!("{}/authorize", idp.issuer),
                   "tokenUrl": format!("{}/token", idp.issuer), "userinfoUrl": format!("{}/user", idp.issuer),
                   "clientId": "latchkey", "clientSecret": "gh-secret-0123456789",
                   "scopes": ["read:user"], "claimMapping": {"subject": "id", "name": "login"},
                   "provisioning": {"enabled": true, "kind": "machine"}, "trustUpstreamMfa": true}),
        )
        .await;
    r.expect(201);
    app.put(
        &format!("/v1/tenants/{}/login-policy", app.workspace_id),
        json!({"factors": ["password", "totp", "sso:corp"], "require": [["sso:corp"], ["password", "totp"]],
               "allowedRedirectUris": [REDIRECT]}),
    )
    .await
    .expect(200);
    let (id, secret, params) = begin(&app).await;
    assert_eq!(params["scope"], "read:user");
    assert!(
        !params.contains_key("nonce"),
        "no ID token, no nonce: {params:?}"
    );
    idp.expect("gh-1", &params, String::new());
    // A plain OAuth 2.0 provider sends no `iss`; one that appears is refused.
    let back = come_back(
        &app,
        &[
            ("code", "gh-1"),
            ("state", &params["state"]),
            ("iss", "https://evil.example"),
        ],
    )
    .await;
    assert_eq!(
        location(&back).get("error").map(String::as_str),
        Some("access_denied")
    );
    let (id2, secret2, params2) = begin(&app).await;
    idp.expect("gh-2", &params2, String::new());
    let back = come_back(&app, &[("code", "gh-2"), ("state", &params2["state"])]).await;
    assert!(
        !location(&back).contains_key("error"),
        "{:?}",
        location(&back)
    );
    let polled = app
        .send(
            Method::GET,
            &format!("/auth/logins/{id2}?code={}", location(&back)["code"]),
            Some(&secret2),
            None,
        )
        .await;
    let polled = polled.expect(200);
    assert_eq!(polled["complete"], true, "{polled}");
    // Userinfo said "mfa", but a plain OAuth 2.0 provider proves no second factor.
    assert_eq!(polled["satisfied"], json!(["sso:corp"]));
    let user = decode_claims(polled["session"]["accessToken"].as_str().unwrap())["sub"].clone();
    let user = app
        .get(&format!("/v1/users/{}", user.as_str().unwrap()))
        .await;
    let user = user.expect(200);
    assert_eq!(
        (user["name"].as_str(), user["kind"].as_str()),
        (Some("octocat"), Some("machine"))
    );
    let first = app
        .send(
            Method::GET,
            &format!("/auth/logins/{id}"),
            Some(&secret),
            None,
        )
        .await;
    assert_eq!(first.expect(200)["complete"], false);
}

crate::on_both_stores!(
    oauth2_providers_read_userinfo_and_never_count_as_mfa,
    oidc_logins_link_by_verified_email_and_refuse_every_bad_answer,
    an_unverified_email_links_nobody_and_provisioning_creates_users,
    identity_providers_are_checked_and_never_show_their_secret,
);
