//! Signed assertions (RFC 7523): `private_key_jwt` client authentication and
//! the JWT-bearer grant. The machine signs a short JWT with a private key
//! that never leaves it; Latchkey checks it against the public keys
//! registered on the user. The algorithm comes from the registered key,
//! never from the assertion; each `jti` is accepted once within its
//! lifetime, exactly, across nodes (the store decides).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_store::StoreError;
use latchkey_types::ids::{Identifier as _, UserId};
use latchkey_types::Mode;
use latchkey_verify::jwt::verify_jws;
use serde_json::Value;
use time::OffsetDateTime;

use crate::authn::cache::Principal;
use crate::state::AppState;

use latchkey_core::assertion::{self as rules, LEEWAY_SECONDS, MAX_BYTES as MAX_ASSERTION_BYTES};

/// Why an assertion was refused (for the log; clients get one answer).
#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    /// Not a JWT, or no usable `sub`.
    #[error("malformed assertion: {0}")]
    Malformed(&'static str),
    /// No such client, or a disabled one.
    #[error("unknown or disabled client")]
    UnknownClient,
    /// The signature does not verify with any registered key.
    #[error("signature: {0}")]
    Signature(String),
    /// A claim is missing or wrong.
    #[error("claims: {0}")]
    Claims(&'static str),
    /// The `jti` was used before.
    #[error("replayed assertion")]
    Replay,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A verified assertion's client.
#[derive(Debug)]
pub struct AssertedClient {
    /// The client's mode.
    pub mode: Mode,
    /// The client.
    pub principal: Arc<Principal>,
}

/// Checks an assertion. `expected_client` is the `client_id` sent beside a
/// client assertion, when there is one.
pub async fn check(
    state: &AppState,
    assertion: &str,
    expected_client: Option<&str>,
) -> Result<AssertedClient, AssertionError> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(AssertionError::Malformed("too large"));
    }
    // Only to find whose keys to check with: nothing from this unverified
    // payload is trusted until the signature is.
    let client_id = unverified_subject(assertion)?;
    if expected_client.is_some_and(|c| c != client_id) {
        return Err(AssertionError::Claims("sub differs from client_id"));
    }
    let mut found = None;
    for mode in Mode::ALL {
        if let Some(p) = state
            .caches
            .principal(&state.store, mode, &client_id)
            .await?
        {
            found = Some((mode, p));
            break;
        }
    }
    let Some((mode, principal)) = found else {
        return Err(AssertionError::UnknownClient);
    };
    if principal.user.disabled {
        return Err(AssertionError::UnknownClient);
    }
    let (_, claims) = verify_jws(assertion, &principal.keys)
        .map_err(|e| AssertionError::Signature(e.to_string()))?;
    let now = state.clock.now();
    let exp = check_claims(state, mode, &claims, &client_id, now.unix_timestamp())?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(AssertionError::Claims("jti is required"))?;
    let expires_at = OffsetDateTime::from_unix_timestamp(exp.saturating_add(LEEWAY_SECONDS))
        .map_err(|_| AssertionError::Claims("exp out of range"))?;
    let first_use = state
        .replay
        .first_use(
            &state.store,
            mode,
            &format!("{client_id}:{jti}"),
            expires_at,
            now,
        )
        .await?;
    if !first_use {
        return Err(AssertionError::Replay);
    }
    Ok(AssertedClient { mode, principal })
}

fn unverified_subject(assertion: &str) -> Result<String, AssertionError> {
    let payload = assertion
        .split('.')
        .nth(1)
        .ok_or(AssertionError::Malformed("not a JWS"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| AssertionError::Malformed("payload is not base64url"))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| AssertionError::Malformed("payload is not JSON"))?;
    let sub = value
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(AssertionError::Malformed("no sub"))?;
    if !UserId::is_valid(sub) {
        return Err(AssertionError::Malformed("sub is not a user id"));
    }
    Ok(sub.to_owned())
}

/// The claims rules (`latchkey_core::assertion`), with the audiences this
/// server answers to: the token endpoint, the client's mode's issuer, or the
/// configured issuer URL (which test clients named before each mode had its
/// own issuer; the assertion is signed by a key of one mode's client, so
/// naming the shared URL cannot carry it into the other mode).
fn check_claims(
    state: &AppState,
    mode: Mode,
    claims: &Value,
    client_id: &str,
    now: i64,
) -> Result<i64, AssertionError> {
    let issuer = state.config.issuer.as_str();
    let token_endpoint = format!("{issuer}/oauth/token");
    let audiences = [
        issuer,
        state.config.issuer_of(mode),
        token_endpoint.as_str(),
    ];
    rules::check_claims(claims, client_id, &audiences, now)
        .map_err(|rules::ClaimsError(why)| AssertionError::Claims(why))
}
