//! SAML 2.0 as one more SSO provider kind: the `AuthnRequest` Latchkey
//! sends (HTTP-Redirect binding, with a `RelayState` that finds the flow
//! and the request id stored as the flow's `nonce`), and the response the
//! browser posts to the ACS, checked by `latchkey_core::federation::saml`
//! against the IdP's pinned certificates and this login's request, its
//! assertion id accepted once (in the store, so on every node). The flow,
//! linking and recording of the factor are `federation::sso`'s.

use latchkey_core::federation::oidc::{self as rules, External};
use latchkey_core::federation::saml::{self as saml_rules, Expected, Idp, Sp};
use latchkey_store::SsoFlow;
use latchkey_types::Mode;

use super::sso::{random_token, refused, store_flow, Provider, SsoError};
use crate::login::engine::Login;
use crate::state::AppState;

/// This SP's entity id (its metadata URL) and ACS for provider `id` of
/// `mode`, owned.
pub fn sp_urls(state: &AppState, mode: Mode, provider_id: &str) -> (String, String) {
    let issuer = state.config.issuer_of(mode);
    (
        Sp::metadata_url(issuer, provider_id),
        Sp::acs_url(issuer, provider_id),
    )
}

/// Stores the flow (found again by the `RelayState`, the request id kept
/// as its nonce) and answers the IdP's URL with the deflated request.
pub async fn start(
    state: &AppState,
    login: &Login,
    provider_id: &str,
    idp: &Idp,
    client_state: Option<String>,
) -> Result<String, SsoError> {
    let relay_state = random_token();
    let request_id = saml_rules::new_request_id();
    store_flow(
        state,
        login,
        provider_id,
        &relay_state,
        request_id.clone(),
        |_| Ok(String::new()),
        client_state,
    )
    .await?;
    let (entity_id, acs_url) = sp_urls(state, login.mode, provider_id);
    let sp = Sp {
        entity_id: &entity_id,
        acs_url: &acs_url,
    };
    let request = saml_rules::authn_request(sp, idp, &request_id, state.clock.now());
    Ok(saml_rules::redirect_url(idp, &request, &relay_state))
}

/// Checks the posted response against this login's request and reads who
/// signed in; the assertion's id is then spent.
pub async fn identify(
    state: &AppState,
    login: &Login,
    provider: &Provider,
    idp: &Idp,
    flow: &SsoFlow,
    response: &str,
) -> Result<External, SsoError> {
    let config = &provider.record.config;
    let xml = saml_rules::decode_response(response).map_err(refused)?;
    let (entity_id, acs_url) = sp_urls(state, login.mode, &flow.provider_id);
    let now = state.clock.now();
    let skew = i64::from(
        config
            .clock_skew_seconds
            .unwrap_or(saml_rules::DEFAULT_SKEW_SECONDS),
    );
    let allow_sha1 = config.allow_sha1.unwrap_or(false);
    let (idp, request_id) = (idp.clone(), flow.nonce.clone());
    // Parsing, canonicalization and the RSA check are CPU work: off the
    // async workers.
    let checked = tokio::task::spawn_blocking(move || {
        let expected = Expected {
            idp: &idp,
            sp: Sp {
                entity_id: &entity_id,
                acs_url: &acs_url,
            },
            request_id: &request_id,
            now: now.unix_timestamp(),
            skew,
            allow_sha1,
        };
        saml_rules::check_response(&xml, &expected)
    })
    .await
    .map_err(|_| SsoError::Provider("the SAML check did not finish".into()))?;
    let assertion = checked.map_err(refused)?;
    let first_use = state
        .store
        .accept_saml_assertion(
            login.mode,
            &flow.provider_id,
            &assertion.id,
            assertion.remember_until,
            now,
        )
        .await?;
    if !first_use {
        return Err(refused("the assertion was used before"));
    }
    let claims = saml_rules::claims(&assertion);
    rules::external(&claims, &rules::claim_mapping(config)).map_err(refused)
}
