//! The claims rules of a signed client assertion (RFC 7523): who may sign
//! it, for whom, and for how long. The signature is checked before these
//! (by the server, with the keys registered on the client); the `jti`
//! replay check after (it needs the store or Redis).

use serde_json::Value;

/// An assertion may expire at most this far ahead.
pub const MAX_LIFETIME_SECONDS: i64 = 300;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: i64 = 30;
/// Assertions longer than this are refused before any work.
pub const MAX_BYTES: usize = 8 * 1024;

/// Why an assertion's claims are refused (for the log; a client always gets
/// the same answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClaimsError(pub &'static str);

/// Checks `iss`, `sub`, `aud`, `exp`, `nbf` and `iat` of an assertion by
/// `client_id` at `now` (Unix seconds); returns its `exp`. `aud` must name
/// one of `audiences` (the token endpoint, the issuer): as a string, or
/// among an array's strings.
pub fn check_claims(
    claims: &Value,
    client_id: &str,
    audiences: &[&str],
    now: i64,
) -> Result<i64, ClaimsError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) || text("sub") != Some(client_id) {
        return Err(ClaimsError("iss and sub must be the client id"));
    }
    let audience_ok = |a: &str| audiences.contains(&a);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => audience_ok(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(audience_ok),
        _ => false,
    };
    if !aud_ok {
        return Err(ClaimsError("aud must be the token endpoint or the issuer"));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(ClaimsError("exp is required"))?;
    if exp.saturating_add(LEEWAY_SECONDS) <= now {
        return Err(ClaimsError("expired"));
    }
    if exp > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS {
        return Err(ClaimsError("exp is more than 5 minutes ahead"));
    }
    for (name, what) in [("nbf", "not yet valid"), ("iat", "issued in the future")] {
        match claims.get(name) {
            None => {}
            Some(v) => match v.as_i64() {
                Some(t) if t <= now + LEEWAY_SECONDS => {}
                Some(_) => return Err(ClaimsError(what)),
                None => return Err(ClaimsError("nbf and iat must be numbers")),
            },
        }
    }
    Ok(exp)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const AUD: &[&str] = &["https://auth.example/oauth/token", "https://auth.example"];

    fn base() -> Value {
        json!({"iss": "usr_1", "sub": "usr_1", "aud": AUD[0], "exp": NOW + 60, "jti": "j"})
    }

    #[test]
    fn claims_follow_rfc_7523_with_our_bounds() {
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut c = base();
            edit(&mut c);
            check_claims(&c, "usr_1", AUD, NOW)
        };
        // (what, edit, expected)
        type Row<'a> = (&'a str, &'a dyn Fn(&mut Value), Result<i64, &'a str>);
        let table: &[Row] = &[
            ("as minted", &|_| {}, Ok(NOW + 60)),
            ("issuer aud", &|c| c["aud"] = json!(AUD[1]), Ok(NOW + 60)),
            (
                "aud in an array",
                &|c| c["aud"] = json!(["x", AUD[1]]),
                Ok(NOW + 60),
            ),
            (
                "another aud",
                &|c| c["aud"] = json!("https://evil.example"),
                Err("aud must be the token endpoint or the issuer"),
            ),
            (
                "aud not a string",
                &|c| c["aud"] = json!(5),
                Err("aud must be the token endpoint or the issuer"),
            ),
            (
                "another iss",
                &|c| c["iss"] = json!("usr_2"),
                Err("iss and sub must be the client id"),
            ),
            (
                "no sub",
                &|c| {
                    c.as_object_mut().unwrap().remove("sub");
                },
                Err("iss and sub must be the client id"),
            ),
            (
                "no exp",
                &|c| {
                    c.as_object_mut().unwrap().remove("exp");
                },
                Err("exp is required"),
            ),
            (
                "expired past the leeway",
                &|c| c["exp"] = json!(NOW - LEEWAY_SECONDS),
                Err("expired"),
            ),
            (
                "expired within the leeway",
                &|c| c["exp"] = json!(NOW - LEEWAY_SECONDS + 1),
                Ok(NOW - LEEWAY_SECONDS + 1),
            ),
            (
                "too far ahead",
                &|c| c["exp"] = json!(NOW + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS + 1),
                Err("exp is more than 5 minutes ahead"),
            ),
            (
                "nbf ahead",
                &|c| c["nbf"] = json!(NOW + LEEWAY_SECONDS + 1),
                Err("not yet valid"),
            ),
            (
                "iat ahead",
                &|c| c["iat"] = json!(NOW + LEEWAY_SECONDS + 1),
                Err("issued in the future"),
            ),
            (
                "iat a string",
                &|c| c["iat"] = json!("now"),
                Err("nbf and iat must be numbers"),
            ),
        ];
        for (what, edit, expected) in table {
            assert_eq!(with(*edit), expected.map_err(ClaimsError), "{what}");
        }
    }
}
