//! The verified claims of a Latchkey access token, with the questions a
//! receiving service asks of them: which tenant, which user, which roles
//! where, which scopes.

use latchkey_types::oauth::{AccessTokenClaims, Audience};
use latchkey_types::{Mode, UserKind};

/// The claims of an access token that passed every check of
/// [`crate::jwt::verify_jwt`].
///
/// Only this crate constructs it, so holding a `Claims` means the token was
/// verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    raw: AccessTokenClaims,
}

impl Claims {
    pub(crate) fn new(raw: AccessTokenClaims) -> Self {
        Claims { raw }
    }

    /// Whether the token's user holds `role` in `tenant`, as the token's
    /// `authorization` claim says. Roles are effective roles: those held in
    /// the tenant itself and those cascaded from its ancestors. The claim
    /// covers the token's tenant and its descendants only, so a role in any
    /// other tenant is reported as not held.
    pub fn has_role(&self, tenant: &str, role: &str) -> bool {
        self.roles(tenant).iter().any(|r| r == role)
    }

    /// Whether the `authorization` claim lists every descendant where the
    /// user holds roles. When it is not (`authorizationTruncated`: the
    /// server's byte budget left the farthest entries out), a tenant below
    /// the token's that has no entry may still hold roles: ask for a token
    /// scoped to that tenant. The token's own tenant is always listed.
    pub fn authorization_is_complete(&self) -> bool {
        !self.raw.authorization_truncated
    }

    /// The roles effective in `tenant` (empty when the claim has no entry
    /// for it).
    pub fn roles(&self, tenant: &str) -> &[String] {
        self.raw
            .authorization
            .get(tenant)
            .map_or(&[], |t| t.roles.as_slice())
    }

    /// Whether `scope` is one of the granted scope tokens.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    /// The granted scope tokens (none when no scope was asked for).
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.raw
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// The tenant the token is scoped to (`tenantId`).
    pub fn tenant_id(&self) -> &str {
        &self.raw.tenant_id
    }

    /// The user the token was issued to (`userId`, equal to `sub`).
    pub fn user_id(&self) -> &str {
        &self.raw.user_id
    }

    /// The token's mode.
    pub fn mode(&self) -> Mode {
        self.raw.mode
    }

    /// Whether the user is a machine or a person.
    pub fn kind(&self) -> UserKind {
        self.raw.kind
    }

    /// The issuer URL (`iss`).
    pub fn issuer(&self) -> &str {
        &self.raw.iss
    }

    /// The audience(s) (`aud`).
    pub fn audience(&self) -> &Audience {
        &self.raw.aud
    }

    /// The token id (`jti`), for deny-lists and logs.
    pub fn jti(&self) -> &str {
        &self.raw.jti
    }

    /// Expiry, seconds since the Unix epoch (`exp`).
    pub fn expires_at(&self) -> i64 {
        self.raw.exp
    }

    /// Issue time, seconds since the Unix epoch (`iat`).
    pub fn issued_at(&self) -> i64 {
        self.raw.iat
    }

    /// The login session the token belongs to (`sid`); `None` for tokens
    /// of client credentials, API keys and custom authentication.
    pub fn session_id(&self) -> Option<&str> {
        self.raw.sid.as_deref()
    }

    /// The external identity this token was exchanged for (`act`, RFC 8693):
    /// the trusted issuer and the subject its token named; `None` for
    /// every other kind of token.
    pub fn actor(&self) -> Option<&latchkey_types::oauth::Actor> {
        self.raw.act.as_ref()
    }

    /// How the session's user authenticated (`amr`, RFC 8176: `pwd`,
    /// `otp`, `sms`, `mfa`, …); empty outside sessions.
    pub fn amr(&self) -> &[String] {
        self.raw.amr.as_deref().unwrap_or_default()
    }

    /// Whether the session's login passed two kinds of proof (`amr`
    /// holds `mfa`).
    pub fn is_mfa(&self) -> bool {
        self.amr().iter().any(|v| v == "mfa")
    }

    /// When the session's user authenticated (`auth_time`), seconds since
    /// the Unix epoch.
    pub fn auth_time(&self) -> Option<i64> {
        self.raw.auth_time
    }

    /// A custom claim (one of the user's `customClaims`), by name. Reserved
    /// claims are not found here; use the typed accessors for them.
    pub fn custom(&self, name: &str) -> Option<&serde_json::Value> {
        self.raw.custom.get(name)
    }

    /// All the claims, as the token carries them.
    pub fn raw(&self) -> &AccessTokenClaims {
        &self.raw
    }

    /// All the claims, by value.
    pub fn into_raw(self) -> AccessTokenClaims {
        self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_claims;

    #[test]
    fn roles_scopes_and_custom_claims_are_answered_from_the_claims() {
        let raw: AccessTokenClaims = serde_json::from_value(sample_claims(1_800_000_000)).unwrap();
        let c = Claims::new(raw);
        assert!(c.has_role("acme", "operator"));
        assert!(c.has_role("acme-eu", "viewer"));
        assert!(!c.has_role("acme", "viewer"));
        assert!(!c.has_role("other", "operator"));
        assert!(c.has_scope("telemetry:write"));
        assert!(c.has_scope("telemetry:read"));
        assert!(!c.has_scope("telemetry"));
        assert!(!c.has_scope(""));
        assert_eq!(c.tenant_id(), "acme");
        assert_eq!(c.user_id(), "usr_abc");
        assert_eq!(c.mode(), Mode::Live);
        assert_eq!(c.kind(), UserKind::Machine);
        assert_eq!(c.custom("region"), Some(&serde_json::json!("eu")));
        assert_eq!(c.custom("sub"), None);
        assert_eq!(c.raw().sub, "usr_abc");
        assert_eq!(
            (c.session_id(), c.amr(), c.is_mfa(), c.auth_time()),
            (None, &[][..], false, None)
        );
    }

    #[test]
    fn a_session_token_says_its_session_and_how_its_user_logged_in() {
        let mut json = sample_claims(1_800_000_000);
        json["sid"] = "ses_abc".into();
        json["amr"] = serde_json::json!(["mfa", "otp", "pwd"]);
        json["auth_time"] = 1_799_999_990.into();
        let c = Claims::new(serde_json::from_value(json).unwrap());
        assert_eq!(c.session_id(), Some("ses_abc"));
        assert!(c.is_mfa());
        assert_eq!(c.amr().len(), 3);
        assert_eq!(c.auth_time(), Some(1_799_999_990));
        assert_eq!(c.custom("sid"), None);
    }
}
