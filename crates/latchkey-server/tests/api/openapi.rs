//! `/openapi.json` is generated from the code: every route the server serves
//! is in it, and every path in it is served.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, Backend};

/// Every route of the contract this server implements.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
    ("get", "/.well-known/oauth-authorization-server"),
    ("get", "/.well-known/openid-configuration"),
    ("get", "/.well-known/jwks.json"),
    ("get", "/.well-known/oauth-authorization-server/test"),
    ("get", "/test/.well-known/oauth-authorization-server"),
    ("get", "/test/.well-known/openid-configuration"),
    ("get", "/.well-known/openid-configuration/test"),
    ("get", "/test/.well-known/jwks.json"),
    ("post", "/oauth/token"),
    ("post", "/oauth/introspect"),
    ("post", "/oauth/revoke"),
    ("get", "/v1/workspace"),
    ("post", "/v1/import"),
    ("get", "/v1/export"),
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{id}"),
    ("patch", "/v1/tenants/{id}"),
    ("delete", "/v1/tenants/{id}"),
    ("put", "/v1/tenants/{tenantId}/users/{userId}/roles"),
    ("get", "/v1/tenants/{tenantId}/users"),
    ("put", "/v1/roles/{name}"),
    ("get", "/v1/roles"),
    ("get", "/v1/roles/{name}"),
    ("delete", "/v1/roles/{name}"),
    ("post", "/v1/users"),
    ("get", "/v1/users"),
    ("get", "/v1/users/{id}"),
    ("patch", "/v1/users/{id}"),
    ("delete", "/v1/users/{id}"),
    ("get", "/v1/users/{id}/authorization"),
    ("post", "/v1/users/{id}/secrets"),
    ("get", "/v1/users/{id}/secrets"),
    ("delete", "/v1/users/{id}/secrets/{secretId}"),
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("post", "/v1/api-keys/verify"),
    ("get", "/v1/api-keys/{id}"),
    ("delete", "/v1/api-keys/{id}"),
    ("post", "/v1/api-keys/{id}/rotate"),
    ("get", "/v1/signing-keys"),
    ("post", "/v1/signing-keys/rotate"),
    ("post", "/v1/tokens"),
    ("post", "/v1/users/{id}/keys"),
    ("get", "/v1/users/{id}/keys"),
    ("delete", "/v1/users/{id}/keys/{keyId}"),
    ("get", "/v1/audit-events"),
    ("get", "/v1/tenants/{id}/login-policy"),
    ("put", "/v1/tenants/{id}/login-policy"),
    ("delete", "/v1/tenants/{id}/login-policy"),
    ("put", "/v1/users/{id}/password"),
    ("delete", "/v1/users/{id}/factors/{factor}"),
    ("get", "/v1/users/{id}/sessions"),
    ("delete", "/v1/users/{id}/sessions"),
    ("post", "/auth/logins"),
    ("get", "/auth/logins/{id}"),
    ("post", "/auth/logins/{id}/password"),
    ("post", "/auth/logins/{id}/totp"),
    ("post", "/auth/logins/{id}/backup-code"),
    ("post", "/auth/logout"),
    ("get", "/auth/sessions"),
    ("delete", "/auth/sessions/{id}"),
    ("get", "/v1/me"),
    ("put", "/v1/me/password"),
    ("post", "/v1/me/totp"),
    ("delete", "/v1/me/totp"),
    ("post", "/v1/me/totp/confirm"),
    ("post", "/v1/me/backup-codes"),
    ("post", "/auth/logins/{id}/email-code"),
    ("post", "/auth/logins/{id}/sms-code"),
    ("post", "/auth/logins/{id}/magic-link"),
    ("get", "/auth/magic"),
    ("post", "/auth/magic"),
    ("get", "/v1/test-outbox"),
    ("post", "/v1/me/api-keys"),
    ("get", "/v1/trusted-issuers"),
    ("put", "/v1/trusted-issuers/{id}"),
    ("get", "/v1/trusted-issuers/{id}"),
    ("delete", "/v1/trusted-issuers/{id}"),
    ("get", "/v1/identity-providers"),
    ("put", "/v1/identity-providers/{id}"),
    ("get", "/v1/identity-providers/{id}"),
    ("delete", "/v1/identity-providers/{id}"),
    ("post", "/auth/logins/{id}/sso/{providerId}"),
    ("get", "/auth/sso/{providerId}/callback"),
    ("get", "/test/auth/sso/{providerId}/callback"),
    ("get", "/auth/saml/{providerId}/metadata"),
    ("get", "/test/auth/saml/{providerId}/metadata"),
    ("post", "/auth/saml/{providerId}/acs"),
    ("post", "/test/auth/saml/{providerId}/acs"),
];

