//! `/v1/users/{id}/keys`: the public keys registered on a user, for
//! `private_key_jwt` and the JWT-bearer grant. A private JWK is refused.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::ids;
use latchkey_types::admin::{CreateUserKey, UserKey};
use latchkey_types::audit::AuditAction;
use latchkey_types::error::Problem;
use latchkey_types::ids::UserId;
use latchkey_types::oauth::Jwk;
use latchkey_types::{JsonObject, Page};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, RecordPath};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(add_user_key, list_user_keys))
        .routes(routes!(delete_user_key))
}

/// Members a public JWK must not have: any of them makes it a private key.
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Checks a JWK given for registration and returns it typed, with its kid.
fn public_jwk(raw: &JsonObject) -> Result<Jwk, ApiError> {
    let bad = |d: &str| ApiError::InvalidRequest(d.to_owned());
    if let Some(m) = PRIVATE_JWK_MEMBERS.iter().find(|m| raw.contains_key(**m)) {
        return Err(ApiError::InvalidRequest(format!(
            "this JWK has the private member {m:?}; register the public key only"
        )));
    }
    let text = |name: &str| raw.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let kty = text("kty").ok_or_else(|| bad("jwk.kty is required"))?;
    let (alg, jwk) = match (kty.as_str(), text("crv").as_deref()) {
        ("OKP", Some("Ed25519")) => (
            "EdDSA",
            Jwk {
                kty,
                kid: String::new(),
                alg: "EdDSA".into(),
                use_: "sig".into(),
                crv: text("crv"),
                x: Some(text("x").ok_or_else(|| bad("jwk.x is required"))?),
                y: None,
                n: None,
                e: None,
            },
        ),
        ("EC", Some("P-256")) => (
            "ES256",
            Jwk {
                kty,
                kid: String::new(),
                alg: "ES256".into(),
                use_: "sig".into(),
                crv: text("crv"),
                x: Some(text("x").ok_or_else(|| bad("jwk.x is required"))?),
                y: Some(text("y").ok_or_else(|| bad("jwk.y is required"))?),
                n: None,
                e: None,
            },
        ),
        ("RSA", _) => {
            let n = text("n").ok_or_else(|| bad("jwk.n is required"))?;
            // base64url of at least 2048 bits.
            if n.len() < 342 {
                return Err(bad("RSA keys must have at least 2048 bits"));
            }
            (
                "RS256",
                Jwk {
                    kty,
                    kid: String::new(),
                    alg: "RS256".into(),
                    use_: "sig".into(),
                    crv: None,
                    x: None,
                    y: None,
                    n: Some(n),
                    e: Some(text("e").ok_or_else(|| bad("jwk.e is required"))?),
                },
            )
        }
        _ => {
            return Err(bad(
                "the key must be OKP Ed25519 (EdDSA), EC P-256 (ES256) or RSA (RS256)",
            ))
        }
    };
    if let Some(given) = text("alg") {
        if given != alg {
            return Err(ApiError::InvalidRequest(format!(
                "jwk.alg {given:?} does not match the key type ({alg})"
            )));
        }
    }
    if text("use").is_some_and(|u| u != "sig") {
        return Err(bad("jwk.use must be \"sig\""));
    }
    let mut jwk = jwk;
    jwk.kid = match text("kid") {
        Some(kid) if !kid.is_empty() && kid.len() <= 128 && !kid.contains('\0') => kid,
        Some(_) => return Err(bad("jwk.kid must be 1 to 128 characters, without U+0000")),
        None => latchkey_core::signing::thumbprint(&jwk),
    };
    // The key must actually parse as a verification key.
    latchkey_verify::jwks::KeySet::from_keys([&jwk])
        .map_err(|e| ApiError::InvalidRequest(format!("the key does not parse: {e}")))?;
    Ok(jwk)
}

/// Registers a public key for `private_key_jwt` and the JWT-bearer grant.
#[utoipa::path(post, path = "/v1/users/{id}/keys", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)), request_body = CreateUserKey,
    responses((status = 201, body = UserKey), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn add_user_key(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
    ApiJson(body): ApiJson<CreateUserKey>,
) -> Result<impl IntoResponse, ApiError> {
    let jwk = public_jwk(&body.jwk)?;
    let key = UserKey {
        id: ids::new_prefixed_id("pk"),
        user_id: String::from(&id),
        kid: jwk.kid.clone(),
        alg: jwk.alg.clone(),
        jwk,
        created_at: state.clock.now(),
    };
    let written = state
        .store
        .add_user_key(admin.mode(), &key, |created| {
            admin
                .event(&state, AuditAction::UserKeyAdded, "user_key", &created.id)
                .with_detail("userId", id.clone())
                .with_detail("kid", created.kid.clone())
                .with_detail("alg", created.alg.clone())
        })
        .await?;
    let created = state.applied(written).await;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// The public keys registered on a user.
#[utoipa::path(get, path = "/v1/users/{id}/keys", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Page<UserKey>), (status = 404, body = Problem)))]
async fn list_user_keys(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<UserId>,
) -> Result<axum::Json<Page<UserKey>>, ApiError> {
    Ok(axum::Json(Page {
        data: state.store.list_user_keys(admin.mode(), &id).await?,
        next_cursor: None,
    }))
}

/// Removes a public key; assertions signed with it stop working at once.
#[utoipa::path(delete, path = "/v1/users/{id}/keys/{keyId}", tag = "users",
    security(("adminKey" = [])), params(("id" = String, Path), ("keyId" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_user_key(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath((id, key_id)): RecordPath<(UserId, String)>,
) -> Result<StatusCode, ApiError> {
    let event = admin
        .event(&state, AuditAction::UserKeyRemoved, "user_key", &key_id)
        .with_detail("userId", id.clone());
    let written = state
        .store
        .delete_user_key(admin.mode(), &id, &key_id, |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
