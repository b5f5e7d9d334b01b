//! Workload identity federation: what a trusted issuer's configuration
//! must say, which of its tokens are accepted (issuer, audience, time), and
//! which rule maps a token's claims to a user. The server checks the
//! signature (with the issuer's keys) and issues; everything it decides is
//! here.

use latchkey_types::federation::{
    PutTrustedIssuer, WorkloadRule, MAX_AUDIENCES, MAX_CONDITIONS, MAX_FIELD_BYTES, MAX_RULES,
    MAX_TTL_SECONDS,
};
use latchkey_types::ids::{Identifier as _, UserId};
use latchkey_types::oauth::Actor;
use latchkey_types::Mode;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::glob;

/// The clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: i64 = 60;
/// The shortest lifetime a rule may give, in seconds.
pub const MIN_TTL_SECONDS: i64 = 60;
/// The longest claim name a condition may name, in bytes.
pub const MAX_CLAIM_NAME_BYTES: usize = 128;

/// Why a configuration was refused: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    /// The field, as a path (`rules[1].when`).
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

fn refuse(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A string field: not blank, within [`MAX_FIELD_BYTES`], no whitespace or
/// control character.
fn plain(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(refuse(field, "must not be empty"));
    }
    if value.len() > MAX_FIELD_BYTES {
        return Err(refuse(field, format!("at most {MAX_FIELD_BYTES} bytes")));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(refuse(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// Whether `url` is an absolute http(s) URL with a host and no fragment.
pub fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    !host.is_empty() && !host.starts_with(':') && !url.contains('#')
}

/// Checks what can be checked without the store: lengths, shapes, exactly
/// one key source, and each rule (1 to 16 conditions, exactly one of
/// `userId` and `provision`, a tenant for `provision`, the TTL's range).
/// Whether the user, tenant and keys exist and parse is the server's part.
pub fn validate(config: &PutTrustedIssuer) -> Result<(), ConfigError> {
    plain("issuer", &config.issuer)?;
    match (&config.jwks_uri, &config.jwks) {
        (Some(uri), None) => {
            plain("jwksUri", uri)?;
            if !is_http_url(uri) {
                return Err(refuse("jwksUri", "must be an absolute http(s) URL"));
            }
        }
        (None, Some(jwks)) => {
            if !jwks.get("keys").is_some_and(Value::is_array) {
                return Err(refuse("jwks", "must be a JWKS object: {\"keys\": [...]}"));
            }
        }
        _ => return Err(refuse("jwksUri", "give exactly one of jwksUri and jwks")),
    }
    if config.audiences.is_empty() || config.audiences.len() > MAX_AUDIENCES {
        return Err(refuse("audiences", format!("1 to {MAX_AUDIENCES} values")));
    }
    for (i, audience) in config.audiences.iter().enumerate() {
        plain(&format!("audiences[{i}]"), audience)?;
    }
    if config.rules.is_empty() || config.rules.len() > MAX_RULES {
        return Err(refuse("rules", format!("1 to {MAX_RULES} rules")));
    }
    for (i, rule) in config.rules.iter().enumerate() {
        validate_rule(&format!("rules[{i}]"), rule)?;
    }
    Ok(())
}

fn validate_rule(at: &str, rule: &WorkloadRule) -> Result<(), ConfigError> {
    if rule.when.is_empty() || rule.when.len() > MAX_CONDITIONS {
        return Err(refuse(
            format!("{at}.when"),
            format!(
                "1 to {MAX_CONDITIONS} conditions (write {{\"sub\": \"*\"}} to match every token)"
            ),
        ));
    }
    for (name, pattern) in &rule.when {
        if name.is_empty() || name.len() > MAX_CLAIM_NAME_BYTES {
            return Err(refuse(
                format!("{at}.when"),
                format!("a claim name has 1 to {MAX_CLAIM_NAME_BYTES} bytes"),
            ));
        }
        if pattern.is_empty() || pattern.len() > MAX_FIELD_BYTES {
            return Err(refuse(
                format!("{at}.when.{name}"),
                format!("a pattern has 1 to {MAX_FIELD_BYTES} bytes"),
            ));
        }
    }
    match (&rule.user_id, &rule.provision) {
        (Some(_), None) => {}
        (None, Some(_)) => {
            if rule.tenant_id.is_none() {
                return Err(refuse(
                    format!("{at}.tenantId"),
                    "required with provision: the tenant the new users join",
                ));
            }
        }
        _ => {
            return Err(refuse(
                format!("{at}.userId"),
                "give exactly one of userId and provision",
            ))
        }
    }
    if let Some(roles) = &rule.roles {
        if roles.len() > 64 {
            return Err(refuse(format!("{at}.roles"), "at most 64 roles"));
        }
    }
    if let Some(ttl) = rule.ttl_seconds {
        if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(refuse(
                format!("{at}.ttlSeconds"),
                format!("{MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}"),
            ));
        }
    }
    Ok(())
}

/// The value a condition names: the claim itself, or, for a name with
/// dots, a path into objects where each step takes the longest key that
/// exists (`kubernetes.io.namespace` is `claims["kubernetes.io"]["namespace"]`).
pub fn claim_at<'a>(claims: &'a Value, name: &str) -> Option<&'a Value> {
    let object = claims.as_object()?;
    if let Some(value) = object.get(name) {
        return Some(value);
    }
    // Longest prefix first, so a key with dots wins over a nested path.
    let dots: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
    for &dot in dots.iter().rev() {
        if let Some(inner) = object.get(&name[..dot]) {
            if let Some(found) = claim_at(inner, &name[dot + 1..]) {
                return Some(found);
            }
        }
    }
    None
}

