//! SSO with OpenID Connect and OAuth 2.0 providers, Latchkey as relying
//! party: what a provider's configuration must say, which ID tokens are
//! accepted (OpenID Connect Core §3.1.3.7), what the provider's claims say
//! about the person, whom they are linked to, and what the provider's own
//! multi-factor login counts for. The server fetches, exchanges and stores.

use std::collections::{BTreeMap, BTreeSet};

use latchkey_types::federation::{LinkBy, ProviderType, PutIdentityProvider};
use latchkey_types::login::Factor;
use serde_json::Value;

use super::workload::{is_http_url, ConfigError, TokenRefused, LEEWAY_SECONDS};

/// The fields a claim mapping may name, and the claims they default to.
pub const MAPPED_FIELDS: [(&str, &str); 4] = [
    ("subject", "sub"),
    ("email", "email"),
    ("emailVerified", "email_verified"),
    ("name", "name"),
];

/// The scopes asked of an OpenID Connect provider when none are configured.
pub const DEFAULT_OIDC_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// How long a browser has to come back from the provider, in seconds.
pub const FLOW_TTL_SECONDS: i64 = 600;

fn refuse(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

fn url(field: &str, value: Option<&String>) -> Result<(), ConfigError> {
    match value {
        Some(v) if v.len() <= 512 && is_http_url(v) && !v.chars().any(char::is_whitespace) => {
            Ok(())
        }
        Some(_) => Err(refuse(
            field,
            "must be an absolute http(s) URL of at most 512 bytes",
        )),
        None => Err(refuse(field, "is required for this type")),
    }
}

/// Checks a provider's configuration. `has_secret` says whether a client
/// secret is stored already (a replacement may leave it out).
pub fn validate(config: &PutIdentityProvider, has_secret: bool) -> Result<(), ConfigError> {
    let kind = config
        .kind
        .ok_or_else(|| refuse("type", "oidc, oauth2 or saml"))?;
    match kind {
        ProviderType::Oidc => url("issuer", config.issuer.as_ref())?,
        ProviderType::Oauth2 => {
            url("authorizationUrl", config.authorization_url.as_ref())?;
            url("tokenUrl", config.token_url.as_ref())?;
            url("userinfoUrl", config.userinfo_url.as_ref())?;
        }
        ProviderType::Saml => return super::saml::validate(config),
    }
    match config.client_id.as_deref() {
        Some(id) if !id.is_empty() && id.len() <= 512 && !id.chars().any(char::is_control) => {}
        _ => return Err(refuse("clientId", "1 to 512 characters, required")),
    }
    match config.client_secret.as_deref() {
        Some(secret) if secret.is_empty() || secret.len() > 1024 => {
            return Err(refuse("clientSecret", "1 to 1024 characters"))
        }
        None if !has_secret => return Err(refuse("clientSecret", "required")),
        _ => {}
    }
    if let Some(scopes) = &config.scopes {
        if scopes.len() > 32 {
            return Err(refuse("scopes", "at most 32"));
        }
        for scope in scopes {
            let nqchar = |c: char| c == '!' || ('#'..='[').contains(&c) || (']'..='~').contains(&c);
            if scope.is_empty() || scope.len() > 128 || !scope.chars().all(nqchar) {
                return Err(refuse("scopes", format!("{scope:?} is not a scope token")));
            }
        }
    }
    if let Some(mapping) = &config.claim_mapping {
        for (field, claim) in mapping {
            if !MAPPED_FIELDS.iter().any(|(f, _)| f == field) {
                return Err(refuse(
                    "claimMapping",
                    format!("{field:?} is not one of subject, email, emailVerified, name"),
                ));
            }
            if claim.is_empty() || claim.len() > 128 {
                return Err(refuse("claimMapping", "a claim name has 1 to 128 bytes"));
            }
        }
    }
    for (field, set) in [
        ("metadataXml", config.metadata_xml.is_some()),
        ("entityId", config.entity_id.is_some()),
        ("ssoUrl", config.sso_url.is_some()),
        ("certificatePem", config.certificate_pem.is_some()),
        ("allowSha1", config.allow_sha1.is_some()),
        ("clockSkewSeconds", config.clock_skew_seconds.is_some()),
    ] {
        if set {
            return Err(refuse(field, "is for SAML providers only"));
        }
    }
    if kind == ProviderType::Oidc
        && (config.authorization_url.is_some()
            || config.token_url.is_some()
            || config.userinfo_url.is_some())
    {
        return Err(refuse(
            "authorizationUrl",
            "an OpenID Connect provider's endpoints come from its discovery document",
        ));
    }
    Ok(())
}

/// Whether a replacement configuration still names the same provider
/// (same type and issuer, OAuth 2.0 endpoints, or SAML entity id). When it
/// does not, the old provider's links to users and its client secret must
/// not carry over: another provider's subject `jsmith` is not this one's.
pub fn same_source(old: &PutIdentityProvider, new: &PutIdentityProvider) -> bool {
    if old.kind != new.kind {
        return false;
    }
    match new.kind {
        Some(ProviderType::Oidc) => old.issuer == new.issuer,
        Some(ProviderType::Oauth2) => {
            old.token_url == new.token_url && old.userinfo_url == new.userinfo_url
        }
        Some(ProviderType::Saml) => {
            let entity = |c| super::saml::idp(c).ok().map(|i| i.entity_id);
            entity(old).is_some() && entity(old) == entity(new)
        }
        None => false,
    }
}

/// The scopes to ask for.
pub fn scopes(config: &PutIdentityProvider) -> Vec<String> {
    match (&config.scopes, config.kind) {
        (Some(scopes), _) => scopes.clone(),
        (None, Some(ProviderType::Oidc)) => DEFAULT_OIDC_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        (None, _) => Vec::new(),
    }
}

/// The claim names read, with the defaults filled in.
pub fn claim_mapping(config: &PutIdentityProvider) -> BTreeMap<String, String> {
    MAPPED_FIELDS
        .iter()
        .map(|(field, default)| {
            let claim = config
                .claim_mapping
                .as_ref()
                .and_then(|m| m.get(*field))
                .map_or(*default, String::as_str);
            ((*field).to_owned(), claim.to_owned())
        })
        .collect()
}

/// Checks an ID token's claims (its signature was checked with the
/// provider's key): `iss` is the provider's, `aud` names our client (and
/// `azp`, when present, is our client), `exp` not past and `iat` not in
/// the future (with [`LEEWAY_SECONDS`]), and `nonce` is the one this flow
/// sent.
pub fn check_id_token(
    claims: &Value,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: i64,
) -> Result<(), TokenRefused> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(TokenRefused("iss is not the provider's"));
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenRefused("aud does not name this client"));
    }
    if let Some(azp) = claims.get("azp") {
        if azp.as_str() != Some(client_id) {
            return Err(TokenRefused("azp is another client"));
        }
    }
    let time = |name| claims.get(name).and_then(Value::as_i64);
    let exp = time("exp").ok_or(TokenRefused("exp is required"))?;
    if now >= exp.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenRefused("the ID token has expired"));
    }
    let iat = time("iat").ok_or(TokenRefused("iat is required"))?;
    if iat > now.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenRefused("the ID token was issued in the future"));
    }
    let presented = claims.get("nonce").and_then(Value::as_str);
    let same = presented.is_some_and(|p| {
        p.len() == nonce.len()
            && p.bytes()
                .zip(nonce.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !same {
        return Err(TokenRefused("nonce is not this login's"));
    }
    Ok(())
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    /// The provider's stable id for the person.
    pub subject: String,
    /// Their email address, when given.
    pub email: Option<String>,
    /// Whether the provider says the address is theirs.
    pub email_verified: bool,
    /// Their name, when given.
    pub name: Option<String>,
    /// How they authenticated there (RFC 8176), when said.
    pub amr: Vec<String>,
}

/// Reads the person from the provider's claims (an ID token's, or
/// userinfo's) through the mapping. A numeric subject (GitHub's user id)
/// is read as its decimal text; `email_verified` may be a boolean or the
/// string `"true"` (some providers send that).
pub fn external(
    claims: &Value,
    mapping: &BTreeMap<String, String>,
) -> Result<External, TokenRefused> {
    let claim = |field: &str| {
        mapping
            .get(field)
            .and_then(|name| super::workload::claim_at(claims, name))
    };
    let subject = match claim("subject") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(TokenRefused("the provider named no subject")),
    };
    let text = |field: &str| {
        claim(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 320 && !s.contains('\0'))
            .map(str::to_owned)
    };
    let email_verified = match claim("emailVerified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    let amr = claims
        .get("amr")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(External {
        subject,
        email: text("email").filter(|e| e.contains('@')),
        email_verified,
        name: text("name"),
        amr,
    })
}

/// Whom a provider's identity is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The user linked to this subject before.
    Linked(String),
    /// A user with this verified email: link them now.
    ByEmail(String),
    /// Nobody: create a user and link them.
    Provision,
    /// Nobody, and the provider may not create users.
    Nobody,
}

/// Decides whom the identity is: a user already linked to the subject;
/// else, with `linkBy: email` and an address the provider verified, the one
/// user with that address (`by_email`, `None` when none or several); else a
/// new user when provisioning is on.
pub fn link(
    link_by: LinkBy,
    provisioning: bool,
    linked: Option<String>,
    by_email: Option<String>,
    external: &External,
) -> Link {
    if let Some(user) = linked {
        return Link::Linked(user);
    }
    if link_by == LinkBy::Email && external.email_verified && external.email.is_some() {
        if let Some(user) = by_email {
            return Link::ByEmail(user);
        }
    }
    if provisioning {
        Link::Provision
    } else {
        Link::Nobody
    }
}

/// RFC 8176 values that name a second factor (something held or inherent).
const SECOND_FACTOR_AMR: [&str; 11] = [
    "mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm", "pop",
];

/// The factors an SSO login satisfies: the provider's own, and `totp` too
/// when the provider is trusted for MFA and its `amr` names a second
/// factor.
pub fn satisfied_by(
    provider_id: &str,
    trust_upstream_mfa: bool,
    amr: &[String],
) -> BTreeSet<Factor> {
    let mut out = BTreeSet::from([Factor::Sso(provider_id.to_owned())]);
    if trust_upstream_mfa && amr.iter().any(|v| SECOND_FACTOR_AMR.contains(&v.as_str())) {
        out.insert(Factor::Totp);
    }
    out
}

/// The redirect URI of a provider under its mode's issuer.
pub fn callback_url(mode_issuer: &str, provider_id: &str) -> String {
    format!(
        "{}/auth/sso/{provider_id}/callback",
        mode_issuer.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn oidc() -> PutIdentityProvider {
        PutIdentityProvider {
            kind: Some(ProviderType::Oidc),
            issuer: Some("https://idp.example".into()),
            client_id: Some("latchkey".into()),
            client_secret: Some("s3cret".into()),
            ..PutIdentityProvider::default()
        }
    }

    #[test]
    fn configurations_are_checked_per_type() {
        assert_eq!(validate(&oidc(), false), Ok(()));
        let mut no_secret = oidc();
        no_secret.client_secret = None;
        assert_eq!(validate(&no_secret, true), Ok(()));
        type Edit = fn(&mut PutIdentityProvider);
        let table: &[(Edit, &str)] = &[
            (|c| c.kind = None, "type"),
            (|c| c.kind = Some(ProviderType::Saml), "entityId"),
            (|c| c.issuer = None, "issuer"),
            (|c| c.issuer = Some("idp.example".into()), "issuer"),
            (|c| c.client_id = None, "clientId"),
            (|c| c.client_secret = None, "clientSecret"),
            (|c| c.client_secret = Some(String::new()), "clientSecret"),
            (|c| c.scopes = Some(vec!["a b".into()]), "scopes"),
            (
                |c| c.claim_mapping = Some(BTreeMap::from([("role".into(), "x".into())])),
                "claimMapping",
            ),
            (|c| c.sso_url = Some("https://x".into()), "ssoUrl"),
            (
                |c| c.token_url = Some("https://x/token".into()),
                "authorizationUrl",
            ),
            (
                |c| {
                    c.kind = Some(ProviderType::Oauth2);
                    c.issuer = None;
                    c.authorization_url = Some("https://gh/authorize".into());
                    c.token_url = Some("https://gh/token".into());
                },
                "userinfoUrl",
            ),
        ];
        for (edit, field) in table {
            let mut c = oidc();
            edit(&mut c);
            assert_eq!(validate(&c, false).unwrap_err().field, *field);
        }
        assert_eq!(scopes(&oidc()), ["openid", "email", "profile"]);
        let mapping = claim_mapping(&PutIdentityProvider {
            claim_mapping: Some(BTreeMap::from([("subject".into(), "id".into())])),
            ..oidc()
        });
        assert_eq!(mapping["subject"], "id");
        assert_eq!(mapping["email"], "email");
    }

    #[test]
    fn a_replacement_names_the_same_provider_only_with_the_same_source() {
        let base = oidc();
        type Edit = fn(&mut PutIdentityProvider);
        let table: &[(Edit, bool)] = &[
            (|_| {}, true),
            (|c| c.client_id = Some("other-client".into()), true),
            (|c| c.scopes = Some(vec!["openid".into()]), true),
            (
                |c| c.issuer = Some("https://other-idp.example".into()),
                false,
            ),
            (
                |c| {
                    c.kind = Some(ProviderType::Oauth2);
                    c.token_url = Some("https://idp.example/token".into());
                },
                false,
            ),
        ];
        for (edit, same) in table {
            let mut new = base.clone();
            edit(&mut new);
            assert_eq!(same_source(&base, &new), *same, "{new:?}");
        }
    }

    #[test]
    fn id_tokens_are_checked_as_openid_connect_says() {
        let now = 1_800_000_000;
        let good = json!({"iss": "https://idp.example", "aud": "latchkey", "sub": "u1",
            "exp": now + 300, "iat": now, "nonce": "n-123"});
        assert_eq!(
            check_id_token(&good, "https://idp.example", "latchkey", "n-123", now),
            Ok(())
        );
        type Edit = fn(&mut Value, i64);
        let table: &[(Edit, &str)] = &[
            (
                |c, _| c["iss"] = json!("https://evil.example"),
                "iss is not the provider's",
            ),
            (
                |c, _| c["aud"] = json!("another-client"),
                "aud does not name this client",
            ),
            (
                |c, _| c["aud"] = json!(["another-client"]),
                "aud does not name this client",
            ),
            (
                |c, _| {
                    c["aud"] = json!(["latchkey", "x"]);
                    c["azp"] = json!("x");
                },
                "azp is another client",
            ),
            (
                |c, now| c["exp"] = json!(now - 61),
                "the ID token has expired",
            ),
            (
                |c, _| {
                    c.as_object_mut().unwrap().remove("exp");
                },
                "exp is required",
            ),
            (
                |c, _| {
                    c.as_object_mut().unwrap().remove("iat");
                },
                "iat is required",
            ),
            (
                |c, now| c["iat"] = json!(now + 61),
                "the ID token was issued in the future",
            ),
            (
                |c, _| {
                    c.as_object_mut().unwrap().remove("nonce");
                },
                "nonce is not this login's",
            ),
            (
                |c, _| c["nonce"] = json!("n-124"),
                "nonce is not this login's",
            ),
        ];
        for (edit, why) in table {
            let mut claims = good.clone();
            edit(&mut claims, now);
            assert_eq!(
                check_id_token(&claims, "https://idp.example", "latchkey", "n-123", now),
                Err(TokenRefused(why)),
                "{claims}"
            );
        }
    }

    #[test]
    fn claims_are_read_through_the_mapping() {
        let defaults = claim_mapping(&oidc());
        let person = external(
            &json!({"sub": "u1", "email": "a@x.example", "email_verified": true, "name": "A", "amr": ["pwd", "otp"]}),
            &defaults,
        )
        .unwrap();
        assert_eq!(person.subject, "u1");
        assert!(person.email_verified);
        assert_eq!(person.amr, ["pwd", "otp"]);
        // GitHub-style userinfo: a numeric id, no email_verified.
        let github = claim_mapping(&PutIdentityProvider {
            claim_mapping: Some(BTreeMap::from([
                ("subject".into(), "id".into()),
                ("name".into(), "login".into()),
            ])),
            ..oidc()
        });
        let person = external(
            &json!({"id": 583231, "login": "octocat", "email": "o@x.example"}),
            &github,
        )
        .unwrap();
        assert_eq!(
            (
                person.subject.as_str(),
                person.name.as_deref(),
                person.email_verified
            ),
            ("583231", Some("octocat"), false)
        );
        assert!(
            external(&json!({"email_verified": "true", "sub": "x"}), &defaults)
                .unwrap()
                .email_verified
        );
        assert!(
            external(&json!({"email": "not-an-address", "sub": "x"}), &defaults)
                .unwrap()
                .email
                .is_none()
        );
        assert_eq!(
            external(&json!({"sub": ""}), &defaults),
            Err(TokenRefused("the provider named no subject"))
        );
    }

    #[test]
    fn identities_link_by_subject_then_by_verified_email_then_provision() {
        let person = |verified| External {
            subject: "u1".into(),
            email: Some("a@x.example".into()),
            email_verified: verified,
            name: None,
            amr: vec![],
        };
        let some = |s: &str| Some(s.to_owned());
        let table = [
            (
                LinkBy::Subject,
                false,
                some("usr_l"),
                some("usr_e"),
                true,
                Link::Linked("usr_l".into()),
            ),
            (
                LinkBy::Email,
                false,
                some("usr_l"),
                some("usr_e"),
                true,
                Link::Linked("usr_l".into()),
            ),
            (
                LinkBy::Email,
                false,
                None,
                some("usr_e"),
                true,
                Link::ByEmail("usr_e".into()),
            ),
            // An address the provider did not verify links nobody.
            (
                LinkBy::Email,
                false,
                None,
                some("usr_e"),
                false,
                Link::Nobody,
            ),
            (
                LinkBy::Email,
                true,
                None,
                some("usr_e"),
                false,
                Link::Provision,
            ),
            (
                LinkBy::Subject,
                false,
                None,
                some("usr_e"),
                true,
                Link::Nobody,
            ),
            (LinkBy::Subject, true, None, None, true, Link::Provision),
        ];
        for (by, provisioning, linked, by_email, verified, expected) in table {
            assert_eq!(
                link(by, provisioning, linked, by_email, &person(verified)),
                expected
            );
        }
    }

    #[test]
    fn the_providers_mfa_counts_only_when_trusted_and_said() {
        let amr = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let sso = Factor::Sso("corp".into());
        assert_eq!(
            satisfied_by("corp", true, &amr(&["pwd", "otp"])),
            BTreeSet::from([sso.clone(), Factor::Totp])
        );
        assert_eq!(
            satisfied_by("corp", true, &amr(&["mfa"])),
            BTreeSet::from([sso.clone(), Factor::Totp])
        );
        assert_eq!(
            satisfied_by("corp", true, &amr(&["pwd"])),
            BTreeSet::from([sso.clone()])
        );
        assert_eq!(
            satisfied_by("corp", false, &amr(&["pwd", "otp"])),
            BTreeSet::from([sso])
        );
        assert_eq!(
            callback_url("https://auth.example/test/", "corp"),
            "https://auth.example/test/auth/sso/corp/callback"
        );
    }
}
