//! The axum application: every route module merged under one OpenAPI
//! document, with the cross-cutting layers (body limit, tracing, panics as
//! generic 500s) and problem-document fallbacks for unknown paths and methods.

use std::any::Any;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::routes;
use crate::state::AppState;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Requests whose headers add up to more than this are refused with 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses requests with oversized headers before any handler (or credential
/// check) sees them.
async fn limit_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + request.uri().to_string().len();
    if size > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge.into_response();
    }
    next.run(request).await
}

/// How long an import or export request may take: a file of hundreds of
/// thousands of records is read and written in one request.
pub const MIGRATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// Answers 408 when a request (reading its body included) takes longer than
/// `limit`, or [`MIGRATION_TIMEOUT`] for an import or export.
async fn limit_time(
    limit: std::time::Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let limit = match path == "/v1/import" || path == "/v1/export" {
        true => MIGRATION_TIMEOUT,
        false => limit,
    };
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => axum::http::StatusCode::REQUEST_TIMEOUT.into_response(),
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Latchkey",
        description = "Machine-to-machine authentication: tenants, machines, RBAC, \
                       client secrets and JWT access tokens."
    ),
    modifiers(&AdminKeyScheme),
    components(schemas(latchkey_types::ids::LoginId, latchkey_types::ids::SessionId)),
    tags(
        (name = "health", description = "Probes and the API description"),
        (name = "tenants", description = "The workspace, tenants and memberships"),
        (name = "roles", description = "The role catalog"),
        (name = "users", description = "Machines, people and client secrets"),
        (name = "api-keys", description = "API keys and their verification"),
        (name = "signing-keys", description = "Signing keys and their rotation"),
        (name = "tokens", description = "Custom tokens minted by an admin"),
        (name = "audit", description = "The audit log of admin writes and credential events"),
        (name = "oauth", description = "OAuth 2.0 token endpoint, metadata and JWKS"),
        (name = "logins", description = "Login flows: a login's steps, one per factor, until a session"),
        (name = "sessions", description = "Sessions: listing, ending, logout"),
        (name = "me", description = "Self-service with a session's access token"),
        (name = "federation", description = "Trusted issuers (workload identity federation) and identity providers"),
        (name = "migration", description = "Import and export of records, legacy credentials included"),
    )
)]
struct ApiDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, format) in [
            ("apiKey", "lk_<mode>_key_…"),
            ("accessToken", "JWT access token"),
            (
                "sessionToken",
                "JWT access token of a login session (with sid)",
            ),
            ("loginSecret", "lk_<mode>_login_…"),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format(format)
                        .build(),
                ),
            );
        }
        components.add_security_scheme(
            "adminKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("lk_<mode>_admin_…")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI document, serialised once.
#[derive(Debug, Clone)]
struct OpenApiJson(Arc<String>);

/// This API's OpenAPI 3.1 description.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

/// The router and its OpenAPI document, before state is attached.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .merge(routes::health::router())
        .merge(crate::http::metrics::router())
        .merge(routes::oauth::router())
        .merge(routes::introspection::router())
        .merge(routes::tenants::router())
        .merge(routes::roles::router())
        .merge(routes::users::router())
        .merge(routes::secrets::router())
        .merge(routes::user_keys::router())
        .merge(routes::api_keys::router())
        .merge(routes::signing_keys::router())
        .merge(routes::tokens::router())
        .merge(routes::audit::router())
        .merge(routes::logins::router())
        .merge(routes::sessions::router())
        .merge(routes::me::router())
        .merge(routes::login_policy::router())
        .merge(routes::factors::router())
        .merge(routes::magic::router())
        .merge(routes::outbox::router())
        .merge(routes::trusted_issuers::router())
        .merge(routes::identity_providers::router())
        .merge(routes::sso::router())
        .merge(routes::saml::router())
        .merge(routes::migration::router())
        .split_for_parts();
    let (router, mut api) = (router, api);
    document_error_responses(&mut api);
    (router, api)
}