#[tokio::test]
async fn every_route_is_in_the_openapi_document_and_every_documented_path_is_served() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let r = app.get("/openapi.json").await;
    let doc = r.expect(200).clone();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is missing from /openapi.json"
        );
    }
    // And the other way round: nothing documented is missing from the router.
    let mut documented = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            documented += 1;
            let concrete = path
                .replace("{id}", "x")
                .replace("{tenantId}", "x")
                .replace("{userId}", "x")
                .replace("{name}", "x")
                .replace("{secretId}", "x")
                .replace("{keyId}", "x")
                .replace("{factor}", "x")
                .replace("{providerId}", "x");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = app.send(m, &concrete, Some(&app.test_admin), None).await;
            assert_ne!(r.status.as_u16(), 405, "{method} {path} not routed");
            let fallback = r.body.get("detail") == Some(&Value::from("no such route"));
            assert!(!fallback, "{method} {path} not routed");
        }
    }
    assert_eq!(
        documented,
        ROUTES.len(),
        "a route is documented but not listed here"
    );
    assert!(doc["components"]["securitySchemes"]["adminKey"].is_object());
}

/// The schema a `$ref` (or an inline schema) stands for.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

#[tokio::test]
async fn every_reference_in_the_document_names_a_schema_of_it() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let doc = app.get("/openapi.json").await.expect(200).clone();
    let text = doc.to_string();
    let mut refs = 0;
    for part in text.split("\"$ref\":\"").skip(1) {
        let target = part.split('"').next().unwrap();
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{target} is referenced but not defined"
        );
        refs += 1;
    }
    assert!(refs > 20, "only {refs} references");
}

/// Found by schemathesis: where the document was looser than the server,
/// schema-valid requests were refused. These hold the rules in the
/// document; fuzz/api.sh checks them against the server.
#[tokio::test]
async fn the_document_states_the_bounds_the_server_checks() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let doc = app.get("/openapi.json").await.expect(200).clone();
    let schemas = &doc["components"]["schemas"];

    // Every list's page size is 1 to 1000 and its cursor base64url: the
    // same parameters on every list, including ones added later.
    let mut lists = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                match p["name"].as_str().unwrap() {
                    "limit" => {
                        lists += 1;
                        assert_eq!(p["schema"]["minimum"], 1, "{method} {path}");
                        assert_eq!(p["schema"]["maximum"], 1000, "{method} {path}");
                    }
                    "cursor" => {
                        assert_eq!(
                            p["schema"]["pattern"], "^[A-Za-z0-9_-]*$",
                            "{method} {path}"
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    assert!(lists >= 6, "{lists} lists");

    // Introspection and revocation take `token`; their form once shared a
    // schema name with the token endpoint's, so the document described the
    // token endpoint's form for them.
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let body = &doc["paths"][path]["post"]["requestBody"]["content"]
            ["application/x-www-form-urlencoded"]["schema"];
        assert_eq!(resolve(&doc, body)["required"], json!(["token"]), "{path}");
    }
    let form = &doc["paths"]["/oauth/token"]["post"]["requestBody"]["content"]
        ["application/x-www-form-urlencoded"]["schema"];
    let grant = resolve(&doc, &resolve(&doc, form)["properties"]["grant_type"]);
    let metadata = app.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(grant["enum"], metadata.expect(200)["grant_types_supported"]);

    // Lifetimes: a user's is capped by the server's ceiling, a custom
    // token's by this server's setting (3600 by default).
    assert_eq!(
        schemas["CreateUser"]["properties"]["tokenTtlSeconds"]["maximum"],
        latchkey_server::config::MAX_TOKEN_TTL_SECONDS
    );
    assert_eq!(
        schemas["CreateToken"]["properties"]["ttlSeconds"]["maximum"],
        3600
    );

    // The verify body is optional, but not `null`.
    let verify = &doc["paths"]["/v1/api-keys/verify"]["post"]["requestBody"];
    assert_eq!(verify["required"], false);
    let body = resolve(&doc, &verify["content"]["application/json"]["schema"]);
    assert_eq!(body["type"], "object");
}

#[tokio::test]
async fn the_served_document_states_this_servers_custom_token_lifetime_cap() {
    let app = spawn_app_with(Backend::Sqlite, |s| {
        s.custom_token_max_ttl_seconds = Some(120)
    })
    .await
    .unwrap();
    let doc = app.get("/openapi.json").await.expect(200).clone();
    let ttl = &doc["components"]["schemas"]["CreateToken"]["properties"]["ttlSeconds"];
    assert_eq!(ttl["maximum"], 120);
    let user = app.machine("m").await;
    for (ttl, status) in [(120, 200), (121, 400)] {
        let r = app
            .post("/v1/tokens", json!({"userId": user, "ttlSeconds": ttl}))
            .await;
        assert_eq!(r.status.as_u16(), status, "{ttl}: {}", r.text);
    }
}
