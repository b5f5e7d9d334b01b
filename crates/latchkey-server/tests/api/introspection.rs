//! Introspection (RFC 7662) and revocation (RFC 7009) of access tokens and
//! API keys.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{Reply, TestApp};

impl TestApp {
    /// Introspects `token` with the test admin key as the caller.
    pub async fn introspect(&self, token: &str) -> Reply {
        self.oauth_form(
            "/oauth/introspect",
            None,
            Some(&self.test_admin),
            &[("token", token)],
        )
        .await
    }

    /// `POST` a form to an OAuth endpoint with Basic client credentials or
    /// an admin key as bearer.
    pub async fn oauth_form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        bearer: Option<&str>,
        form: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.client.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }
}

async fn introspection_reports_active_tokens_and_keys_with_their_claims(app: TestApp) {
    let m = app.machine("resource-server").await;
    let secret = app.secret(&m).await;
    let (token, claims) = app
        .access_token(&m, &secret, &[("audience", "https://api.example")])
        .await;
    for (basic, bearer) in [
        (Some((m.as_str(), secret.as_str())), None),
        (None, Some(app.test_admin.as_str())),
    ] {
        let r = app
            .oauth_form("/oauth/introspect", basic, bearer, &[("token", &token)])
            .await;
        let body = r.expect(200);
        assert_eq!(r.headers["cache-control"], "no-store");
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["sub"], m);
        assert_eq!(body["client_id"], m);
        assert_eq!(body["aud"], "https://api.example");
        assert_eq!(body["jti"], claims["jti"]);
        assert_eq!(body["exp"], claims["exp"]);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["mode"], "test");
    }
    let (key_id, key) = app.api_key(json!({"userId": m})).await;
    let r = app
        .oauth_form(
            "/oauth/introspect",
            Some((&m, &secret)),
            None,
            &[("token", &key)],
        )
        .await;
    let body = r.expect(200);
    assert_eq!(body["active"], true);
    assert_eq!(body["keyId"], key_id);
    assert_eq!(body["token_type"], "api_key");
    for junk in [
        "garbage",
        "a.b.c",
        &token[..token.len() - 4],
        "lk_test_key_nope",
    ] {
        let r = app
            .oauth_form(
                "/oauth/introspect",
                Some((&m, &secret)),
                None,
                &[("token", junk)],
            )
            .await;
        assert_eq!(r.expect(200), &json!({"active": false}), "{junk}");
    }
    // A live caller learns nothing about a test token.
    let r = app
        .oauth_form(
            "/oauth/introspect",
            None,
            Some(&app.live_admin),
            &[("token", &token)],
        )
        .await;
    assert_eq!(r.expect(200), &json!({"active": false}));
    // Expired tokens are inactive.
    app.clock.advance(3600 + 60);
    let r = app.introspect(&token).await;
    assert_eq!(r.expect(200), &json!({"active": false}));
}

async fn introspection_and_revocation_require_an_authenticated_caller(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (token, _) = app.access_token(&m, &secret, &[]).await;
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        app.oauth_form(path, None, None, &[("token", &token)])
            .await
            .expect_oauth_error(401, "invalid_client");
        app.oauth_form(
            path,
            Some((&m, "lk_test_secret_bad")),
            None,
            &[("token", &token)],
        )
        .await
        .expect_oauth_error(401, "invalid_client");
        app.oauth_form(path, None, Some(&secret), &[("token", &token)])
            .await
            .expect_oauth_error(401, "invalid_client");
        app.oauth_form(path, Some((&m, &secret)), None, &[])
            .await
            .expect_oauth_error(400, "invalid_request");
    }
}

async fn a_revoked_access_token_is_inactive_everywhere_until_it_expires(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (token, _) = app.access_token(&m, &secret, &[]).await;
    let (other_token, _) = app.access_token(&m, &secret, &[]).await;
    // A token works as the caller of the verify endpoint...
    let (_, key) = app.api_key(json!({"userId": m})).await;
    assert_eq!(app.verify_as(&token, &key).await["valid"], true);
    // ...until its owner revokes it.
    let intruder = app.machine("intruder").await;
    let intruder_secret = app.secret(&intruder).await;
    app.oauth_form(
        "/oauth/revoke",
        Some((&intruder, &intruder_secret)),
        None,
        &[("token", &token)],
    )
    .await
    .expect_oauth_error(400, "unauthorized_client");
    app.oauth_form(
        "/oauth/revoke",
        Some((&m, &secret)),
        None,
        &[("token", &token)],
    )
    .await
    .expect(200);
    let r = app.introspect(&token).await;
    assert_eq!(r.expect(200), &json!({"active": false}));
    let r = app
        .send(
            Method::POST,
            "/v1/api-keys/verify",
            Some(&token),
            Some(json!({"key": key})),
        )
        .await;
    r.expect_problem(401, "unauthenticated");
    // Other tokens of the same client are untouched.
    let r = app.introspect(&other_token).await;
    assert_eq!(r.expect(200)["active"], true);
    // Revoking garbage or twice is fine (RFC 7009).
    for t in [token.as_str(), "garbage"] {
        app.oauth_form(
            "/oauth/revoke",
            None,
            Some(&app.test_admin),
            &[("token", t)],
        )
        .await
        .expect(200);
    }
}

