//! Password hashing off the async workers, on a budget. Argon2id costs tens
//! of milliseconds of CPU by design, so a flood of wrong passwords must not
//! take the CPU from token issuance: hashes run one at a time on a blocking
//! thread, and after each one the next waits long enough that hashing uses
//! at most [`CPU_SHARE`] of one core. A lone login waits for nothing (the
//! pause follows a hash, it does not precede it); a flood queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::login::password;
use latchkey_core::Secret;
use tokio::sync::Semaphore;

/// The most of one core password hashing may use, over time.
pub const CPU_SHARE: f64 = 0.25;

/// What a password check found.
#[derive(Debug, Default)]
pub struct PasswordCheck {
    /// The password matches.
    pub matched: bool,
    /// It matched an imported hash: store this one in its place.
    pub rehashed: Option<Rehash>,
}

/// An imported hash and the Argon2id hash that replaces it.
#[derive(Debug)]
pub struct Rehash {
    /// The hash the password matched (replaced only if still stored).
    pub old: String,
    /// Argon2id of the same password.
    pub new: String,
}

/// The hashing queue.
#[derive(Debug, Clone)]
pub struct PasswordPool {
    turn: Arc<Semaphore>,
    share: f64,
}

impl Default for PasswordPool {
    fn default() -> Self {
        PasswordPool::new(CPU_SHARE)
    }
}

impl PasswordPool {
    /// A pool that keeps hashing to `share` of one core.
    pub fn new(share: f64) -> Self {
        PasswordPool {
            turn: Arc::new(Semaphore::new(1)),
            share: share.clamp(0.01, 1.0),
        }
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let permit = Arc::clone(&self.turn).acquire_owned().await.ok()?;
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(work).await.ok();
        let pause = started.elapsed().mul_f64((1.0 - self.share) / self.share);
        // The permit is held through the pause, so the next hash waits; this
        // caller does not.
        tokio::spawn(async move {
            tokio::time::sleep(pause.min(Duration::from_secs(2))).await;
            drop(permit);
        });
        result
    }

    /// Whether `presented` matches the stored hash; with no hash (an
    /// identifier that names nobody, a user without a password), the same
    /// work against a decoy, and `false`. A match against an imported hash
    /// (bcrypt, PBKDF2, …) also gives the Argon2id hash to store in its
    /// place; a mismatch against one does the same Argon2id work against
    /// the decoy, so right and wrong passwords cost alike there too, and
    /// never less than against Latchkey's own hashes.
    pub async fn verify(&self, stored: Option<String>, presented: Secret) -> PasswordCheck {
        self.run(move || {
            let pw = presented.expose();
            match stored {
                Some(hash) if password::is_current(&hash) => PasswordCheck {
                    matched: password::verify(&hash, pw),
                    rehashed: None,
                },
                Some(hash) => match password::check(&hash, pw) {
                    password::Verdict::Match { rehash: true } => PasswordCheck {
                        matched: true,
                        rehashed: Some(Rehash {
                            old: hash,
                            new: password::hash(pw),
                        }),
                    },
                    verdict => {
                        password::verify_decoy(pw);
                        PasswordCheck {
                            matched: verdict != password::Verdict::Mismatch,
                            rehashed: None,
                        }
                    }
                },
                None => PasswordCheck {
                    matched: password::verify_decoy(pw),
                    rehashed: None,
                },
            }
        })
        .await
        .unwrap_or_default()
    }

    /// Other CPU-heavy credential work (an imported key's bcrypt) on the
    /// same budget.
    pub async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        self.run(work).await
    }

    /// A new Argon2id hash of `password`.
    pub async fn hash(&self, password: Secret) -> Option<String> {
        self.run(move || password::hash(password.expose())).await
    }
}
