//! `/v1/signing-keys`: listing and rotating the signing keys of a mode.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::clock::from_unix_ms;
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_store::SigningKeyRecord;
use latchkey_types::error::Problem;
use latchkey_types::oauth::{RotateSigningKey, SigningKeyInfo};
use latchkey_types::{Mode, Page};
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::authn::auth::Admin;
use crate::http::error::ApiError;
use crate::http::extract::ApiJson;
use crate::state::AppState;
use latchkey_types::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget};

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_signing_keys))
        .routes(routes!(rotate_signing_key))
}

fn info(state: &AppState, mode: Mode) -> Vec<SigningKeyInfo> {
    let now = state.clock.now();
    let ring = state.keys.ring(now);
    let loaded = state.keys.all();
    let mut out: Vec<SigningKeyInfo> = ring
        .plan
        .keys
        .iter()
        .filter(|k| k.mode == mode)
        .filter_map(|k| {
            let key = loaded.iter().find(|(kid, _)| *kid == k.kid)?.1.clone();
            Some(SigningKeyInfo {
                kid: k.kid.clone(),
                alg: key.key.alg().as_str().to_owned(),
                mode,
                status: k.phase.as_str().to_owned(),
                created_at: key.created_at,
                activates_at: key.not_before,
                retires_at: k.retires_at.map(from_unix_ms),
                removed_at: k.removed_at.map(from_unix_ms),
                public_jwk: key.key.public_jwk().clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.activates_at, &a.kid).cmp(&(b.activates_at, &b.kid)));
    out
}

/// The signing keys of the caller's mode, oldest first, with their phase.
#[utoipa::path(get, path = "/v1/signing-keys", tag = "signing-keys",
    security(("adminKey" = [])),
    responses((status = 200, body = Page<SigningKeyInfo>), (status = 401, body = Problem)))]
async fn list_signing_keys(
    State(state): State<AppState>,
    admin: Admin,
) -> Result<axum::Json<Page<SigningKeyInfo>>, ApiError> {
    state
        .keys
        .reload(&state.store, state.clock.now())
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not reload signing keys");
            ApiError::Unavailable
        })?;
    Ok(axum::Json(Page {
        data: info(&state, admin.mode()),
        next_cursor: None,
    }))
}

/// Adds a new signing key. It is published in the JWKS at once and signs
/// after the publish-ahead delay (longer than the JWKS `max-age`, so every
/// verifier has it first), or at once with `immediate`. The previous key
/// stays published until every token it signed has expired.
#[utoipa::path(post, path = "/v1/signing-keys/rotate", tag = "signing-keys",
    security(("adminKey" = [])), request_body = RotateSigningKey,
    responses((status = 201, body = SigningKeyInfo), (status = 400, body = Problem)))]
