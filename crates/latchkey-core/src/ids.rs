//! Identifiers: generation of tenant ids and record ids. Their shapes (and
//! the checks) are the types' ([`latchkey_types::ids`]).

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

#[cfg(test)]
mod tests {
    use latchkey_types::ids::{ApiKeyId, Identifier as _, TenantId, UserId};

    use super::*;

    #[test]
    fn generated_ids_have_their_shape() {
        let tenant = new_tenant_id();
        assert_eq!(tenant.len(), 8);
        assert!(TenantId::is_valid(&tenant));
        assert!(UserId::is_valid(&new_prefixed_id("usr")));
        assert!(ApiKeyId::is_valid(&new_prefixed_id("key")));
    }
}