/// Whether a claim's value matches `pattern`: a string as it is, a number or
/// boolean as JSON writes it, an array when one element does; an object,
/// `null` or an absent claim never.
pub fn value_matches(value: Option<&Value>, pattern: &str) -> bool {
    match value {
        Some(Value::String(s)) => glob::matches(pattern, s),
        Some(Value::Number(n)) => glob::matches(pattern, &n.to_string()),
        Some(Value::Bool(b)) => glob::matches(pattern, if *b { "true" } else { "false" }),
        Some(Value::Array(items)) => items
            .iter()
            .any(|item| !item.is_array() && value_matches(Some(item), pattern)),
        _ => false,
    }
}

/// The first rule whose every condition holds for `claims`, with its index.
pub fn first_match<'r>(
    rules: &'r [WorkloadRule],
    claims: &Value,
) -> Option<(usize, &'r WorkloadRule)> {
    rules.iter().enumerate().find(|(_, rule)| {
        !rule.when.is_empty()
            && rule
                .when
                .iter()
                .all(|(name, pattern)| value_matches(claim_at(claims, name), pattern))
    })
}

/// Why a workload token was refused (for the log; the client gets
/// `invalid_grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenRefused(pub &'static str);

/// Checks a verified token's registered claims: `iss` is the trusted
/// issuer's, `aud` names one of `audiences`, `exp` is present and not
/// past, `nbf` and `iat` not in the future (each with
/// [`LEEWAY_SECONDS`]), and `sub` is a non-empty string. A token without
/// `exp` (a legacy Kubernetes secret token, which never expires) is
/// refused. Answers who the token names.
pub fn check_claims(
    claims: &Value,
    issuer: &str,
    audiences: &[String],
    now: i64,
) -> Result<Actor, TokenRefused> {
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(TokenRefused("iss is not the trusted issuer"));
    }
    let named = |aud: &str| audiences.iter().any(|a| a == aud);
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => named(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(named),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenRefused("aud names no accepted audience"));
    }
    let time = |name| match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or(TokenRefused("a time claim is not an integer")),
    };
    let exp = time("exp")?.ok_or(TokenRefused("exp is required"))?;
    if now >= exp.saturating_add(LEEWAY_SECONDS) {
        return Err(TokenRefused("the token has expired"));
    }
    if time("nbf")?.is_some_and(|nbf| nbf > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(TokenRefused("the token is not valid yet"));
    }
    if time("iat")?.is_some_and(|iat| iat > now.saturating_add(LEEWAY_SECONDS)) {
        return Err(TokenRefused("the token was issued in the future"));
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= MAX_FIELD_BYTES)
        .ok_or(TokenRefused("sub is required"))?;
    Ok(Actor {
        iss: issuer.to_owned(),
        sub: sub.to_owned(),
    })
}

