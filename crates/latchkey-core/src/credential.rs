//! Credentials: the format and digest are Latchkey's public contract and
//! live in `latchkey_types::credential` (re-exported here); generating one
//! needs randomness, so it lives here.

use rand::Rng;

pub use latchkey_types::credential::*;

use crate::{Mode, Secret};

/// Generates a new credential of this mode and kind.
pub fn generate(mode: Mode, kind: CredentialKind) -> Secret {
    let mut rng = rand::thread_rng();
    let random: String = (0..RANDOM_LEN)
        .map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())]))
        .collect();
    Secret::new(with_checksum(mode, kind, &random))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_parse_back_and_differ() {
        for mode in Mode::ALL {
            for kind in [
                CredentialKind::Admin,
                CredentialKind::ApiKey,
                CredentialKind::ClientSecret,
            ] {
                let c = generate(mode, kind);
                assert_eq!(parse(c.expose()), Ok(CredentialInfo { mode, kind }));
                assert_ne!(c, generate(mode, kind));
            }
        }
    }
}
