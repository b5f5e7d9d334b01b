//! Admin authentication. Every `/v1` handler takes an [`Admin`], which can
//! only be obtained by presenting a valid admin key: the type is the proof
//! that the one authorization check ran, and it carries the partition
//! (mode) the handler may touch.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_types::Mode;

use crate::http::error::ApiError;
use crate::http::transport::credentials_of;
use crate::state::AppState;

/// A request authenticated with an admin key of `mode`.
#[derive(Debug, Clone)]
pub struct Admin {
    mode: Mode,
    /// The admin key's `adm_…` id.
    id: Arc<str>,
    /// Where the request came from.
    source: Option<IpAddr>,
}

impl Admin {
    /// The partition this admin key administers.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The admin key's `adm_…` id (never its value).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The client's address, when known.
    pub fn source(&self) -> Option<IpAddr> {
        self.source
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credentials = credentials_of(parts);
        let Some(key) = credentials.authorization.bearer() else {
            return Err(ApiError::Unauthenticated(
                "send an admin key as Authorization: Bearer lk_<mode>_admin_…",
            ));
        };
        // The checksum rejects typos and random strings without a lookup.
        let info = credential::parse(key)
            .map_err(|_| ApiError::Unauthenticated("the admin key is not valid"))?;
        if info.kind != CredentialKind::Admin {
            return Err(ApiError::Unauthenticated(
                "this credential is not an admin key; /v1 needs an admin key",
            ));
        }
        match state.admin_keys.get(&CredentialDigest::of(key)) {
            Some(admin) if admin.mode == info.mode => Ok(Admin {
                mode: admin.mode,
                id: Arc::clone(&admin.id),
                source: credentials.source,
            }),
            _ => Err(ApiError::Unauthenticated("the admin key is not valid")),
        }
    }
}

/// The caller of the verify endpoint: an admin key, a valid API key or a
/// valid access token, of one mode.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    mode: Mode,
}

impl Caller {
    /// The caller's mode; it only ever learns about credentials of this mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(credential) = credentials_of(parts)
            .authorization
            .bearer()
            .map(str::to_owned)
        else {
            return Err(ApiError::Unauthenticated(
                "send your own credential as Authorization: Bearer <admin key, API key or access token>",
            ));
        };
        match credential::parse(&credential) {
            Ok(info) if info.kind == CredentialKind::Admin => {
                let admin = Admin::from_request_parts(parts, state).await?;
                Ok(Caller { mode: admin.mode() })
            }
            Ok(info) if info.kind == CredentialKind::ApiKey => match crate::authn::keycheck::check(
                state,
                &credential,
                None,
                crate::authn::keycheck::Check::Use,
            )
            .await?
            {
                Ok(verified) => Ok(Caller {
                    mode: verified.key.mode,
                }),
                Err(_) => Err(ApiError::Unauthenticated(
                    "the caller's API key is not valid",
                )),
            },
            Ok(_) => Err(ApiError::Unauthenticated(
                "the caller's credential must be an admin key, an API key or an access token",
            )),
            Err(_) => Mode::ALL
                .into_iter()
                .find(|mode| state.verify_access_token(&credential, *mode).is_some())
                .map(|mode| Caller { mode })
                .ok_or(ApiError::Unauthenticated(
                    "the caller's access token is not valid",
                )),
        }
    }
}
