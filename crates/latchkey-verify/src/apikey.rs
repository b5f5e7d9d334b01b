//! API keys on the receiving side, without any network: the public
//! credential format (`lk_<mode>_<type>_<43 base62><6 base62 CRC-32>`), so
//! typos and junk are refused before any lookup, and [`LocalKeyList`], the
//! SHA-256 digests of the keys a device accepts.
//!
//! The format is Latchkey's documented public contract, defined once in
//! `latchkey_types::credential` and shared with the server and the CLI.

use std::collections::HashSet;

pub use latchkey_types::credential::{
    parse as parse_credential, CredentialDigest, CredentialError, CredentialInfo, CredentialKind,
};

/// The SHA-256 digest of a credential: what the issuer stores and what a
/// device keeps instead of the key itself.
pub type KeyDigest = CredentialDigest;

/// A digest in a [`LocalKeyList`] was not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index} is not a SHA-256 digest in hex")]
pub struct InvalidDigest {
    /// The position of the bad entry.
    pub index: usize,
}

/// The API keys a device accepts, held as SHA-256 digests (hex), so the
/// device never stores a usable key.
///
/// ```
/// use latchkey_verify::LocalKeyList;
/// # let key = "lk_test_key_0000000000000000000000000000000000000000000ZZZZZZ";
/// let list = LocalKeyList::from_digests([
///     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
/// ]).unwrap();
/// assert!(!list.contains(key));
/// ```
#[derive(Clone, Default)]
pub struct LocalKeyList {
    digests: HashSet<KeyDigest>,
}

impl std::fmt::Debug for LocalKeyList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKeyList")
            .field("len", &self.digests.len())
            .finish()
    }
}

impl LocalKeyList {
    /// A list of these hex SHA-256 digests (as `sha256sum` prints them, or
    /// as [`KeyDigest::to_hex`] writes them).
    ///
    /// # Errors
    /// [`InvalidDigest`] naming the first entry that is not 64 hex digits.
    pub fn from_digests<I>(digests: I) -> Result<Self, InvalidDigest>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let digests = digests
            .into_iter()
            .enumerate()
            .map(|(index, d)| KeyDigest::from_hex(d.as_ref().trim()).ok_or(InvalidDigest { index }))
            .collect::<Result<_, _>>()?;
        Ok(LocalKeyList { digests })
    }

    /// Adds the digest of a key.
    pub fn insert(&mut self, digest: KeyDigest) {
        self.digests.insert(digest);
    }

    /// Removes the digest of a key; whether it was there.
    pub fn remove(&mut self, digest: &KeyDigest) -> bool {
        self.digests.remove(digest)
    }

    /// Whether `key` is a well-formed API key (type `key`, valid checksum)
    /// whose digest is in the list. A malformed key is refused before any
    /// digest is computed or looked up.
    pub fn contains(&self, key: &str) -> bool {
        self.check(key).is_some()
    }

    /// Like [`LocalKeyList::contains`], and says the key's mode.
    pub fn check(&self, key: &str) -> Option<CredentialInfo> {
        let info = parse_credential(key).ok()?;
        if info.kind != CredentialKind::ApiKey {
            return None;
        }
        let wanted = KeyDigest::of(key);
        // The set finds the candidate in O(1); the final comparison is in
        // constant time so the answer's timing does not depend on how much
        // of the digest matched.
        let found = self.digests.get(&wanted)?;
        found.ct_eq(&wanted).then_some(info)
    }

    /// The number of digests.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_types::credential::{with_checksum, BASE62, RANDOM_LEN};
    use latchkey_types::Mode;

    /// A well-formed API key of `mode` whose body is derived from `seed`
    /// (the format and its parser are tested in `latchkey_types::credential`;
    /// these tests are about the local list).
    fn key(mode: Mode, seed: usize) -> String {
        credential(mode, CredentialKind::ApiKey, seed)
    }

    fn credential(mode: Mode, kind: CredentialKind, seed: usize) -> String {
        let body: String = (0..RANDOM_LEN)
            .map(|i| char::from(BASE62[(seed * 7 + i * 13) % 62]))
            .collect();
        with_checksum(mode, kind, &body)
    }

    #[test]
    fn a_local_list_accepts_exactly_its_keys() {
        let k1 = key(Mode::Live, 1);
        let k2 = key(Mode::Test, 2);
        let other = key(Mode::Live, 3);
        let list =
            LocalKeyList::from_digests([KeyDigest::of(&k1).to_hex(), KeyDigest::of(&k2).to_hex()])
                .unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&k1));
        assert_eq!(list.check(&k2).unwrap().mode, Mode::Test);
        assert!(!list.contains(&other));
        assert!(!list.contains(""));
    }

    #[test]
    fn a_listed_digest_of_a_malformed_or_non_api_key_value_is_not_accepted() {
        // Even if someone lists the digest of a junk string or an admin key,
        // only well-formed API keys can match.
        let junk = "hunter2";
        let admin = credential(Mode::Live, CredentialKind::Admin, 4);
        let mut typo = key(Mode::Live, 5).into_bytes();
        typo[30] = if typo[30] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        let list = LocalKeyList::from_digests(
            [junk, admin.as_str(), typo.as_str()].map(|v| KeyDigest::of(v).to_hex()),
        )
        .unwrap();
        assert!(!list.contains(junk));
        assert!(!list.contains(&admin));
        assert!(!list.contains(&typo));
    }

    #[test]
    fn a_bad_digest_names_its_entry() {
        let good = KeyDigest::of("x").to_hex();
        assert_eq!(
            LocalKeyList::from_digests([good.as_str(), "nothex"]).unwrap_err(),
            InvalidDigest { index: 1 }
        );
        let mut list = LocalKeyList::from_digests([format!(" {good}\n")]).unwrap();
        assert!(list.remove(&KeyDigest::of("x")));
        assert!(list.is_empty());
    }
}
