//! `/v1/identity-providers`: OpenID Connect, OAuth 2.0 and SAML 2.0
//! providers whose logins are the `sso:<id>` factor. The rules are
//! `latchkey_core::federation::{oidc, saml}`; the browser flows are
//! `federation::sso` and `federation::saml`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::federation::oidc as rules;
use latchkey_core::federation::saml;
use latchkey_store::{IdentityProviderRecord, PageResult, ProviderSecret};
use latchkey_types::audit::AuditAction;
use latchkey_types::error::Problem;
use latchkey_types::federation::{IdentityProvider, ProviderType, PutIdentityProvider};
use latchkey_types::ids::{Identifier as _, ProviderId};
use latchkey_types::schema::Cursor;
use latchkey_types::Page;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_request, to_page};
use crate::authn::auth::Admin;
use crate::federation::sso::secret_context;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, ApiPath, ApiQuery, RecordPath};
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_identity_providers))
        .routes(routes!(
            put_identity_provider,
            get_identity_provider,
            delete_identity_provider
        ))
}

/// A stored provider as the API answers it, with what to register at the
/// provider.
pub fn to_wire(state: &AppState, r: IdentityProviderRecord) -> Result<IdentityProvider, ApiError> {
    let c = &r.config;
    let kind = c.kind.ok_or(ApiError::Internal)?;
    let id = ProviderId::parse(&r.id).map_err(|_| ApiError::Internal)?;
    let issuer = state.config.issuer_of(r.mode);
    let callback_url = matches!(kind, ProviderType::Oidc | ProviderType::Oauth2)
        .then(|| rules::callback_url(issuer, &r.id));
    let saml = (kind == ProviderType::Saml)
        .then(|| saml::idp(c).ok())
        .flatten();
    let is_saml = kind == ProviderType::Saml;
    Ok(IdentityProvider {
        id,
        mode: r.mode,
        kind,
        issuer: c.issuer.clone(),
        authorization_url: c.authorization_url.clone(),
        token_url: c.token_url.clone(),
        userinfo_url: c.userinfo_url.clone(),
        client_id: c.client_id.clone(),
        client_secret_set: r.secret_sealed.is_some(),
        scopes: rules::scopes(c),
        claim_mapping: rules::claim_mapping(c),
        link_by: c.link_by.unwrap_or_default(),
        provisioning: c.provisioning.clone().unwrap_or_default(),
        trust_upstream_mfa: c.trust_upstream_mfa.unwrap_or(false),
        callback_url,
        entity_id: saml.as_ref().map(|i| i.entity_id.clone()),
        sso_url: saml.map(|i| i.sso_url),
        allow_sha1: c.allow_sha1.unwrap_or(false),
        clock_skew_seconds: is_saml
            .then(|| c.clock_skew_seconds.unwrap_or(saml::DEFAULT_SKEW_SECONDS)),
        metadata_url: is_saml.then(|| saml::Sp::metadata_url(issuer, &r.id)),
        acs_url: is_saml.then(|| saml::Sp::acs_url(issuer, &r.id)),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// Creates or replaces an identity provider (201 when new, 200 when
/// replaced). The client secret is sealed and never shown again; a
/// replacement without one keeps it.
#[utoipa::path(put, path = "/v1/identity-providers/{id}", tag = "federation",
    security(("adminKey" = [])), params(("id" = inline(ProviderId), Path)),
    request_body = PutIdentityProvider,
    responses((status = 200, body = IdentityProvider), (status = 201, body = IdentityProvider),
        (status = 400, body = Problem)))]
async fn put_identity_provider(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<ProviderId>,
    ApiJson(body): ApiJson<PutIdentityProvider>,
) -> Result<impl IntoResponse, ApiError> {
    let mode = admin.mode();
    let existing = state.store.identity_provider(mode, id.as_str()).await?;
    // Pointed at another provider, the old one's links and secret go.
    let new_source = existing
        .as_ref()
        .is_some_and(|e| !rules::same_source(&e.config, &body));
    let has_secret = !new_source && existing.as_ref().is_some_and(|e| e.secret_sealed.is_some());
    rules::validate(&body, has_secret).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    if let Some(p) = body.provisioning.as_ref().filter(|p| p.enabled) {
        if let Some(tenant) = &p.tenant_id {
            let tree = state.caches.tree(&state.store, mode).await?;
            if !tree.contains(tenant.as_str()) {
                return Err(ApiError::InvalidRequest(
                    "provisioning.tenantId: no such tenant".into(),
                ));
            }
        }
    }
    let sealed = match body.client_secret.as_deref() {
        Some(secret) => Some(
            state
                .keys
                .master()
                .seal(&secret_context(mode, id.as_str()), secret.as_bytes())
                .map_err(|_| ApiError::Internal)?,
        ),
        None => None,
    };
    let written = state
        .store
        .put_identity_provider(
            mode,
            id.as_str(),
            &body,
            ProviderSecret {
                sealed: sealed.as_deref(),
                new_source,
            },
            state.clock.now(),
            |(p, created)| {
                admin
                    .event(
                        &state,
                        AuditAction::IdentityProviderPut,
                        "identity_provider",
                        id.as_str(),
                    )
                    .with_detail(
                        "type",
                        serde_json::to_value(p.config.kind).unwrap_or_default(),
                    )
                    .with_detail("created", *created)
                    .with_detail("newSource", new_source)
            },
        )
        .await?;
    let (record, created) = state.applied(written).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(to_wire(&state, record)?)))
}

