//! The benchmark fixture shared by latchkey-core's issuance bench and
//! latchkey-verify's verification bench (included there by path), so both
//! measure the same token.

use latchkey_core::token::TokenGrant;
use latchkey_types::admin::{Authorization, TenantRoles};
use latchkey_types::oauth::Audience;
use latchkey_types::{JsonObject, Mode, UserKind};
use time::OffsetDateTime;

pub const ISSUER: &str = "https://auth.example.com";
pub const AUD: &str = "https://telemetry.example.com";

/// What the token endpoint knows once the client is authenticated: roles
/// in three tenants, a scope and two custom claims (the token is about 900
/// bytes, as in latchkey-verify's bench).
pub fn realistic_grant(custom: &JsonObject, now: OffsetDateTime) -> TokenGrant<'_> {
    let mut authorization = Authorization::new();
    for (tenant, roles) in [
        ("acme", vec!["operator", "viewer"]),
        ("acme-eu", vec!["operator", "viewer"]),
        (
            "acme-eu-factory-7",
            vec!["iot-remote", "operator", "viewer"],
        ),
    ] {
        authorization.insert(
            tenant.into(),
            TenantRoles {
                roles: roles.into_iter().map(Into::into).collect(),
            },
        );
    }
    TokenGrant {
        issuer: ISSUER,
        user_id: "usr_7f3k2m9q",
        kind: UserKind::Machine,
        mode: Mode::Live,
        tenant_id: "acme",
        audience: Audience::One(AUD.into()),
        scope: Some("telemetry:write device:command".into()),
        authorization,
        authorization_truncated: false,
        custom_claims: custom,
        ttl_seconds: 3600,
        now,
        session: None,
        actor: None,
    }
}

pub fn custom_claims() -> JsonObject {
    serde_json::from_str(r#"{"region":"eu-west","hardware":"gw-3000"}"#).unwrap()
}
