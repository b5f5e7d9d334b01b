//! Encryption at rest of private signing keys: AES-256-GCM under a 256-bit
//! master key, with the key id as associated data so a sealed key cannot be
//! swapped onto another record. Sealed values read `v1.<base64(nonce||ct)>`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

const PREFIX: &str = "v1.";

/// Why sealing or opening failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// The master key is not 32 bytes.
    #[error("the master key must be 32 bytes (base64 or hex encoded)")]
    BadMasterKey,
    /// The value was not sealed by this scheme.
    #[error("not a sealed value")]
    NotSealed,
    /// Wrong master key, wrong key id, or tampered data.
    #[error("the sealed value cannot be opened with this master key")]
    Unopenable,
    /// The random source or the cipher failed.
    #[error("crypto backend failure")]
    Crypto,
}

/// The master key. Its `Debug` never shows it.
pub struct MasterKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// A master key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, SealError> {
        if bytes.len() != 32 {
            return Err(SealError::BadMasterKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadMasterKey)?;
        Ok(MasterKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Parses the text form: 32 bytes as base64 (standard or URL-safe) or as
    /// 64 hex digits; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<MasterKey, SealError> {
        let t = text.trim();
        if t.len() == 64 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
            let bytes: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&t[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect();
            return Self::from_bytes(&bytes);
        }
        let bytes = STANDARD
            .decode(t)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(t))
            .map_err(|_| SealError::BadMasterKey)?;
        Self::from_bytes(&bytes)
    }

    /// A new random master key, in its text form (base64).
    pub fn generate_text() -> Result<String, SealError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError::Crypto)?;
        Ok(STANDARD.encode(bytes))
    }

    /// Encrypts `plaintext`, bound to `context` (the key id).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Crypto)?;
        let mut data = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError::Crypto)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Decrypts a value sealed with [`MasterKey::seal`] and the same context.
    pub fn open(&self, context: &str, sealed: &str) -> Result<Vec<u8>, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::NotSealed)?;
        let raw = STANDARD.decode(body).map_err(|_| SealError::NotSealed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(SealError::NotSealed);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::NotSealed)?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut data)
            .map_err(|_| SealError::Unopenable)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_context() {
        let key = MasterKey::parse(&MasterKey::generate_text().unwrap()).unwrap();
        let sealed = key.seal("kid-1", b"private key bytes").unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("private"));
        assert_eq!(key.open("kid-1", &sealed).unwrap(), b"private key bytes");
        assert_eq!(key.open("kid-2", &sealed), Err(SealError::Unopenable));
        let other = MasterKey::parse(&MasterKey::generate_text().unwrap()).unwrap();
        assert_eq!(other.open("kid-1", &sealed), Err(SealError::Unopenable));
        let mut tampered = sealed.clone().into_bytes();
        let i = tampered.len() - 3;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert!(key
            .open("kid-1", &String::from_utf8(tampered).unwrap())
            .is_err());
        assert_eq!(key.open("kid-1", "plain"), Err(SealError::NotSealed));
        // Two seals of the same data differ (random nonce).
        assert_ne!(
            key.seal("kid-1", b"x").unwrap(),
            key.seal("kid-1", b"x").unwrap()
        );
    }

    #[test]
    fn master_keys_parse_from_base64_or_hex_and_must_be_32_bytes() {
        assert!(MasterKey::parse(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::parse(&STANDARD.encode([7u8; 32])).is_ok());
        assert_eq!(
            MasterKey::parse("short").unwrap_err(),
            SealError::BadMasterKey
        );
        assert_eq!(
            MasterKey::parse(&STANDARD.encode([7u8; 16])).unwrap_err(),
            SealError::BadMasterKey
        );
        assert_eq!(
            format!("{:?}", MasterKey::parse(&"ab".repeat(32)).unwrap()),
            "MasterKey([redacted])"
        );
    }
}