/// Paging of `GET /v1/identity-providers`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ProviderListQuery {
    /// Page size, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    #[param(value_type = Option<Cursor>, inline)]
    cursor: Option<String>,
}

/// The mode's identity providers, by id.
#[utoipa::path(get, path = "/v1/identity-providers", tag = "federation",
    security(("adminKey" = [])), params(ProviderListQuery),
    responses((status = 200, body = Page<IdentityProvider>)))]
async fn list_identity_providers(
    State(state): State<AppState>,
    admin: Admin,
    ApiQuery(q): ApiQuery<ProviderListQuery>,
) -> Result<axum::Json<Page<IdentityProvider>>, ApiError> {
    let page = page_request(q.limit, q.cursor.as_deref())?;
    let records = state
        .store
        .list_identity_providers(admin.mode(), &page)
        .await?;
    let items = records
        .items
        .into_iter()
        .map(|r| to_wire(&state, r))
        .collect::<Result<_, _>>()?;
    Ok(axum::Json(to_page(PageResult {
        items,
        next_after: records.next_after,
    })))
}

/// One identity provider (never its client secret).
#[utoipa::path(get, path = "/v1/identity-providers/{id}", tag = "federation",
    security(("adminKey" = [])), params(("id" = inline(ProviderId), Path)),
    responses((status = 200, body = IdentityProvider), (status = 404, body = Problem)))]
async fn get_identity_provider(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<ProviderId>,
) -> Result<axum::Json<IdentityProvider>, ApiError> {
    let record = state
        .store
        .identity_provider(admin.mode(), id.as_str())
        .await?
        .ok_or_else(|| ApiError::not_found("identity provider"))?;
    Ok(axum::Json(to_wire(&state, record)?))
}

/// Removes an identity provider and its links to users: its logins stop
/// at once; the users stay.
#[utoipa::path(delete, path = "/v1/identity-providers/{id}", tag = "federation",
    security(("adminKey" = [])), params(("id" = inline(ProviderId), Path)),
    responses((status = 204), (status = 404, body = Problem)))]
async fn delete_identity_provider(
    State(state): State<AppState>,
    admin: Admin,
    RecordPath(id): RecordPath<ProviderId>,
) -> Result<StatusCode, ApiError> {
    let event = admin.event(
        &state,
        AuditAction::IdentityProviderDeleted,
        "identity_provider",
        id.as_str(),
    );
    let written = state
        .store
        .delete_identity_provider(admin.mode(), id.as_str(), |_| event)
        .await?;
    state.applied(written).await;
    Ok(StatusCode::NO_CONTENT)
}
