//! Signing keys at run time: private keys opened with the master key and
//! kept in memory, and the key ring (signing key per mode, JWKS, verifying
//! keys) evaluated from the schedule in `latchkey_core::keyplan`. The ring is
//! recomputed only when the schedule says a phase changes, so the hot path
//! pays one read lock and an `Arc` clone.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use latchkey_core::clock::to_unix_ms;
use latchkey_core::keyplan::{self, KeyPlan, ScheduledKey};
use latchkey_core::sealing::MasterKey;
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_core::token;
use latchkey_store::{SigningKeyRecord, Store};
use latchkey_types::oauth::JwkSet;
use latchkey_types::Mode;
use latchkey_verify::jwks::KeySet;
use parking_lot::RwLock;
use time::OffsetDateTime;

use crate::config::{MasterKeySource, MAX_TOKEN_TTL_SECONDS};
use crate::startup::ServerError;

/// A private key ready to sign, with its precomputed JWS header.
#[derive(Debug)]
pub struct LoadedKey {
    /// The key.
    pub key: SigningKey,
    /// `base64url({"alg","kid","typ":"at+jwt"})`.
    pub header: String,
    /// Its mode.
    pub mode: Mode,
    /// Creation (publication) time.
    pub created_at: OffsetDateTime,
    /// When it starts signing.
    pub not_before: OffsetDateTime,
}

/// The schedule evaluated for a span of time in which nothing changes.
#[derive(Debug)]
pub struct KeyRing {
    /// Recompute at or after this instant (Unix milliseconds).
    valid_until: i64,
    /// Computed at (Unix milliseconds); a clock that moved back also
    /// recomputes.
    computed_at: i64,
    /// The signing key of each mode.
    signing: HashMap<Mode, Arc<LoadedKey>>,
    /// The JWKS document of each mode: each mode is its own issuer, and
    /// its `jwks_uri` holds only its keys.
    jwks_json: HashMap<Mode, axum::body::Bytes>,
    /// The published keys of each mode, parsed for verifying our own
    /// tokens: a token of a mode verifies only with that mode's keys, so a
    /// test key can never vouch for a token that says `mode: live`.
    verifying: HashMap<Mode, KeySet>,
    /// The schedule at `computed_at` (times in Unix milliseconds).
    pub plan: KeyPlan,
}

/// Every signing key of the store, and the current ring.
#[derive(Debug)]
pub struct KeyManager {
    master: MasterKey,
    loaded: RwLock<HashMap<String, Arc<LoadedKey>>>,
    ring: RwLock<Arc<KeyRing>>,
}

/// Tokens can live at most this long (plus clock leeway), so a retired key
/// stays published this long after it stopped signing.
pub const MAX_TOKEN_LIFETIME: i64 = MAX_TOKEN_TTL_SECONDS + 60;

impl KeyManager {
    /// Opens the master key and every stored key.
    pub async fn load(
        store: &Store,
        master: MasterKey,
        now: OffsetDateTime,
    ) -> Result<KeyManager, ServerError> {
        let manager = KeyManager {
            master,
            loaded: RwLock::new(HashMap::new()),
            ring: RwLock::new(Arc::new(KeyRing::empty())),
        };
        manager.reload(store, now).await?;
        Ok(manager)
    }

    /// The master key, for the other secrets sealed with it (TOTP secrets,
    /// refresh tokens kept for retries), each under its own context.
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Seals a new key's private half for the store.
    pub fn seal(&self, key: &SigningKey) -> Result<String, ServerError> {
        self.master
            .seal(key.kid(), key.pkcs8_der())
            .map_err(|e| ServerError::Bootstrap(format!("cannot seal a signing key: {e}")))
    }

    /// Reads the store's keys (new ones from other nodes or rotations) and
    /// recomputes the ring.
    pub async fn reload(&self, store: &Store, now: OffsetDateTime) -> Result<(), ServerError> {
        let records = store.signing_keys().await?;
        for record in &records {
            if self.loaded.read().contains_key(&record.kid) {
                continue;
            }
            let key = self.open(record)?;
            self.loaded
                .write()
                .insert(record.kid.clone(), Arc::new(key));
        }
        self.recompute(to_unix_ms(now));
        Ok(())
    }

    fn open(&self, record: &SigningKeyRecord) -> Result<LoadedKey, ServerError> {
        let alg = Algorithm::parse(&record.alg)
            .ok_or_else(|| ServerError::Bootstrap(format!("unknown algorithm {:?}", record.alg)))?;
        let der = self
            .master
            .open(&record.kid, &record.private_pkcs8)
            .map_err(|e| {
                ServerError::Bootstrap(format!(
                    "signing key {}: {e} (is LATCHKEY_MASTER_KEY the one this store was created with?)",
                    record.kid
                ))
            })?;
        let key = SigningKey::from_pkcs8(alg, &der)
            .map_err(|e| ServerError::Bootstrap(format!("signing key {}: {e}", record.kid)))?;
        Ok(LoadedKey {
            header: token::encoded_header(&key),
            key,
            mode: record.mode,
            created_at: record.created_at,
            not_before: record.not_before,
        })
    }

