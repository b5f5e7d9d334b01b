//! Workload identity federation: Kubernetes- and GitHub-Actions-shaped
//! tokens from a JWKS server this test runs (and from a static JWKS, with
//! no network), exchanged at the token endpoint by RFC 8693 and by the
//! JWT-bearer grant; rules that must not match, and the tokens that must be
//! refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::get;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::signing::{Algorithm, SigningKey};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::helpers::{decode_claims, Reply, TestApp};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const K8S: &str = "https://kubernetes.default.svc.cluster.local";
const GITHUB: &str = "https://token.actions.githubusercontent.com";

/// A JWKS endpoint: the keys it publishes can change, and it counts GETs.
struct JwksServer {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: &[&SigningKey]) -> JwksServer {
        let published = Arc::new(Mutex::new(Vec::new()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (p, f) = (published.clone(), fetches.clone());
        let router = axum::Router::new().route(
            "/openid/v1/jwks",
            get(move || {
                let (p, f) = (p.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    (
                        [("cache-control", "max-age=300")],
                        axum::Json(json!({"keys": *p.lock()})),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/openid/v1/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let server = JwksServer {
            url,
            keys: published,
            fetches,
        };
        server.publish(keys);
        server
    }

    /// Publishes these keys, as Kubernetes writes them (`use`, `alg`, `kid`).
    fn publish(&self, keys: &[&SigningKey]) {
        *self.keys.lock() = keys
            .iter()
            .map(|k| serde_json::to_value(k.public_jwk()).unwrap())
            .collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl TestApp {
    async fn exchange(&self, token: &str, extra: &[(&str, &str)]) -> Reply {
        let mut form = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", JWT_TYPE),
        ];
        form.extend_from_slice(extra);
        self.token(None, &form).await
    }

    /// A projected service-account token of `namespace`/`name`.
    fn k8s_token(&self, key: &SigningKey, namespace: &str, name: &str, aud: &str) -> String {
        let now = self.now();
        self.sign(
            key,
            &json!({
                "iss": K8S, "aud": [aud], "exp": now + 3600, "iat": now, "nbf": now,
                "sub": format!("system:serviceaccount:{namespace}:{name}"),
                "kubernetes.io": {
                    "namespace": namespace,
                    "pod": {"name": format!("{name}-7d9f"), "uid": "0f6c"},
                    "serviceaccount": {"name": name, "uid": "9a1b"},
                },
            }),
            true,
        )
    }

    /// A GitHub Actions OIDC token of a job of `repository` on `git_ref`.
    fn github_token(&self, key: &SigningKey, repository: &str, git_ref: &str) -> String {
        let now = self.now();
        self.sign(
            key,
            &json!({
                "iss": GITHUB, "aud": self.issuer(latchkey_types::Mode::Test),
                "exp": now + 300, "iat": now, "nbf": now,
                "sub": format!("repo:{repository}:ref:{git_ref}"),
                "repository": repository, "repository_owner": repository.split('/').next(),
                "ref": git_ref, "workflow": "deploy", "run_id": "4242", "event_name": "push",
            }),
            true,
        )
    }
}

async fn setup_tenants(app: &TestApp) {
    for (id, name) in [("prod", "Production"), ("ci", "CI")] {
        app.post("/v1/tenants", json!({"id": id, "name": name}))
            .await
            .expect(201);
    }
    for (role, permissions) in [
        ("reader", json!(["metrics:read"])),
        ("writer", json!(["metrics:write"])),
        ("deployer", json!(["deploy:run"])),
    ] {
        app.put(
            &format!("/v1/roles/{role}"),
            json!({"permissions": permissions}),
        )
        .await
        .expect(201);
    }
}

async fn kubernetes_service_account_tokens_are_exchanged_by_their_rules(app: TestApp) {
    setup_tenants(&app).await;
    let billing = app.machine("billing").await;
    app.put(
        &format!("/v1/tenants/prod/users/{billing}/roles"),
        json!({"roles": ["reader", "writer"]}),
    )
    .await
    .expect(200);
    let key = SigningKey::generate(Algorithm::RS256).unwrap();
    let jwks = JwksServer::start(&[&key]).await;
    let audience = app.issuer(latchkey_types::Mode::Test);
    let put = app
        .put(
            "/v1/trusted-issuers/cluster-eu",
            json!({
                "issuer": K8S, "jwksUri": jwks.url, "audiences": [audience],
                "rules": [{
                    "when": {"kubernetes.io.namespace": "prod", "sub": "system:serviceaccount:prod:billing"},
                    "userId": billing, "tenantId": "prod", "roles": ["reader"], "ttlSeconds": 600,
                }],
            }),
        )
        .await;
    let body = put.expect(201);
    assert_eq!(body["issuer"], K8S);
    assert_eq!(body["mode"], "test");

    // RFC 8693: the token is for the mapped user, in the rule's tenant,
    // with the rule's roles only, for the rule's lifetime, and says whose
    // token it was exchanged for.
    let sa = app.k8s_token(&key, "prod", "billing", &audience);
    let r = app.exchange(&sa, &[]).await;
    let body = r.expect(200).clone();
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 600);
    assert_eq!(r.headers["cache-control"], "no-store");
    let claims = decode_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], billing.as_str());
    assert_eq!(claims["tenantId"], "prod");
    assert_eq!(claims["mode"], "test");
    assert_eq!(claims["iss"], audience.as_str());
    assert_eq!(claims["authorization"]["prod"]["roles"], json!(["reader"]));
    assert_eq!(
        claims["act"],
        json!({"iss": K8S, "sub": "system:serviceaccount:prod:billing"})
    );
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    // The issued token verifies with Latchkey's own verifier and exposes the actor.
    let verifier = latchkey_verify::Verifier::for_mode(&app.base, latchkey_types::Mode::Test)
        .build()
        .await
        .unwrap();
    let verified = verifier
        .verify(body["access_token"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(verified.actor().map(|a| a.iss.as_str()), Some(K8S));
    // The JWT-bearer grant takes the same token.
    let r = app
        .token(None, &[("grant_type", JWT_BEARER), ("assertion", &sa)])
        .await;
    assert_eq!(
        decode_claims(r.expect(200)["access_token"].as_str().unwrap())["sub"],
        billing.as_str()
    );
    // The rule's tenant is the token's: another is refused.
    app.exchange(&sa, &[("tenant_id", &app.workspace_id)])
        .await
        .expect_oauth_error(400, "invalid_target");
    // One fetch served all of it, and a warm exchange reads no store.
    assert_eq!(jwks.fetches(), 1);
    let before = app.store_ops().await;
    app.exchange(&sa, &[]).await.expect(200);
    let ops = app.request_ops_since(&before).await;
    assert!(ops.is_empty(), "a warm exchange touched the store: {ops:?}");

    // Tokens the rule must not match, or that must not be accepted at all.
    let now = app.now();
    let good = |extra: Value| {
        let mut claims = json!({
            "iss": K8S, "aud": [audience], "exp": now + 3600, "iat": now,
            "sub": "system:serviceaccount:prod:billing",
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing"}},
        });
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        claims
    };
    let refused: Vec<(&str, String)> = vec![
        (
            "another namespace",
            app.k8s_token(&key, "dev", "billing", &audience),
        ),
        (
            "another service account",
            app.k8s_token(&key, "prod", "billing-admin", &audience),
        ),
        (
            "another audience",
            app.k8s_token(&key, "prod", "billing", "https://elsewhere"),
        ),
        (
            "the live issuer as audience",
            app.k8s_token(
                &key,
                "prod",
                "billing",
                &app.issuer(latchkey_types::Mode::Live),
            ),
        ),
        (
            "expired",
            app.sign(&key, &good(json!({"exp": now - 120})), true),
        ),
        (
            "not yet valid",
            app.sign(&key, &good(json!({"nbf": now + 600})), true),
        ),
        ("no exp (a legacy secret token)", {
            let mut c = good(json!({}));
            c.as_object_mut().unwrap().remove("exp");
            app.sign(&key, &c, true)
        }),
        (
            "another issuer",
            app.sign(&key, &good(json!({"iss": "https://evil.example"})), true),
        ),
        ("signed by a stranger", {
            let stranger = SigningKey::generate(Algorithm::RS256).unwrap();
            let token = app.sign(&stranger, &good(json!({})), false);
            // The stranger claims the trusted key's kid.
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[0] =
                URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "kid": key.kid()}).to_string());
            parts.join(".")
        }),
        (
            "alg none",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": key.kid()}).to_string()),
                URL_SAFE_NO_PAD.encode(good(json!({})).to_string()),
            ),
        ),
        ("HS256 keyed with the public key", {
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            header.kid = Some(key.kid().to_owned());
            let public = serde_json::to_vec(key.public_jwk()).unwrap();
            jsonwebtoken::encode(
                &header,
                &good(json!({})),
                &jsonwebtoken::EncodingKey::from_secret(&public),
            )
            .unwrap()
        }),
        ("not a JWT", "definitely-not-a-jwt".to_owned()),
    ];
    for (why, token) in &refused {
        let r = app.exchange(token, &[]).await;
        assert_eq!(r.status, 400, "{why}: {}", r.text);
        assert!(r.body["error"] == "invalid_grant", "{why}: {}", r.text);
    }
    // A malformed exchange is the client's mistake, said as such.
    app.token(
        None,
        &[("grant_type", TOKEN_EXCHANGE), ("subject_token", &sa)],
    )
    .await
    .expect_oauth_error(400, "invalid_request");

    // Another node's invalidation or this one's: a deleted trusted issuer
    // accepts nothing from then on.
    app.delete("/v1/trusted-issuers/cluster-eu").await;
    app.exchange(&sa, &[])
        .await
        .expect_oauth_error(400, "invalid_grant");
    // The JWT-bearer grant then reads it as a user's own assertion, which
    // it is not.
    app.token(None, &[("grant_type", JWT_BEARER), ("assertion", &sa)])
        .await
        .expect_oauth_error(400, "invalid_grant");
}

async fn ci_jobs_are_provisioned_from_a_static_jwks_with_no_network(app: TestApp) {
    setup_tenants(&app).await;
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    // Published without `use` or `alg`, as some issuers do: the key's type
    // gives its algorithm.
    let mut jwk = serde_json::to_value(key.public_jwk()).unwrap();
    jwk.as_object_mut().unwrap().remove("use");
    jwk.as_object_mut().unwrap().remove("alg");
    let audience = app.issuer(latchkey_types::Mode::Test);
    app.put(
        "/v1/trusted-issuers/github",
        json!({
            "issuer": GITHUB, "jwks": {"keys": [jwk]}, "audiences": [audience],
            "rules": [
                {"when": {"repository": "acme/*", "ref": "refs/heads/main"},
                 "provision": {}, "tenantId": "ci", "roles": ["deployer"]},
            ],
        }),
    )
    .await
    .expect(201);
    let token = app.github_token(&key, "acme/api", "refs/heads/main");
    let first = app.exchange(&token, &[]).await;
    let claims = decode_claims(first.expect(200)["access_token"].as_str().unwrap());
    let user = claims["sub"].as_str().unwrap().to_owned();
    assert!(user.starts_with("usr_wl"), "{user}");
    assert_eq!(claims["tenantId"], "ci");
    assert_eq!(claims["authorization"]["ci"]["roles"], json!(["deployer"]));
    assert_eq!(claims["act"]["sub"], "repo:acme/api:ref:refs/heads/main");
    // The provisioned user is a machine with its origin in its metadata,
    // and its creation is audited as the trusted issuer's doing.
    let record = app.get(&format!("/v1/users/{user}")).await;
    let record = record.expect(200);
    assert_eq!(record["kind"], "machine");
    assert_eq!(record["metadata"]["federatedIssuer"], GITHUB);
    let audit = app.get("/v1/audit-events?action=user.created").await;
    let events = audit.expect(200)["data"].as_array().unwrap().clone();
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["target"]["id"] == user.as_str())
        .collect();
    assert_eq!(created.len(), 1, "{events:?}");
    assert_eq!(
        created[0]["actor"],
        json!({"type": "trusted_issuer", "id": "github"})
    );
    // The same job again: the same user, nothing written.
    let before = app.store_ops().await;
    let again = app
        .exchange(&app.github_token(&key, "acme/api", "refs/heads/main"), &[])
        .await;
    assert_eq!(
        decode_claims(again.expect(200)["access_token"].as_str().unwrap())["sub"],
        user.as_str()
    );
    let ops = app.request_ops_since(&before).await;
    assert!(ops.is_empty(), "a warm exchange touched the store: {ops:?}");
    // Another repository of acme is another user; a branch or an owner the
    // rule does not name gets nothing.
    let other = app
        .exchange(&app.github_token(&key, "acme/web", "refs/heads/main"), &[])
        .await;
    assert_ne!(
        decode_claims(other.expect(200)["access_token"].as_str().unwrap())["sub"],
        user.as_str()
    );
    for (repository, git_ref) in [
        ("acme/api", "refs/heads/feature"),
        ("acme-evil/api", "refs/heads/main"),
        ("evil/acme", "refs/heads/main"),
    ] {
        app.exchange(&app.github_token(&key, repository, git_ref), &[])
            .await
            .expect_oauth_error(400, "invalid_grant");
    }
    // An admin can stop a workload by disabling its user.
    app.patch(&format!("/v1/users/{user}"), json!({"disabled": true}))
        .await
        .expect(200);
    app.exchange(&app.github_token(&key, "acme/api", "refs/heads/main"), &[])
        .await
        .expect_oauth_error(400, "invalid_grant");
}

async fn an_unknown_kid_causes_one_rate_limited_refetch(app: TestApp) {
    let reader = app.machine("reader").await;
    let old = SigningKey::generate(Algorithm::RS256).unwrap();
    let jwks = JwksServer::start(&[&old]).await;
    let audience = app.issuer(latchkey_types::Mode::Test);
    app.put(
        "/v1/trusted-issuers/cluster",
        json!({"issuer": K8S, "jwksUri": jwks.url, "audiences": [audience],
               "rules": [{"when": {"sub": "system:serviceaccount:*"}, "userId": reader}]}),
    )
    .await
    .expect(201);
    app.exchange(&app.k8s_token(&old, "prod", "a", &audience), &[])
        .await
        .expect(200);
    assert_eq!(jwks.fetches(), 1);
    // The cluster rotates its key: the first token with the new kid causes
    // one refetch and is accepted.
    let new = SigningKey::generate(Algorithm::RS256).unwrap();
    jwks.publish(&[&new]);
    app.exchange(&app.k8s_token(&new, "prod", "a", &audience), &[])
        .await
        .expect(200);
    assert_eq!(jwks.fetches(), 2);
    // Tokens with made-up kids cannot make it fetch again within 10 s.
    let bogus = SigningKey::generate(Algorithm::RS256).unwrap();
    for _ in 0..5 {
        app.exchange(&app.k8s_token(&bogus, "prod", "a", &audience), &[])
            .await
            .expect_oauth_error(400, "invalid_grant");
    }
    assert_eq!(jwks.fetches(), 2);
    app.clock.advance(11);
    jwks.publish(&[&new, &bogus]);
    app.exchange(&app.k8s_token(&bogus, "prod", "a", &audience), &[])
        .await
        .expect(200);
    assert_eq!(jwks.fetches(), 3);
    // A replaced configuration with the same key source keeps its cache.
    app.put(
        "/v1/trusted-issuers/cluster",
        json!({"issuer": K8S, "jwksUri": jwks.url, "audiences": [audience],
               "rules": [{"when": {"sub": "system:serviceaccount:prod:*"}, "userId": reader, "ttlSeconds": 120}]}),
    )
    .await
    .expect(200);
    let r = app
        .exchange(&app.k8s_token(&new, "prod", "a", &audience), &[])
        .await;
    assert_eq!(r.expect(200)["expires_in"], 120);
    assert_eq!(jwks.fetches(), 3);
}

async fn trusted_issuer_configurations_are_checked(app: TestApp) {
    setup_tenants(&app).await;
    let user = app.machine("m").await;
    let audience = app.issuer(latchkey_types::Mode::Test);
    let rule = json!({"when": {"sub": "*"}, "userId": user});
    let good = json!({"issuer": K8S, "jwksUri": "https://k8s.example/jwks", "audiences": [audience], "rules": [rule]});
    let with = |field: &str, value: Value| {
        let mut b = good.clone();
        if value.is_null() {
            b.as_object_mut().unwrap().remove(field);
        } else {
            b[field] = value;
        }
        b
    };
    let bad = [
        with("rules", json!([])),
        with("rules", json!([{"when": {}, "userId": user}])),
        with("rules", json!([{"when": {"sub": "*"}}])),
        with(
            "rules",
            json!([{"when": {"sub": "*"}, "userId": "usr_nobody"}]),
        ),
        with(
            "rules",
            json!([{"when": {"sub": "*"}, "userId": user, "tenantId": "nowhere"}]),
        ),
        with("rules", json!([{"when": {"sub": "*"}, "provision": {}}])),
        with(
            "rules",
            json!([{"when": {"sub": "*"}, "userId": user, "ttlSeconds": 5}]),
        ),
        with("audiences", json!([])),
        with("jwksUri", Value::Null),
        with("jwksUri", json!("file:///etc/passwd")),
        with("jwks", json!({"keys": []})),
        with("issuer", json!("")),
        with("issuer", json!(user)),
        with("unknown", json!(1)),
    ];
    for body in bad {
        let r = app.put("/v1/trusted-issuers/t", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    let mut static_garbage = good.clone();
    static_garbage.as_object_mut().unwrap().remove("jwksUri");
    static_garbage["jwks"] =
        json!({"keys": [{"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"}]});
    app.put("/v1/trusted-issuers/t", static_garbage)
        .await
        .expect_problem(400, "invalid_request");
    // Nothing was written by any of them.
    assert_eq!(
        app.get("/v1/trusted-issuers").await.expect(200)["data"],
        json!([])
    );
    app.put("/v1/trusted-issuers/t", good.clone())
        .await
        .expect(201);
    app.put("/v1/trusted-issuers/t", good.clone())
        .await
        .expect(200);
    // One trusted issuer per iss in a mode.
    app.put("/v1/trusted-issuers/t2", good.clone())
        .await
        .expect_problem(409, "conflict");
    app.get("/v1/trusted-issuers/t2")
        .await
        .expect_problem(404, "not_found");
    app.get("/v1/trusted-issuers/Bad_Id")
        .await
        .expect_problem(404, "not_found");
    let listed = app.get("/v1/trusted-issuers").await;
    assert_eq!(listed.expect(200)["data"][0]["id"], "t");
    // The live admin key sees none of the test mode's.
    let live = app
        .send(
            reqwest::Method::GET,
            "/v1/trusted-issuers/t",
            Some(app.admin(latchkey_types::Mode::Live)),
            None,
        )
        .await;
    live.expect_problem(404, "not_found");
    let audit = app.get("/v1/audit-events?action=trusted_issuer.put").await;
    assert_eq!(audit.expect(200)["data"].as_array().unwrap().len(), 2);
    app.delete("/v1/trusted-issuers/t").await.expect(204);
    app.delete("/v1/trusted-issuers/t")
        .await
        .expect_problem(404, "not_found");
}

crate::on_both_stores!(
    kubernetes_service_account_tokens_are_exchanged_by_their_rules,
    ci_jobs_are_provisioned_from_a_static_jwks_with_no_network,
    an_unknown_kid_causes_one_rate_limited_refetch,
    trusted_issuer_configurations_are_checked,
);

/// The same issuer trusted in both modes, each with its own audience: a
/// token names its mode by its audience, and a live one needs TLS.
#[tokio::test]
async fn each_mode_trusts_its_own_audience() {
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let jwks = json!({"keys": [key.public_jwk()]});
    let test_user = app.machine("t").await;
    app.put(
        "/v1/trusted-issuers/k",
        json!({"issuer": K8S, "jwks": jwks, "audiences": [app.issuer(latchkey_types::Mode::Test)],
               "rules": [{"when": {"sub": "*"}, "userId": test_user}]}),
    )
    .await
    .expect(201);
    let live_admin = app.admin(latchkey_types::Mode::Live).to_owned();
    let live_user = app
        .send(
            reqwest::Method::POST,
            "/v1/users",
            Some(&live_admin),
            Some(json!({"name": "l"})),
        )
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send(
        reqwest::Method::PUT,
        "/v1/trusted-issuers/k",
        Some(&live_admin),
        Some(json!({"issuer": K8S, "jwks": jwks, "audiences": [app.issuer(latchkey_types::Mode::Live)],
               "rules": [{"when": {"sub": "*"}, "userId": live_user}]})),
    )
    .await
    .expect(201);
    let test_token = app.k8s_token(&key, "prod", "a", &app.issuer(latchkey_types::Mode::Test));
    let claims = decode_claims(
        app.exchange(&test_token, &[]).await.expect(200)["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        (claims["mode"].as_str(), claims["sub"].as_str()),
        (Some("test"), Some(test_user.as_str()))
    );
    // The live mode's token, issued for the live user, but only over TLS
    // (the test client poses as a TLS proxy's; a plain one is refused).
    let live_token = app.k8s_token(&key, "prod", "a", &app.issuer(latchkey_types::Mode::Live));
    let claims = decode_claims(
        app.exchange(&live_token, &[]).await.expect(200)["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(
        (claims["mode"].as_str(), claims["sub"].as_str()),
        (Some("live"), Some(live_user.as_str()))
    );
    let r = reqwest::Client::new()
        .post(app.url("/oauth/token"))
        .form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", live_token.as_str()),
            ("subject_token_type", JWT_TYPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "tls_required");
}
