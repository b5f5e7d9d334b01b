//! Identifiers: generation and validation of tenant ids, user ids, role names
//! and the other record ids.

use rand::Rng;

const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// `len` random lowercase letters and digits.
pub fn random_lower_alnum(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| LOWER_ALNUM[rng.gen_range(0..LOWER_ALNUM.len())] as char)
        .collect()
}

/// A new tenant or workspace id: 8 lowercase letters and digits.
pub fn new_tenant_id() -> String {
    random_lower_alnum(8)
}

/// A new record id such as `usr_…`: the prefix, `_`, and 20 random characters
/// (about 103 bits, so ids are unguessable as well as unique).
pub fn new_prefixed_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_lower_alnum(20))
}

/// Whether `id` is a valid tenant id: `[a-z0-9][a-z0-9_-]{0,62}`.
pub fn is_valid_tenant_id(id: &str) -> bool {
    let b = id.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

/// Whether `name` is a valid role name: `[a-z0-9][a-z0-9:_-]{0,63}`.
pub fn is_valid_role_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b[1..].iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(*c, b':' | b'_' | b'-')
        })
}

/// Whether `s` is a valid OAuth scope token (RFC 6749 §3.3: printable ASCII
/// except space, `"` and `\`), at most 128 bytes.
pub fn is_valid_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|c| c == 0x21 || (0x23..=0x5B).contains(&c) || (0x5D..=0x7E).contains(&c))
}

/// Whether `id` looks like a record id with this prefix (cheap shape check
/// before a lookup).
pub fn has_id_shape(id: &str, prefix: &str) -> bool {
    id.len() <= 64
        && id
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('_'))
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_follow_the_contract_pattern() {
        for ok in ["a", "acme", "0-x_y", &"a".repeat(63)] {
            assert!(is_valid_tenant_id(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "Acme", "a b", "a.b", &"a".repeat(64), "é"] {
            assert!(!is_valid_tenant_id(bad), "{bad}");
        }
        assert!(is_valid_tenant_id(&new_tenant_id()));
        assert_eq!(new_tenant_id().len(), 8);
    }

    #[test]
    fn role_names_follow_the_contract_pattern() {
        for ok in [
            "admin",
            "iot-remote",
            "telemetry:write",
            "a",
            &"r".repeat(64),
        ] {
            assert!(is_valid_role_name(ok), "{ok}");
        }
        for bad in ["", ":a", "Admin", "a b", &"r".repeat(65)] {
            assert!(!is_valid_role_name(bad), "{bad}");
        }
    }

    #[test]
    fn scope_tokens_exclude_space_quote_and_backslash() {
        assert!(is_valid_scope_token("telemetry:write"));
        assert!(is_valid_scope_token("https://api.example/read"));
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert!(!is_valid_scope_token(bad), "{bad}");
        }
    }

    #[test]
    fn prefixed_ids_have_their_shape() {
        let id = new_prefixed_id("usr");
        assert!(has_id_shape(&id, "usr"));
        assert!(!has_id_shape(&id, "sec"));
        assert!(!has_id_shape("usr_", "usr"));
        assert!(!has_id_shape("usr_a/b", "usr"));
    }
}
