//! Login flows end to end: a machine-user logs in with a password (and
//! TOTP, with codes made by pyotp), gets a session whose token carries the
//! same authorization as its client-credentials token, refreshes it
//! (rotation, the retry window, reuse ending the family), logs out; login
//! policies cascade; failures are counted, throttled and alike for known and
//! unknown identifiers.

use latchkey_core::clock::Clock;
use latchkey_core::login::totp;
use latchkey_types::Mode;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{decode_claims, Reply, TestApp};

const PASSWORD: &str = "plum-kettle-orbit-9";

/// A machine-user with an email and a password, holding `operator` in a
/// tenant `plant` (and nothing in the workspace).
async fn machine_user(app: &TestApp, email: &str) -> String {
    let id = app
        .post("/v1/users", json!({"name": "sensor", "email": email}))
        .await
        .expect(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .put(
            &format!("/v1/users/{id}/password"),
            json!({"password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.post("/v1/tenants", json!({"id": "plant", "name": "Plant"}))
        .await;
    app.put(
        &format!("/v1/tenants/plant/users/{id}/roles"),
        json!({"roles": ["operator"]}),
    )
    .await
    .expect(200);
    id
}

async fn start(app: &TestApp, body: Value) -> (String, String, Value) {
    let r = app
        .send(Method::POST, "/auth/logins", None, Some(body))
        .await;
    let login = r.expect(201).clone();
    let id = login["id"].as_str().unwrap().to_owned();
    let secret = login["secret"].as_str().unwrap().to_owned();
    (id, secret, login)
}

async fn step(app: &TestApp, id: &str, secret: &str, factor: &str, body: Value) -> Reply {
    app.send(
        Method::POST,
        &format!("/auth/logins/{id}/{factor}"),
        Some(secret),
        Some(body),
    )
    .await
}

/// A session from a password login as `identifier`.
async fn password_login(app: &TestApp, identifier: &str, tenant: Option<&str>) -> Value {
    let mut body = json!({"identifier": identifier});
    if let Some(t) = tenant {
        body["tenantId"] = t.into();
    }
    let (id, secret, _) = start(app, body).await;
    let r = step(app, &id, &secret, "password", json!({"password": PASSWORD})).await;
    let done = r.expect(200);
    assert_eq!(done["complete"], true, "{done}");
    done["session"].clone()
}

async fn refresh(app: &TestApp, token: &str, extra: &[(&str, &str)]) -> Reply {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    form.extend_from_slice(extra);
    app.token(None, &form).await
}

async fn a_machine_logs_in_with_a_password_and_refreshes_a_rotating_session(app: TestApp) {
    let user = machine_user(&app, "sensor@example.com").await;
    let (id, secret, login) = start(
        &app,
        json!({"identifier": "Sensor@Example.com", "tenantId": "plant"}),
    )
    .await;
    assert!(
        id.starts_with("lgn_") && secret.starts_with("lk_test_login_"),
        "{login}"
    );
    assert_eq!(
        login["factors"],
        json!(["password", "email_code", "magic_link"])
    );
    assert_eq!(
        login["remaining"],
        json!([["password"], ["email_code"], ["magic_link"]])
    );
    assert_eq!(
        (login["complete"].clone(), login["satisfied"].clone()),
        (json!(false), json!([]))
    );
    // The id alone grants nothing; another login's secret neither.
    let (_, other_secret, _) = start(&app, json!({"identifier": "x@example.com"})).await;
    for bearer in [
        None,
        Some(other_secret.as_str()),
        Some(app.test_admin.as_str()),
    ] {
        let r = app
            .send(Method::GET, &format!("/auth/logins/{id}"), bearer, None)
            .await;
        r.expect_problem(401, "unauthenticated");
    }
    // A factor the login does not ask for is a request error.
    step(&app, &id, &secret, "totp", json!({"code": "123456"}))
        .await
        .expect_problem(400, "invalid_request");
    step(
        &app,
        &id,
        &secret,
        "password",
        json!({"password": "wrong password!"}),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    let r = step(
        &app,
        &id,
        &secret,
        "password",
        json!({"password": PASSWORD}),
    )
    .await;
    let done = r.expect(200);
    assert_eq!(done["complete"], true);
    assert_eq!(done["satisfied"], json!(["password"]));
    let session = &done["session"];
    assert!(session["id"].as_str().unwrap().starts_with("ses_"));
    let refresh_token = session["refreshToken"].as_str().unwrap().to_owned();
    assert!(refresh_token.starts_with("lk_test_refresh_"));
    // The session is handed out once.
    let again = app
        .send(
            Method::GET,
            &format!("/auth/logins/{id}"),
            Some(&secret),
            None,
        )
        .await;
    let again = again.expect(200);
    assert_eq!(again["complete"], true);
    assert!(again.get("session").is_none(), "{again}");

    // The session's token: sid, amr, auth_time, and the same authorization
    // claims as the machine's client-credentials token for the tenant.
    let access = session["accessToken"].as_str().unwrap();
    let claims = decode_claims(access);
    assert_eq!(claims["sid"], session["id"]);
    assert_eq!(claims["amr"], json!(["pwd"]));
    assert!(claims["auth_time"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
    let client_secret = app.secret(&user).await;
    let (_, cc) = app
        .access_token(&user, &client_secret, &[("tenant_id", "plant")])
        .await;
    for claim in [
        "sub",
        "tenantId",
        "authorization",
        "kind",
        "mode",
        "iss",
        "aud",
        "userId",
    ] {
        assert_eq!(claims[claim], cc[claim], "{claim}");
    }
    assert_eq!(
        claims["authorization"]["plant"]["roles"],
        json!(["operator"])
    );
    assert!(cc.get("sid").is_none() && cc.get("amr").is_none());

    // /v1/me with the session; a client-credentials token is not a session.
    let me = app.send(Method::GET, "/v1/me", Some(access), None).await;
    let me = me.expect(200);
    assert_eq!(me["user"]["id"], user.as_str());
    assert_eq!(
        me["factors"],
        json!({"password": true, "totp": false, "backupCodesLeft": 0})
    );
    let (cc_token, _) = app.access_token(&user, &client_secret, &[]).await;
    app.send(Method::GET, "/v1/me", Some(&cc_token), None)
        .await
        .expect_problem(401, "unauthenticated");

    // Refresh rotates; a retry within 10 s gets the same successor.
    let r1 = refresh(&app, &refresh_token, &[]).await;
    let first = r1.expect(200).clone();
    assert_eq!(r1.headers["cache-control"], "no-store");
    let next = first["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, refresh_token);
    assert_eq!(
        decode_claims(first["access_token"].as_str().unwrap())["sid"],
        session["id"]
    );
    app.clock.advance(9);
    let retry = refresh(&app, &refresh_token, &[]).await;
    assert_eq!(retry.expect(200)["refresh_token"], next.as_str());
    // After the window, the old token's reuse ends the whole family.
    app.clock.advance(2);
    refresh(&app, &refresh_token, &[])
        .await
        .expect_oauth_error(400, "invalid_grant");
    refresh(&app, &next, &[])
        .await
        .expect_oauth_error(400, "invalid_grant");
    let introspected = app
        .client
        .post(app.url("/oauth/introspect"))
        .bearer_auth(&app.test_admin)
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(introspected["active"], false);
    app.send(Method::GET, "/v1/me", Some(access), None)
        .await
        .expect_problem(401, "unauthenticated");
    let audit = app
        .get("/v1/audit-events?action=session.refresh_token_reused")
        .await;
    assert_eq!(audit.expect(200)["data"][0]["target"]["id"], session["id"]);
}

async fn an_unknown_identifier_fails_exactly_like_a_wrong_password(app: TestApp) {
    machine_user(&app, "known@example.com").await;
    let (id_a, secret_a, known) = start(&app, json!({"identifier": "known@example.com"})).await;
    let (id_b, secret_b, unknown) = start(&app, json!({"identifier": "nobody@example.com"})).await;
    let shape = |v: &Value| {
        let mut v = v.clone();
        for k in ["id", "secret", "expiresAt"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    assert_eq!(shape(&known), shape(&unknown));
    let wrong = step(
        &app,
        &id_a,
        &secret_a,
        "password",
        json!({"password": "not it at all"}),
    )
    .await;
    let nobody = step(
        &app,
        &id_b,
        &secret_b,
        "password",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!((wrong.status, &wrong.body), (nobody.status, &nobody.body));
    wrong.expect_problem(401, "invalid_credentials");
}

async fn a_login_dies_after_ten_failures_and_throttling_answers_429(app: TestApp) {
    machine_user(&app, "dev@example.com").await;
    let (id, secret, _) = start(&app, json!({"identifier": "dev@example.com"})).await;
    for _ in 0..10 {
        step(
            &app,
            &id,
            &secret,
            "password",
            json!({"password": "wrong password!"}),
        )
        .await
        .expect_problem(401, "invalid_credentials");
    }
    step(
        &app,
        &id,
        &secret,
        "password",
        json!({"password": PASSWORD}),
    )
    .await
    .expect_problem(403, "login_locked");
    // The same identifier from the same address, in a new login: throttled
    // for the rest of the minute (ten failures), then free again.
    let (id2, secret2, _) = start(&app, json!({"identifier": "dev@example.com"})).await;
    let r = step(
        &app,
        &id2,
        &secret2,
        "password",
        json!({"password": PASSWORD}),
    )
    .await;
    r.expect_problem(429, "rate_limited");
    assert!(r.headers.contains_key("retry-after"));
    app.clock.advance(61);
    let r = step(
        &app,
        &id2,
        &secret2,
        "password",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.expect(200)["complete"], true);
}

/// A TOTP code for `secret` (base32) at the server's clock, from pyotp when
/// it is installed (CI installs it), else from our own generator.
fn code_at(secret: &str, unix: i64) -> String {
    let ours = totp::code_at(&totp::decode_secret(secret).unwrap(), totp::step_at(unix));
    let pyotp = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, pyotp; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &unix.to_string(),
        ])
        .output();
    match pyotp {
        Ok(out) if out.status.success() => {
            let theirs = String::from_utf8(out.stdout).unwrap().trim().to_owned();
            assert_eq!(theirs, ours, "pyotp and Latchkey disagree");
            theirs
        }
        _ => {
            assert!(std::env::var("CI").is_err(), "CI must have pyotp installed");
            eprintln!("pyotp is not installed: checking TOTP against our own generator only");
            ours
        }
    }
}

async fn totp_joins_every_login_once_enrolled_and_each_code_counts_once(app: TestApp) {
    let user = machine_user(&app, "robot@example.com").await;
    let session = password_login(&app, "robot@example.com", None).await;
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let r = app
        .send(Method::POST, "/v1/me/totp", Some(&access), None)
        .await;
    let enrolment = r.expect(201).clone();
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let uri = enrolment["otpauthUri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    assert!(enrolment["qrCodeSvg"].as_str().unwrap().contains("<svg"));
    let now = || app.clock.now().unix_timestamp();
    app.send(
        Method::POST,
        "/v1/me/totp/confirm",
        Some(&access),
        Some(json!({"code": "000000"})),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    let r = app
        .send(
            Method::POST,
            "/v1/me/totp/confirm",
            Some(&access),
            Some(json!({"code": code_at(&secret, now())})),
        )
        .await;
    let codes: Vec<String> = serde_json::from_value(r.expect(200)["backupCodes"].clone()).unwrap();
    assert_eq!(codes.len(), 10);

    // Now a password alone is not enough: TOTP joins the combination.
    let (id, login_secret, _) = start(&app, json!({"identifier": user})).await;
    let after = step(
        &app,
        &id,
        &login_secret,
        "password",
        json!({"password": PASSWORD}),
    )
    .await;
    let after = after.expect(200);
    assert_eq!(after["complete"], false);
    assert_eq!(after["factors"], json!(["totp", "backup_code"]));
    assert_eq!(after["remaining"], json!([["totp"]]));
    // The code that confirmed the enrolment was used: it does not count again.
    step(
        &app,
        &id,
        &login_secret,
        "totp",
        json!({"code": code_at(&secret, now())}),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    app.clock.advance(30);
    let code = code_at(&secret, now());
    let done = step(
        &app,
        &id,
        &login_secret,
        "totp",
        json!({"code": code.clone()}),
    )
    .await;
    let done = done.expect(200);
    assert_eq!(done["complete"], true);
    let claims = decode_claims(done["session"]["accessToken"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["mfa", "otp", "pwd"]));
    // The same code in another login: refused, once per user.
    let (id2, secret2, _) = start(&app, json!({"identifier": user})).await;
    step(
        &app,
        &id2,
        &secret2,
        "password",
        json!({"password": PASSWORD}),
    )
    .await
    .expect(200);
    step(&app, &id2, &secret2, "totp", json!({"code": code}))
        .await
        .expect_problem(401, "invalid_credentials");
    // A backup code stands in for TOTP, once.
    let done = step(
        &app,
        &id2,
        &secret2,
        "backup-code",
        json!({"code": codes[0].to_uppercase()}),
    )
    .await;
    assert_eq!(done.expect(200)["complete"], true);
    let (id3, secret3, _) = start(&app, json!({"identifier": user})).await;
    step(
        &app,
        &id3,
        &secret3,
        "password",
        json!({"password": PASSWORD}),
    )
    .await
    .expect(200);
    step(
        &app,
        &id3,
        &secret3,
        "backup-code",
        json!({"code": codes[0]}),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    // The admin can remove TOTP; a password alone is enough again.
    let me = app.send(Method::GET, "/v1/me", Some(&access), None).await;
    assert_eq!(me.expect(200)["factors"]["backupCodesLeft"], 9);
    let r = app.delete(&format!("/v1/users/{user}/factors/totp")).await;
    assert_eq!(r.status, 204);
    let again = password_login(&app, &user, None).await;
    assert!(again["accessToken"].is_string());
}

async fn policies_cascade_down_the_tree_and_a_rescope_asks_for_more(app: TestApp) {
    let user = machine_user(&app, "edge@example.com").await;
    app.post(
        "/v1/tenants",
        json!({"id": "line", "name": "Line", "parentId": "plant"}),
    )
    .await
    .expect(201);
    app.post(
        "/v1/tenants",
        json!({"id": "island", "name": "Island", "parentId": "plant", "cascade": false}),
    )
    .await
    .expect(201);
    let r = app.get("/v1/tenants/line/login-policy").await;
    let got = r.expect(200);
    assert_eq!(
        (got["source"].clone(), got["sourceTenantId"].clone()),
        (json!("default"), Value::Null)
    );
    assert_eq!(got["policy"]["passwordMinLength"], 12);
    app.put(
        "/v1/tenants/plant/login-policy",
        json!({"require": [["password", "totp"]], "factors": ["password"]}),
    )
    .await
    .expect_problem(400, "invalid_request");
    let r = app
        .put("/v1/tenants/plant/login-policy", json!({"require": [["password", "totp"]], "sessionLifetimeSeconds": 3600, "idleTimeoutSeconds": 600}))
        .await;
    assert_eq!(r.expect(200)["sourceTenantId"], "plant");
    let line = app.get("/v1/tenants/line/login-policy").await;
    let line = line.expect(200);
    assert_eq!(
        (line["source"].clone(), line["sourceTenantId"].clone()),
        (json!("tenant"), json!("plant"))
    );
    assert_eq!(line["policy"]["require"], json!([["password", "totp"]]));
    let island = app.get("/v1/tenants/island/login-policy").await;
    assert_eq!(island.expect(200)["source"], "default");
    app.get("/v1/tenants/nope/login-policy")
        .await
        .expect_problem(404, "not_found");

    // A password login in `line` does not complete for a user without TOTP.
    let (id, secret, _) = start(&app, json!({"identifier": user, "tenantId": "line"})).await;
    let r = step(
        &app,
        &id,
        &secret,
        "password",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(r.expect(200)["complete"], false);
    // A workspace session cannot be re-scoped into `line`: RFC 9470.
    let session = password_login(&app, &user, None).await;
    let token = session["refreshToken"].as_str().unwrap();
    let r = refresh(&app, token, &[("tenant_id", "line")]).await;
    r.expect_oauth_error(401, "insufficient_user_authentication");
    assert!(r.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_user_authentication"));
    // ... but into the boundary tenant, whose policy it meets.
    let r = refresh(&app, token, &[("tenant_id", "island")]).await;
    assert_eq!(
        decode_claims(r.expect(200)["access_token"].as_str().unwrap())["tenantId"],
        "island"
    );
    // A redirectUri must be registered in the tenant's policy, exactly.
    let with_redirect = |uri: &str| {
        app.send(
            Method::POST,
            "/auth/logins",
            None,
            Some(json!({"identifier": user, "tenantId": "line", "redirectUri": uri})),
        )
    };
    with_redirect("https://app.example/done")
        .await
        .expect_problem(400, "invalid_request");
    app.put("/v1/tenants/plant/login-policy", json!({"require": [["password", "totp"]], "allowedRedirectUris": ["https://app.example/done"]}))
        .await
        .expect(200);
    with_redirect("https://app.example/done").await.expect(201);
    with_redirect("https://app.example/done?next=/evil")
        .await
        .expect_problem(400, "invalid_request");
    app.put(
        "/v1/tenants/plant/login-policy",
        json!({"allowedRedirectUris": ["https://app.example/cb#frag"]}),
    )
    .await
    .expect_problem(400, "invalid_request");
    app.delete("/v1/tenants/plant/login-policy").await;
    assert_eq!(
        app.get("/v1/tenants/line/login-policy").await.expect(200)["source"],
        "default"
    );
}

async fn sessions_are_listed_ended_and_logged_out(app: TestApp) {
    let user = machine_user(&app, "fleet@example.com").await;
    let a = password_login(&app, &user, None).await;
    let b = password_login(&app, &user, None).await;
    let c = password_login(&app, &user, None).await;
    let access_a = a["accessToken"].as_str().unwrap();
    let listed = app
        .send(Method::GET, "/auth/sessions", Some(access_a), None)
        .await;
    assert_eq!(listed.expect(200)["data"].as_array().unwrap().len(), 3);
    // End b from a; log c out with its refresh token; a with its access token.
    let r = app
        .send(
            Method::DELETE,
            &format!("/auth/sessions/{}", b["id"].as_str().unwrap()),
            Some(access_a),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    refresh(&app, b["refreshToken"].as_str().unwrap(), &[])
        .await
        .expect_oauth_error(400, "invalid_grant");
    let r = app
        .send(
            Method::POST,
            "/auth/logout",
            None,
            Some(json!({"refreshToken": c["refreshToken"]})),
        )
        .await;
    assert_eq!(r.status, 204);
    let admin_view = app.get(&format!("/v1/users/{user}/sessions")).await;
    let ids: Vec<&str> = admin_view.expect(200)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [a["id"].as_str().unwrap()]);
    let r = app
        .send(Method::POST, "/auth/logout", Some(access_a), None)
        .await;
    assert_eq!(r.status, 204);
    app.send(Method::POST, "/auth/logout", Some(access_a), None)
        .await
        .expect_problem(401, "unauthenticated");
    assert!(app
        .get(&format!("/v1/users/{user}/sessions"))
        .await
        .expect(200)["data"]
        .as_array()
        .unwrap()
        .is_empty());
    // The admin ends them all; a test admin never sees live sessions.
    let d = password_login(&app, &user, None).await;
    let r = app.delete(&format!("/v1/users/{user}/sessions")).await;
    assert_eq!(r.status, 204);
    refresh(&app, d["refreshToken"].as_str().unwrap(), &[])
        .await
        .expect_oauth_error(400, "invalid_grant");
    let live = app
        .send(
            Method::GET,
            &format!("/v1/users/{user}/sessions"),
            Some(app.admin(Mode::Live)),
            None,
        )
        .await;
    live.expect_problem(404, "not_found");
}

async fn passwords_follow_the_policy_and_changing_one_ends_the_other_sessions(app: TestApp) {
    let user = machine_user(&app, "pw@example.com").await;
    for (bad, why) in [
        ("short", "at least 12"),
        ("password1234", "commonly used"),
        ("pw@example.com", "own name"),
    ] {
        let r = app
            .put(
                &format!("/v1/users/{user}/password"),
                json!({"password": bad}),
            )
            .await;
        r.expect_problem(400, "invalid_request");
        assert!(r.text.contains(why), "{}", r.text);
    }
    let one = password_login(&app, &user, None).await;
    let two = password_login(&app, &user, None).await;
    let access = one["accessToken"].as_str().unwrap();
    app.send(
        Method::PUT,
        "/v1/me/password",
        Some(access),
        Some(json!({"currentPassword": "nope", "newPassword": "another-long-phrase-7"})),
    )
    .await
    .expect_problem(401, "invalid_credentials");
    let r = app
        .send(
            Method::PUT,
            "/v1/me/password",
            Some(access),
            Some(json!({"currentPassword": PASSWORD, "newPassword": "another-long-phrase-7"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    refresh(&app, two["refreshToken"].as_str().unwrap(), &[])
        .await
        .expect_oauth_error(400, "invalid_grant");
    refresh(&app, one["refreshToken"].as_str().unwrap(), &[])
        .await
        .expect(200);
    let (id, secret, _) = start(&app, json!({"identifier": user})).await;
    step(
        &app,
        &id,
        &secret,
        "password",
        json!({"password": PASSWORD}),
    )
    .await
    .expect_problem(401, "invalid_credentials");
}

async fn a_session_creates_api_keys_no_broader_than_itself(app: TestApp) {
    let user = machine_user(&app, "keys@example.com").await;
    let session = password_login(&app, &user, Some("plant")).await;
    let access = session["accessToken"].as_str().unwrap();
    let ask = |body: Value| app.send(Method::POST, "/v1/me/api-keys", Some(access), Some(body));
    // The default policy does not let sessions create keys.
    ask(json!({})).await.expect_problem(403, "forbidden");
    app.put(
        "/v1/tenants/plant/login-policy",
        json!({"selfServiceApiKeys": true}),
    )
    .await
    .expect(200);
    let r = ask(json!({"name": "edge box"})).await;
    let created = r.expect(201).clone();
    let key = created["key"].as_str().unwrap();
    assert_eq!(created["tenantId"], "plant");
    assert!(
        created["expiresAt"].is_string(),
        "ends with the session: {created}"
    );
    let verified = app
        .send(
            Method::POST,
            "/v1/api-keys/verify",
            Some(&app.test_admin),
            Some(json!({"key": key})),
        )
        .await;
    let verified = verified.expect(200);
    assert_eq!(
        (verified["valid"].clone(), verified["userId"].clone()),
        (json!(true), json!(user))
    );
    assert_eq!(verified["roles"], json!(["operator"]));
    ask(json!({"roles": ["admin"]}))
        .await
        .expect_problem(400, "invalid_request");
    ask(json!({"tenantId": "acme-ws"}))
        .await
        .expect_problem(403, "forbidden");
    ask(json!({"expiresAt": "2999-01-01T00:00:00Z"}))
        .await
        .expect_problem(400, "invalid_request");
    let audit = app.get("/v1/audit-events?action=api_key.created").await;
    assert_eq!(audit.expect(200)["data"][0]["actor"]["type"], "client");
}

fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test]
async fn unknown_identifiers_and_wrong_passwords_take_the_same_time() {
    let app = crate::helpers::spawn_app_with(
        crate::helpers::Backend::Sqlite,
        crate::helpers::no_bruteforce_limits,
    )
    .await
    .unwrap();
    machine_user(&app, "timed@example.com").await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    let time = |identifier: &'static str| {
        let app = &app;
        async move {
            let (id, secret, _) = start(app, json!({"identifier": identifier})).await;
            let began = std::time::Instant::now();
            let r = step(
                app,
                &id,
                &secret,
                "password",
                json!({"password": "not the password"}),
            )
            .await;
            let took = began.elapsed();
            r.expect_problem(401, "invalid_credentials");
            took
        }
    };
    let rounds = 30;
    for i in 0..rounds + 4 {
        let (k, u) = if i % 2 == 0 {
            let k = time("timed@example.com").await;
            (k, time("nobody-timed@example.com").await)
        } else {
            let u = time("nobody-timed@example.com").await;
            (time("timed@example.com").await, u)
        };
        if i >= 4 {
            known.push(k);
            unknown.push(u);
        }
    }
    known.sort();
    unknown.sort();
    let show = |s: &[std::time::Duration]| {
        format!(
            "p10={:?} p50={:?} p90={:?}",
            percentile(s, 0.1),
            percentile(s, 0.5),
            percentile(s, 0.9)
        )
    };
    eprintln!("wrong password:     {}", show(&known));
    eprintln!("unknown identifier: {}", show(&unknown));
    let (k50, u50) = (percentile(&known, 0.5), percentile(&unknown, 0.5));
    let within = |x, s: &[std::time::Duration]| percentile(s, 0.1) <= x && x <= percentile(s, 0.9);
    assert!(
        within(k50, &unknown),
        "the wrong-password median is outside the unknown p10..p90"
    );
    assert!(
        within(u50, &known),
        "the unknown median is outside the wrong-password p10..p90"
    );
}

crate::on_both_stores!(
    a_session_creates_api_keys_no_broader_than_itself,
    a_machine_logs_in_with_a_password_and_refreshes_a_rotating_session,
    an_unknown_identifier_fails_exactly_like_a_wrong_password,
    a_login_dies_after_ten_failures_and_throttling_answers_429,
    totp_joins_every_login_once_enrolled_and_each_code_counts_once,
    policies_cascade_down_the_tree_and_a_rescope_asks_for_more,
    sessions_are_listed_ended_and_logged_out,
    passwords_follow_the_policy_and_changing_one_ends_the_other_sessions,
);