    fn recompute(&self, now: i64) {
        let loaded = self.loaded.read();
        let scheduled: Vec<ScheduledKey> = loaded
            .iter()
            .map(|(kid, k)| ScheduledKey {
                kid: kid.clone(),
                mode: k.mode,
                created_at: to_unix_ms(k.created_at),
                not_before: to_unix_ms(k.not_before),
            })
            .collect();
        let plan = keyplan::plan(&scheduled, now, MAX_TOKEN_LIFETIME * 1000);
        let signing = plan
            .signing
            .iter()
            .filter_map(|(mode, kid)| loaded.get(kid).map(|k| (*mode, k.clone())))
            .collect();
        let jwks_json = Mode::ALL
            .into_iter()
            .map(|mode| {
                let jwks = JwkSet {
                    keys: plan
                        .published()
                        .filter_map(|s| loaded.get(&s.kid))
                        .filter(|k| k.mode == mode)
                        .map(|k| k.key.public_jwk().clone())
                        .collect(),
                };
                let json = serde_json::to_vec(&jwks).unwrap_or_else(|_| EMPTY_JWKS.to_vec());
                (mode, axum::body::Bytes::from(json))
            })
            .collect();
        let verifying = Mode::ALL
            .into_iter()
            .map(|mode| {
                let keys = plan
                    .published()
                    .filter_map(|s| loaded.get(&s.kid))
                    .filter(|k| k.mode == mode)
                    .map(|k| k.key.public_jwk());
                (mode, KeySet::from_keys(keys).unwrap_or_default())
            })
            .collect();
        let ring = KeyRing {
            valid_until: plan.next_change.unwrap_or(i64::MAX),
            computed_at: now,
            signing,
            jwks_json,
            verifying,
            plan,
        };
        *self.ring.write() = Arc::new(ring);
    }

    /// The ring in force at `now`.
    pub fn ring(&self, now: OffsetDateTime) -> Arc<KeyRing> {
        let now = to_unix_ms(now);
        {
            let ring = self.ring.read();
            if now < ring.valid_until && now >= ring.computed_at {
                return ring.clone();
            }
        }
        self.recompute(now);
        self.ring.read().clone()
    }

    /// The key that signs tokens of `mode` at `now`.
    pub fn signing(&self, mode: Mode, now: OffsetDateTime) -> Option<Arc<LoadedKey>> {
        self.ring(now).signing.get(&mode).cloned()
    }

    /// Every loaded key, for listing.
    pub fn all(&self) -> Vec<(String, Arc<LoadedKey>)> {
        self.loaded
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The JWKS of a mode without keys.
const EMPTY_JWKS: &[u8] = b"{\"keys\":[]}";

impl KeyRing {
    /// The JWKS document of `mode`: its published keys only.
    pub fn jwks_json(&self, mode: Mode) -> axum::body::Bytes {
        self.jwks_json
            .get(&mode)
            .cloned()
            .unwrap_or_else(|| axum::body::Bytes::from_static(EMPTY_JWKS))
    }

    /// The published keys of `mode` (none before the first load).
    pub fn verifying(&self, mode: Mode) -> Option<&KeySet> {
        self.verifying.get(&mode)
    }

    fn empty() -> KeyRing {
        KeyRing {
            valid_until: i64::MIN,
            computed_at: i64::MIN,
            signing: HashMap::new(),
            jwks_json: HashMap::new(),
            verifying: HashMap::new(),
            plan: keyplan::plan(&[], 0, 0),
        }
    }
}

/// Resolves the master key: the value given, a file given, or the file
/// `master.key` in the data directory, created (mode 0600) on first start.
pub fn resolve_master_key(source: &MasterKeySource) -> Result<MasterKey, ServerError> {
    let bad = |what: String| ServerError::Bootstrap(what);
    match source {
        MasterKeySource::Value(secret) => {
            MasterKey::parse(secret.expose()).map_err(|e| bad(format!("LATCHKEY_MASTER_KEY: {e}")))
        }
        MasterKeySource::File(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| bad(format!("master key file {}: {e}", path.display())))?;
            MasterKey::parse(&text)
                .map_err(|e| bad(format!("master key file {}: {e}", path.display())))
        }
        MasterKeySource::DataDir(dir) => {
            let path = dir.join("master.key");
            if !path.exists() {
                create_key_file(dir, &path)?;
                tracing::info!(path = %path.display(), "created a master key file; back it up with the database");
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| bad(format!("master key file {}: {e}", path.display())))?;
            MasterKey::parse(&text)
                .map_err(|e| bad(format!("master key file {}: {e}", path.display())))
        }
    }
}

fn create_key_file(dir: &Path, path: &Path) -> Result<(), ServerError> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let text = MasterKey::generate_text().map_err(|e| ServerError::Bootstrap(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}