/// Answers any operation can give besides its own: the request limits
/// (408, 413, 429 on the credential routes, 431), authentication and the
/// store (401, 503), and validation (400); and, on `/v1`, 403 (`tls_required`),
/// 404, 405 and 415. Errors on `/v1` are `application/problem+json`
/// (`Problem`), on `/oauth` JSON (`OAuthErrorBody`). Declared after the
/// routes are merged, so the document says every status a client can see.
fn document_error_responses(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let response = |schema: &str, content_type: &str, description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    content_type,
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(schema)))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in api.paths.paths.iter_mut() {
        let oauth = path.starts_with("/oauth/");
        // The login API answers like /v1: problem documents, 401 for a
        // missing or wrong login secret or session, 404, 409, 415.
        let v1 = path.starts_with("/v1/") || path.starts_with("/auth/");
        let (schema, content_type) = if oauth {
            ("OAuthErrorBody", "application/json")
        } else {
            ("Problem", "application/problem+json")
        };
        let mut statuses = vec![
            ("400", "The request is not valid"),
            ("408", "The request took too long to arrive"),
            ("413", "The body is too large"),
            ("431", "The headers are too large"),
            ("503", "The store is unavailable"),
        ];
        if oauth || v1 {
            statuses.push(("401", "No valid credential"));
            statuses.push(("403", "Not allowed, or a live credential without TLS"));
            statuses.push(("429", "Too many failed attempts (see Retry-After)"));
        }
        if v1 {
            statuses.extend([
                ("404", "No such resource in this mode"),
                ("405", "Method not allowed"),
                ("409", "Conflicts with the stored state"),
                ("415", "The body is not JSON"),
            ]);
        }
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            let responses = &mut operation.responses.responses;
            // Every error a route declares itself is a problem document
            // outside /oauth.
            if !oauth {
                for (status, declared) in responses.iter_mut() {
                    if let (true, RefOr::T(r)) =
                        (status.starts_with('4') || status.starts_with('5'), declared)
                    {
                        if let Some(c) = r.content.shift_remove("application/json") {
                            r.content.insert(content_type.to_owned(), c);
                        }
                    }
                }
            }
            for (status, description) in &statuses {
                if !responses.contains_key(*status) {
                    responses.insert(
                        (*status).to_owned(),
                        response(schema, content_type, description),
                    );
                }
            }
        }
    }
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// Sets the documented maximum of `POST /v1/tokens`' `ttlSeconds` to this
/// server's `custom_token_max_ttl_seconds`, so the served document states
/// the bound this server enforces (the static one states the ceiling).
fn document_custom_token_cap(api: &mut utoipa::openapi::OpenApi, cap: i64) {
    use utoipa::openapi::{RefOr, Schema};
    let create = api
        .components
        .as_mut()
        .and_then(|c| c.schemas.get_mut("CreateToken"));
    let Some(RefOr::T(Schema::Object(create))) = create else {
        return;
    };
    if let Some(RefOr::T(Schema::Object(ttl))) = create.properties.get_mut("ttlSeconds") {
        ttl.maximum = isize::try_from(cap).ok().map(utoipa::Number::Int);
    }
}

/// The complete application.
pub fn app(state: AppState) -> Router {
    let (router, mut api) = routes();
    document_custom_token_cap(&mut api, state.config.custom_token_max_ttl_seconds);
    let request_timeout = state.config.connections.request_timeout;
    let json = api.to_json().unwrap_or_else(|_| "{}".to_owned());
    router
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::authn::bruteforce::limit,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::metrics::track,
        ))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(Extension(OpenApiJson(Arc::new(json))))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::http::transport::read_credentials,
        ))
        .layer(axum::middleware::from_fn(limit_headers))
        // The path, never the query: a client that puts a credential in
        // the query string by mistake must not have it logged.
        .layer(TraceLayer::new_for_http().make_span_with(
            |req: &axum::http::Request<axum::body::Body>| {
                tracing::debug_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    version = ?req.version(),
                )
            },
        ))
        .layer(CatchPanicLayer::custom(panic_response))
        // Outermost, so reading a body anywhere below counts against it.
        .layer(axum::middleware::from_fn(move |req, next| {
            limit_time(request_timeout, req, next)
        }))
        .with_state(state)
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    // The panic message may hold request data; it is not echoed. The panic
    // hook has already printed it to the log.
    tracing::error!("a request handler panicked");
    ApiError::Internal.into_response()
}

