//! Access-token minting: building the claims of RFC 9068 plus Latchkey's
//! own, and encoding them as a compact JWS.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_types::admin::Authorization;
use latchkey_types::oauth::{AccessTokenClaims, Actor, Audience, RESERVED_CLAIMS};
use latchkey_types::JsonObject;
use rand::RngCore;
use time::OffsetDateTime;

use crate::signing::{SigningError, SigningKey};
use crate::{Mode, UserKind};

/// Everything a token says, before it is signed.
#[derive(Debug, Clone)]
pub struct TokenGrant<'a> {
    /// The issuer URL.
    pub issuer: &'a str,
    /// The user (client) id.
    pub user_id: &'a str,
    /// Machine or human.
    pub kind: UserKind,
    /// The user's mode.
    pub mode: Mode,
    /// The tenant the token is scoped to.
    pub tenant_id: &'a str,
    /// The audience(s).
    pub audience: Audience,
    /// The granted scope, space-separated.
    pub scope: Option<String>,
    /// The `authorization` claim.
    pub authorization: Authorization,
    /// Whether entries were left out of it for its byte budget
    /// ([`crate::authorization::bounded`]).
    pub authorization_truncated: bool,
    /// The user's custom claims.
    pub custom_claims: &'a JsonObject,
    /// Lifetime in seconds.
    pub ttl_seconds: i64,
    /// Issue time.
    pub now: OffsetDateTime,
    /// The login session the token belongs to, if any.
    pub session: Option<SessionClaims>,
    /// The external identity the token was exchanged for, if any.
    pub actor: Option<Actor>,
}

/// What a session's tokens say about the login behind them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionClaims {
    /// The session id (`sid`).
    pub id: String,
    /// RFC 8176 values (`amr`).
    pub amr: Vec<String>,
    /// When the login completed (`auth_time`), seconds since the epoch.
    pub auth_time: i64,
}

/// Builds the claims. Custom claims never replace a reserved claim: such
/// entries are dropped (the admin API refuses them in the first place).
pub fn build_claims(grant: TokenGrant<'_>) -> AccessTokenClaims {
    let iat = grant.now.unix_timestamp();
    let custom = grant
        .custom_claims
        .iter()
        .filter(|(k, _)| !RESERVED_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    AccessTokenClaims {
        iss: grant.issuer.to_owned(),
        sub: grant.user_id.to_owned(),
        aud: grant.audience,
        exp: iat + grant.ttl_seconds,
        iat,
        nbf: iat,
        jti: new_jti(),
        client_id: grant.user_id.to_owned(),
        scope: grant.scope,
        mode: grant.mode,
        tenant_id: grant.tenant_id.to_owned(),
        user_id: grant.user_id.to_owned(),
        kind: grant.kind,
        authorization: grant.authorization,
        authorization_truncated: grant.authorization_truncated,
        sid: grant.session.as_ref().map(|s| s.id.clone()),
        amr: grant.session.as_ref().map(|s| s.amr.clone()),
        auth_time: grant.session.as_ref().map(|s| s.auth_time),
        act: grant.actor,
        custom,
    }
}

/// A new token id: 128 random bits, base64url.
pub fn new_jti() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The protected header of an access token signed by `key`, base64url.
pub fn encoded_header(key: &SigningKey) -> String {
    let header = serde_json::json!({
        "alg": key.alg().as_str(),
        "kid": key.kid(),
        "typ": "at+jwt",
    });
    URL_SAFE_NO_PAD.encode(header.to_string())
}

/// Signs `claims` as a compact JWS with `key`; `header` is
/// [`encoded_header`] of the same key (computed once per key).
pub fn sign(
    key: &SigningKey,
    header: &str,
    claims: &AccessTokenClaims,
) -> Result<String, SigningError> {
    let payload = serde_json::to_vec(claims).map_err(|_| SigningError::Crypto)?;
    let mut token = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
    token.push_str(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::Algorithm;
    use latchkey_types::admin::TenantRoles;

    fn grant<'a>(custom: &'a JsonObject) -> TokenGrant<'a> {
        let mut authorization = Authorization::new();
        authorization.insert(
            "acme".into(),
            TenantRoles {
                roles: vec!["operator".into()],
            },
        );
        TokenGrant {
            issuer: "https://auth.example",
            user_id: "usr_abc",
            kind: UserKind::Machine,
            mode: Mode::Test,
            tenant_id: "acme",
            audience: Audience::One("https://api.example".into()),
            scope: Some("telemetry:write".into()),
            authorization,
            authorization_truncated: false,
            custom_claims: custom,
            ttl_seconds: 600,
            now: OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            session: None,
            actor: None,
        }
    }

    #[test]
    fn claims_carry_the_contract_fields_and_custom_claims_cannot_override_them() {
        let custom: JsonObject = serde_json::from_str(
            r#"{"region":"eu","sub":"usr_evil","authorization":{},"mode":"live"}"#,
        )
        .unwrap();
        let claims = build_claims(grant(&custom));
        let json = serde_json::to_value(&claims).unwrap();
        assert_eq!(json["sub"], "usr_abc");
        assert_eq!(json["userId"], "usr_abc");
        assert_eq!(json["client_id"], "usr_abc");
        assert_eq!(json["mode"], "test");
        assert_eq!(json["tenantId"], "acme");
        assert_eq!(json["kind"], "machine");
        assert_eq!(json["exp"], 1_800_000_600);
        assert_eq!(json["nbf"], json["iat"]);
        assert_eq!(json["region"], "eu");
        assert_eq!(json["authorization"]["acme"]["roles"][0], "operator");
        assert_eq!(json["aud"], "https://api.example");
        assert_eq!(json["scope"], "telemetry:write");
        assert_ne!(build_claims(grant(&custom)).jti, claims.jti);
    }

    #[test]
    fn signed_tokens_have_an_at_jwt_header_and_verify() {
        use aws_lc_rs::signature::{UnparsedPublicKey, ED25519};
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let header = encoded_header(&key);
        let custom = JsonObject::new();
        let token = sign(&key, &header, &build_claims(grant(&custom))).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let h: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(h["typ"], "at+jwt");
        assert_eq!(h["alg"], "EdDSA");
        assert_eq!(h["kid"], key.kid());
        let x = URL_SAFE_NO_PAD
            .decode(key.public_jwk().x.as_ref().unwrap())
            .unwrap();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&ED25519, x)
            .verify(input.as_bytes(), &sig)
            .unwrap();
    }
}