async fn rotate_signing_key(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(body): ApiJson<RotateSigningKey>,
) -> Result<impl IntoResponse, ApiError> {
    let mode = admin.mode();
    let now = state.clock.now();
    let alg = match body.alg.as_deref() {
        Some(a) => Algorithm::parse(a)
            .ok_or_else(|| ApiError::InvalidRequest("alg must be EdDSA, ES256 or RS256".into()))?,
        None => state
            .keys
            .signing(mode, now)
            .map(|k| k.key.alg())
            .unwrap_or_default(),
    };
    let immediate = body.immediate.unwrap_or(false);
    let kid = rotate(&state, mode, alg, immediate, None, |kid| {
        admin
            .event(&state, AuditAction::SigningKeyRotated, "signing_key", kid)
            .with_detail("alg", alg.as_str())
            .with_detail("immediate", immediate)
    })
    .await?
    .ok_or(ApiError::Internal)?;
    let created = info(&state, mode)
        .into_iter()
        .find(|k| k.kid == kid)
        .ok_or(ApiError::Internal)?;
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Creates, seals and stores a new key with the audit event `record` makes
/// from its kid, then reloads the ring. With `unless_newer_than`, does
/// nothing (and records nothing) when a newer key exists (scheduled
/// rotation on several nodes). Returns the new kid, if one was added.
pub async fn rotate(
    state: &AppState,
    mode: Mode,
    alg: Algorithm,
    immediate: bool,
    unless_newer_than: Option<OffsetDateTime>,
    record: impl FnOnce(&str) -> AuditEvent + Send,
) -> Result<Option<String>, ApiError> {
    let now = state.clock.now();
    let key = SigningKey::generate(alg).map_err(|e| {
        tracing::error!(error = %e, "cannot generate a signing key");
        ApiError::Internal
    })?;
    let sealed = state.keys.seal(&key).map_err(|e| {
        tracing::error!(error = %e, "cannot seal a signing key");
        ApiError::Internal
    })?;
    let wanted = if immediate {
        now
    } else {
        now + time::Duration::seconds(state.config.publish_ahead_seconds)
    };
    // A new key always comes after every key of its mode in the schedule,
    // even when two rotations fall in the same millisecond.
    let latest = state
        .keys
        .all()
        .into_iter()
        .filter(|(_, k)| k.mode == mode)
        .map(|(_, k)| k.not_before)
        .max();
    let not_before = match latest {
        Some(l) if l >= wanted => l + time::Duration::milliseconds(1),
        _ => wanted,
    };
    let key_record = SigningKeyRecord {
        kid: key.kid().to_owned(),
        mode,
        alg: alg.as_str().to_owned(),
        private_pkcs8: sealed,
        created_at: now,
        not_before,
    };
    let written = state
        .store
        .add_signing_key(&key_record, unless_newer_than, |_| record(&key_record.kid))
        .await?;
    let added = state.applied(written).await;
    state.keys.reload(&state.store, now).await.map_err(|e| {
        tracing::error!(error = %e, "cannot reload signing keys");
        ApiError::Internal
    })?;
    if added {
        tracing::info!(%mode, kid = %key_record.kid, alg = alg.as_str(), %not_before, "signing key rotated");
    }
    Ok(added.then_some(key_record.kid))
}

/// One maintenance pass, every half minute (startup's `AppState::every`):
/// reloads the keys (picking up rotations made by other nodes, which publish
/// ahead by more than this period) and, when automatic rotation is on,
/// rotates a mode whose newest key is older than the rotation period.
pub async fn maintain(state: &AppState) {
    let now = state.clock.now();
    if let Err(e) = state.keys.reload(&state.store, now).await {
        tracing::warn!(error = %e, "could not reload signing keys");
        return;
    }
    let Some(days) = state.config.rotation_days else {
        return;
    };
    let cutoff = now - time::Duration::days(days);
    for mode in Mode::ALL {
        let newest = state
            .keys
            .all()
            .into_iter()
            .filter(|(_, k)| k.mode == mode)
            .map(|(_, k)| k.created_at)
            .max();
        if newest.is_some_and(|created| created > cutoff) {
            continue;
        }
        let alg = state
            .keys
            .signing(mode, now)
            .map(|k| k.key.alg())
            .unwrap_or_default();
        let scheduled = rotate(state, mode, alg, false, Some(cutoff), |kid| {
            crate::admin::audit::event(
                state,
                Some(mode),
                AuditAction::SigningKeyRotated,
                AuditActor::system(),
                AuditTarget::new("signing_key", kid),
                None,
            )
            .with_detail("alg", alg.as_str())
            .with_detail("scheduled", true)
        })
        .await;
        if let Err(e) = scheduled {
            tracing::warn!(?e, %mode, "scheduled signing-key rotation failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use latchkey_core::clock::{Clock, ManualClock};
    use latchkey_store::Store;
    use time::OffsetDateTime;

    use super::*;
    use crate::config::{BootstrapKeys, Config, Settings};

    #[tokio::test]
    async fn scheduled_rotation_adds_one_key_per_mode_once_the_period_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let settings = Settings {
            data_dir: Some(dir.path().to_path_buf()),
            signing_key_rotation_days: Some(30),
            ..Default::default()
        };
        let config = Config::resolve(settings, BootstrapKeys::default()).unwrap();
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let state = AppState::load(store.clone(), config, clock.clone() as Arc<dyn Clock>)
            .await
            .unwrap();
        let count = |mode: Mode| {
            state
                .keys
                .all()
                .iter()
                .filter(|(_, k)| k.mode == mode)
                .count()
        };
        maintain(&state).await;
        assert_eq!((count(Mode::Test), count(Mode::Live)), (1, 1), "too early");
        clock.advance(31 * 86_400);
        maintain(&state).await;
        maintain(&state).await;
        assert_eq!(
            (count(Mode::Test), count(Mode::Live)),
            (2, 2),
            "one new key per mode"
        );
        // The new key is published but does not sign before the delay.
        let now = clock.now();
        let signer = state.keys.signing(Mode::Test, now).unwrap();
        assert!(signer.created_at < now);
        clock.advance(601);
        let after = state.keys.signing(Mode::Test, clock.now()).unwrap();
        assert_ne!(after.key.kid(), signer.key.kid());
        // A second node on the same store (same schedule) adds nothing more.
        let other = AppState::load(
            store,
            Config::resolve(
                Settings {
                    data_dir: Some(dir.path().to_path_buf()),
                    signing_key_rotation_days: Some(30),
                    ..Default::default()
                },
                BootstrapKeys::default(),
            )
            .unwrap(),
            clock.clone() as Arc<dyn Clock>,
        )
        .await
        .unwrap();
        maintain(&other).await;
        maintain(&state).await;
        assert_eq!(count(Mode::Test), 2);
    }
}