#[cfg(test)]
mod tests {
    //! In-process tests with `oneshot`: the store can be closed under the
    //! app to prove the hot path does not need it once warm.

    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{header, Request, StatusCode};
    use base64::Engine as _;
    use latchkey_core::clock::SystemClock;
    use latchkey_core::credential::{self, CredentialKind};
    use latchkey_store::Store;
    use latchkey_types::Mode;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    use crate::config::{BootstrapKeys, Config, Settings};
    use crate::state::AppState;

    async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn admin_json(key: &str, method: &str, uri: &str, body: Value) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }

    fn token_request(id: &str, secret: &str) -> Request<Body> {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        Request::builder()
            .method("POST")
            .uri("/oauth/token")
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(
                "grant_type=client_credentials&scope=telemetry:read",
            ))
            .unwrap()
    }

    #[tokio::test]
    async fn once_warm_issuance_needs_no_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let admin = credential::generate(Mode::Test, CredentialKind::Admin);
        let keys = BootstrapKeys {
            test: Some(admin.clone()),
            ..Default::default()
        };
        let settings = Settings {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let mut config = Config::resolve(settings, keys).unwrap();
        // Every read is past its TTL: with the store gone, the stale entries
        // must still be served.
        config.cache_ttl = std::time::Duration::ZERO;
        let state = AppState::load(store.clone(), config, Arc::new(SystemClock))
            .await
            .unwrap();
        let app = super::app(state);
        let key = admin.expose();
        let (s, _) = call(
            &app,
            admin_json(
                key,
                "PUT",
                "/v1/roles/reader",
                json!({"permissions": ["telemetry:read"]}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let (s, user) = call(
            &app,
            admin_json(key, "POST", "/v1/users", json!({"name": "m"})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED);
        let id = user["id"].as_str().unwrap().to_owned();
        let ws = call(&app, admin_json(key, "GET", "/v1/workspace", Value::Null))
            .await
            .1;
        let ws = ws["id"].as_str().unwrap().to_owned();
        let (s, _) = call(
            &app,
            admin_json(
                key,
                "PUT",
                &format!("/v1/tenants/{ws}/users/{id}/roles"),
                json!({"roles": ["reader"]}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let (_, created) = call(
            &app,
            admin_json(key, "POST", &format!("/v1/users/{id}/secrets"), json!({})),
        )
        .await;
        let secret = created["secret"].as_str().unwrap().to_owned();

        // Warm-up: the first token loads principal, tree and catalog.
        let (s, body) = call(&app, token_request(&id, &secret)).await;
        assert_eq!(s, StatusCode::OK, "{body}");

        // Take the database away.
        store.close().await;
        let ready = Request::builder()
            .uri("/readyz")
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, ready).await.0, StatusCode::SERVICE_UNAVAILABLE);

        for _ in 0..3 {
            let (s, body) = call(&app, token_request(&id, &secret)).await;
            assert_eq!(s, StatusCode::OK, "{body}");
            assert_eq!(body["scope"], "telemetry:read");
        }
        // A wrong secret is still refused without the store.
        let (s, body) = call(&app, token_request(&id, "lk_test_secret_wrong")).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "invalid_client");
        // A key with a broken checksum is refused without any lookup: the
        // store is gone, yet the answer is `malformed`, not a 503.
        let typo = {
            let good = credential::generate(Mode::Test, CredentialKind::ApiKey);
            let mut b = good.expose().as_bytes().to_vec();
            b[20] = if b[20] == b'a' { b'b' } else { b'a' };
            String::from_utf8(b).unwrap()
        };
        let verify = Request::builder()
            .method("POST")
            .uri("/v1/api-keys/verify")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header("x-api-key", typo)
            .body(Body::empty())
            .unwrap();
        let (s, body) = call(&app, verify).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body, json!({"valid": false, "code": "malformed"}));
        // Admin writes now fail cleanly with 503, not a panic.
        let (s, body) = call(
            &app,
            admin_json(key, "POST", "/v1/users", json!({"name": "n"})),
        )
        .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "unavailable");
    }
}
