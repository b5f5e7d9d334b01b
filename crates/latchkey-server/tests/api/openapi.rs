//! `/openapi.json` is generated from the code: every route the server serves
//! is in it, and every path in it is served.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{spawn_app, Backend};

/// Every route of the contract this server implements.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
    ("get", "/.well-known/oauth-authorization-server"),
    ("get", "/.well-known/openid-configuration"),
    ("get", "/.well-known/jwks.json"),
    ("post", "/oauth/token"),
    ("post", "/oauth/introspect"),
    ("post", "/oauth/revoke"),
    ("get", "/v1/workspace"),
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
                .replace("{keyId}", "x");
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