async fn revoking_an_api_key_through_oauth_stops_it_at_once(app: TestApp) {
    let m = app.machine("m").await;
    let secret = app.secret(&m).await;
    let (_, key) = app.api_key(json!({"userId": m})).await;
    assert_eq!(app.verify(&key).await["valid"], true);
    let other = app.machine("other").await;
    let other_secret = app.secret(&other).await;
    app.oauth_form(
        "/oauth/revoke",
        Some((&other, &other_secret)),
        None,
        &[("token", &key)],
    )
    .await
    .expect_oauth_error(400, "unauthorized_client");
    assert_eq!(app.verify(&key).await["valid"], true);
    app.oauth_form(
        "/oauth/revoke",
        Some((&m, &secret)),
        None,
        &[("token", &key), ("token_type_hint", "api_key")],
    )
    .await
    .expect(200);
    assert_eq!(app.verify(&key).await["code"], "revoked");
}

/// Introspection is a read (RFC 7662): looking at a key spends no use of
/// its budget and no slot of its rate limit, and does not mark it used; the
/// verify endpoint and use as a client secret still spend.
async fn introspecting_an_api_key_spends_nothing(app: TestApp) {
    let m = app.machine("introspected").await;
    let secret = app.secret(&m).await;
    let (key_id, key) = app
        .api_key(json!({"userId": m, "remaining": 3,
            "ratelimit": {"limit": 2, "windowSeconds": 3600}}))
        .await;
    let introspect = || async {
        app.oauth_form(
            "/oauth/introspect",
            Some((&m, &secret)),
            None,
            &[("token", &key)],
        )
        .await
        .expect(200)
        .clone()
    };
    // Far more looks than the budget and the rate limit allow uses.
    for _ in 0..10 {
        let body = introspect().await;
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["remaining"], 3, "{body}");
    }
    // Past the last-used writer's period (1 s), so a use would show.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let stored = app.get(&format!("/v1/api-keys/{key_id}")).await;
    let stored = stored.expect(200);
    assert_eq!(stored["remaining"], 3, "{stored}");
    assert_eq!(stored["lastUsedAt"], Value::Null, "{stored}");
    // Uses still count: the rate limit allows two in the window, and each
    // spends one of the budget.
    assert_eq!(app.verify(&key).await["remaining"], 2);
    assert_eq!(app.verify(&key).await["remaining"], 1);
    assert_eq!(app.verify(&key).await["code"], "rate_limited");
    let body = introspect().await;
    assert_eq!(
        body["active"], true,
        "rate limiting is not inactivity: {body}"
    );
    assert_eq!(body["remaining"], 1, "{body}");
    // The last use, as a client secret, in a new window; then the key is
    // spent and introspection says so.
    app.clock.advance(3600);
    app.token(Some((&m, &key)), &[("grant_type", "client_credentials")])
        .await
        .expect(200);
    assert_eq!(introspect().await, json!({"active": false}));
    assert_eq!(app.verify(&key).await["code"], "usage_exceeded");
}

async fn metadata_lists_introspection_and_revocation(app: TestApp) {
    let meta = app.get("/.well-known/oauth-authorization-server").await;
    let meta = meta.expect(200);
    assert_eq!(
        meta["introspection_endpoint"],
        format!("{}/oauth/introspect", app.base)
    );
    assert_eq!(
        meta["revocation_endpoint"],
        format!("{}/oauth/revoke", app.base)
    );
}

crate::on_both_stores!(
    introspection_reports_active_tokens_and_keys_with_their_claims,
    introspection_and_revocation_require_an_authenticated_caller,
    a_revoked_access_token_is_inactive_everywhere_until_it_expires,
    revoking_an_api_key_through_oauth_stops_it_at_once,
    introspecting_an_api_key_spends_nothing,
    metadata_lists_introspection_and_revocation,
);