/// The id of the user a `provision` rule creates for an external subject:
/// derived from the mode, the issuer and the subject, so every node (and
/// every later exchange) finds the same user without asking the store.
pub fn provisioned_user_id(mode: Mode, actor: &Actor) -> UserId {
    let mut hash = Sha256::new();
    for part in [
        b"latchkey-workload-user".as_slice(),
        mode.as_str().as_bytes(),
        actor.iss.as_bytes(),
        actor.sub.as_bytes(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    UserId::parse(format!("usr_wl{hex}"))
        .unwrap_or_else(|_| unreachable!("usr_ + hex is a user id"))
}

/// The `iss` of a JWT's payload, unverified: only to find which trusted
/// issuer's keys to check it with. `None` when the token is not a JWT with
/// a string `iss`.
pub fn unverified_issuer(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    /// Only `iss` is kept: the other claims are skipped, not built.
    #[derive(serde::Deserialize)]
    struct Peek {
        iss: Option<String>,
    }
    let payload = token.split('.').nth(1)?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Peek>(&bytes).ok()?.iss
}

#[cfg(test)]
mod tests {
    use latchkey_types::federation::Provision;
    use serde_json::json;

    use super::*;

    fn rule(when: &[(&str, &str)], user: &str) -> WorkloadRule {
        WorkloadRule {
            when: when
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            user_id: Some(UserId::parse(user).unwrap()),
            provision: None,
            tenant_id: None,
            roles: None,
            ttl_seconds: None,
        }
    }

    fn config() -> PutTrustedIssuer {
        PutTrustedIssuer {
            issuer: "https://token.actions.githubusercontent.com".into(),
            jwks_uri: Some("https://token.actions.githubusercontent.com/.well-known/jwks".into()),
            jwks: None,
            audiences: vec!["https://auth.example.com".into()],
            rules: vec![rule(&[("sub", "repo:acme/*")], "usr_ci")],
        }
    }

    #[test]
    fn configurations_are_checked_field_by_field() {
        assert_eq!(validate(&config()), Ok(()));
        type Edit = fn(&mut PutTrustedIssuer);
        let table: &[(Edit, &str)] = &[
            (|c| c.issuer = String::new(), "issuer"),
            (|c| c.issuer = "https://x y".into(), "issuer"),
            (|c| c.issuer = "x".repeat(513), "issuer"),
            (|c| c.jwks = Some(json!({"keys": []})), "jwksUri"),
            (|c| c.jwks_uri = None, "jwksUri"),
            (|c| c.jwks_uri = Some("ftp://keys".into()), "jwksUri"),
            (|c| c.jwks_uri = Some("https://".into()), "jwksUri"),
            (|c| c.jwks_uri = Some("https://k/#frag".into()), "jwksUri"),
            (
                |c| {
                    c.jwks_uri = None;
                    c.jwks = Some(json!([1]));
                },
                "jwks",
            ),
            (|c| c.audiences.clear(), "audiences"),
            (|c| c.audiences = vec!["a".into(); 17], "audiences"),
            (|c| c.audiences = vec![" ".into()], "audiences[0]"),
            (|c| c.rules.clear(), "rules"),
            (|c| c.rules[0].when.clear(), "rules[0].when"),
            (
                |c| {
                    c.rules[0].when.insert(String::new(), "x".into());
                },
                "rules[0].when",
            ),
            (
                |c| {
                    c.rules[0].when.insert("sub".into(), String::new());
                },
                "rules[0].when.sub",
            ),
            (|c| c.rules[0].user_id = None, "rules[0].userId"),
            (
                |c| c.rules[0].provision = Some(Provision::default()),
                "rules[0].userId",
            ),
            (
                |c| {
                    c.rules[0].user_id = None;
                    c.rules[0].provision = Some(Provision::default());
                },
                "rules[0].tenantId",
            ),
            (|c| c.rules[0].ttl_seconds = Some(59), "rules[0].ttlSeconds"),
            (
                |c| c.rules[0].ttl_seconds = Some(86_401),
                "rules[0].ttlSeconds",
            ),
        ];
        for (edit, field) in table {
            let mut c = config();
            edit(&mut c);
            let err = validate(&c).unwrap_err();
            assert_eq!(err.field, *field, "{err}");
        }
        let mut static_keys = config();
        static_keys.jwks_uri = None;
        static_keys.jwks = Some(json!({"keys": []}));
        assert_eq!(validate(&static_keys), Ok(()));
    }

    #[test]
    fn claim_names_reach_into_objects_and_keys_with_dots() {
        let k8s = json!({
            "sub": "system:serviceaccount:prod:billing",
            "kubernetes.io": {"namespace": "prod", "serviceaccount": {"name": "billing"}},
            "a.b": "flat", "a": {"b": "nested"},
            "groups": ["dev", "ops"], "n": 42, "ok": true, "obj": {"x": 1}, "nil": null,
        });
        assert_eq!(
            claim_at(&k8s, "kubernetes.io.namespace"),
            Some(&json!("prod"))
        );
        assert_eq!(
            claim_at(&k8s, "kubernetes.io.serviceaccount.name"),
            Some(&json!("billing"))
        );
        assert_eq!(claim_at(&k8s, "a.b"), Some(&json!("flat")));
        assert_eq!(claim_at(&k8s, "kubernetes.io.missing"), None);
        assert_eq!(claim_at(&k8s, "missing"), None);
        let m = |name, pattern| value_matches(claim_at(&k8s, name), pattern);
        assert!(m("groups", "ops"));
        assert!(!m("groups", "admin"));
        assert!(m("n", "4?"));
        assert!(m("ok", "true"));
        assert!(!m("obj", "*"));
        assert!(!m("nil", "*"));
        assert!(!m("missing", "*"));
    }

    #[test]
    fn the_first_rule_whose_every_condition_holds_wins() {
        let rules = vec![
            rule(
                &[("repository", "acme/api"), ("ref", "refs/heads/main")],
                "usr_deploy",
            ),
            rule(&[("repository", "acme/*")], "usr_ci"),
            rule(
                &[
                    ("kubernetes.io.namespace", "prod"),
                    ("sub", "system:serviceaccount:prod:*"),
                ],
                "usr_k8s",
            ),
        ];
        let table: &[(Value, Option<usize>)] = &[
            (
                json!({"repository": "acme/api", "ref": "refs/heads/main"}),
                Some(0),
            ),
            (
                json!({"repository": "acme/api", "ref": "refs/heads/feature"}),
                Some(1),
            ),
            (
                json!({"repository": "evil/api", "ref": "refs/heads/main"}),
                None,
            ),
            (json!({"repository": "acme-evil/api"}), None),
            (
                json!({"sub": "system:serviceaccount:prod:billing", "kubernetes.io": {"namespace": "prod"}}),
                Some(2),
            ),
            (
                json!({"sub": "system:serviceaccount:prod:billing", "kubernetes.io": {"namespace": "dev"}}),
                None,
            ),
            (
                json!({"sub": "system:serviceaccount:dev:billing", "kubernetes.io": {"namespace": "prod"}}),
                None,
            ),
            (json!({}), None),
        ];
        for (claims, expected) in table {
            assert_eq!(
                first_match(&rules, claims).map(|(i, _)| i),
                *expected,
                "{claims}"
            );
        }
        // A rule without conditions (refused by `validate`) never matches.
        assert!(first_match(&[rule(&[], "usr_x")], &json!({"sub": "x"})).is_none());
    }

    #[test]
    fn registered_claims_are_checked() {
        let now = 1_800_000_000;
        let audiences = vec!["https://auth.example.com".to_owned()];
        let good = json!({"iss": "https://k8s", "aud": ["other", "https://auth.example.com"],
            "sub": "system:serviceaccount:prod:billing", "exp": now + 600, "iat": now - 5, "nbf": now - 5});
        assert_eq!(
            check_claims(&good, "https://k8s", &audiences, now),
            Ok(Actor {
                iss: "https://k8s".into(),
                sub: "system:serviceaccount:prod:billing".into()
            })
        );
        type Edit = fn(&mut Value, i64);
        let table: &[(Edit, &str)] = &[
            (
                |c, _| c["iss"] = json!("https://k8s/"),
                "iss is not the trusted issuer",
            ),
            (
                |c, _| c["aud"] = json!("https://auth.example.com/test"),
                "aud names no accepted audience",
            ),
            (
                |c, _| c["aud"] = json!([]),
                "aud names no accepted audience",
            ),
            (
                |c, _| {
                    c.as_object_mut().unwrap().remove("aud");
                },
                "aud names no accepted audience",
            ),
            (
                |c, _| {
                    c.as_object_mut().unwrap().remove("exp");
                },
                "exp is required",
            ),
            (
                |c, now| c["exp"] = json!(now - LEEWAY_SECONDS),
                "the token has expired",
            ),
            (
                |c, now| c["exp"] = json!(format!("{}", now + 60)),
                "a time claim is not an integer",
            ),
            (
                |c, now| c["nbf"] = json!(now + LEEWAY_SECONDS + 1),
                "the token is not valid yet",
            ),
            (
                |c, now| c["iat"] = json!(now + LEEWAY_SECONDS + 1),
                "the token was issued in the future",
            ),
            (|c, _| c["sub"] = json!(""), "sub is required"),
            (|c, _| c["sub"] = json!(7), "sub is required"),
        ];
        for (edit, why) in table {
            let mut claims = good.clone();
            edit(&mut claims, now);
            assert_eq!(
                check_claims(&claims, "https://k8s", &audiences, now),
                Err(TokenRefused(why)),
                "{claims}"
            );
        }
        // Within the leeway is accepted.
        let mut late = good.clone();
        late["exp"] = json!(now - LEEWAY_SECONDS + 1);
        assert!(check_claims(&late, "https://k8s", &audiences, now).is_ok());
    }

    #[test]
    fn provisioned_ids_are_stable_and_distinct() {
        let a = Actor {
            iss: "https://k8s".into(),
            sub: "system:serviceaccount:prod:a".into(),
        };
        let b = Actor {
            iss: "https://k8s".into(),
            sub: "system:serviceaccount:prod:b".into(),
        };
        let id = provisioned_user_id(Mode::Test, &a);
        assert!(UserId::is_valid(id.as_str()));
        assert_eq!(id, provisioned_user_id(Mode::Test, &a));
        assert_ne!(id, provisioned_user_id(Mode::Test, &b));
        assert_ne!(id, provisioned_user_id(Mode::Live, &a));
        // The parts are length-prefixed: moving a byte from iss to sub
        // names someone else.
        let shifted = Actor {
            iss: "https://k8".into(),
            sub: "ssystem:serviceaccount:prod:a".into(),
        };
        assert_ne!(id, provisioned_user_id(Mode::Test, &shifted));
    }

    #[test]
    fn the_issuer_is_peeked_without_trusting_anything_else() {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://k8s","sub":"x"}"#);
        assert_eq!(
            unverified_issuer(&format!("h.{payload}.s")),
            Some("https://k8s".into())
        );
        assert_eq!(unverified_issuer("not a jwt"), None);
        let numeric = URL_SAFE_NO_PAD.encode(br#"{"iss":1}"#);
        assert_eq!(unverified_issuer(&format!("h.{numeric}.s")), None);
    }
}
