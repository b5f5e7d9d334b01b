//! Shared application state, and the first-start bootstrap that creates the
//! workspace, the signing keys and the admin keys.

use std::collections::HashMap;
use std::sync::Arc;

use latchkey_core::clock::Clock;
use latchkey_core::credential::{self, CredentialDigest, CredentialKind};
use latchkey_core::sealing::MasterKey;
use latchkey_core::signing::SigningKey;
use latchkey_core::{ids, Secret};
use latchkey_store::{AdminKeyRecord, SigningKeyRecord, Store, StoreError, WorkspaceRecord};
use latchkey_types::Mode;
use latchkey_verify::jwt::{verify_jwt, Expectations};
use latchkey_verify::Claims;

use crate::authn::cache::Caches;
use crate::authn::coordination::{RateLimiter, Redis, ReplayGuard};
use crate::authn::keycheck::UsageRecorder;
use crate::config::Config;
use crate::startup::ServerError;
use crate::tokens::denylist::DenyList;
use crate::tokens::keyring::{resolve_master_key, KeyManager};

/// The state every handler shares.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The fields of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The store.
    pub store: Store,
    /// Resolved configuration.
    pub config: Config,
    /// The clock (injected in tests).
    pub clock: Arc<dyn Clock>,
    /// The workspace.
    pub workspace: WorkspaceRecord,
    /// Signing keys and the key ring.
    pub keys: KeyManager,
    /// Admin key digests → mode. Admin keys are only created at bootstrap,
    /// so memory is authoritative and admin checks never reach the store.
    pub admin_keys: HashMap<CredentialDigest, AdminKeyInfo>,
    /// Principal, tree, catalog and API-key caches.
    pub caches: Arc<Caches>,
    /// Per-key rate limits.
    pub limiter: RateLimiter,
    /// Used client-assertion ids.
    pub replay: ReplayGuard,
    /// Failed-attempt counters of the credential-checking endpoints.
    pub bruteforce: crate::authn::bruteforce::Guard,
    /// Failed-step counters of logins, per identifier and address.
    pub login_guard: crate::authn::bruteforce::Guard,
    /// The password-hashing queue.
    pub passwords: crate::login::hashing::PasswordPool,
    /// Where login codes and links are sent.
    pub delivery: crate::login::delivery::Delivery,
    /// Batched API-key last-used times.
    pub usage: Arc<UsageRecorder>,
    /// Whether each mode has imported keys only a slow hash finds.
    pub legacy_keys: crate::authn::keycheck::SlowLegacyKeys,
    /// Revoked access tokens.
    pub deny_list: DenyList,
    /// Trusted issuers (workload identity federation) and their keys.
    pub federation: crate::federation::workload::Federation,
    /// Identity providers (SSO), discovered and with their keys.
    pub providers: crate::federation::sso::Providers,
    /// The audit log's queue.
    pub audit: crate::admin::audit::AuditLog,
    /// Prometheus counters.
    pub metrics: Arc<crate::http::metrics::Metrics>,
    /// Background tasks to stop with the server.
    background: parking_lot::Mutex<Vec<tokio::task::AbortHandle>>,
}

/// A weak handle on the state, for background tasks that must not keep a
/// stopped server alive.
#[derive(Debug, Clone)]
pub struct WeakState(std::sync::Weak<Inner>);

impl WeakState {
    /// The state, while the server is alive.
    pub fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(AppState)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Verifies one of our own access tokens of `mode`: signature (by a key
    /// of that mode), expiry, issuer, type, mode, and the deny-list. `None` when it is not active.
    pub fn verify_access_token(&self, token: &str, mode: Mode) -> Option<Claims> {
        let expectations = Expectations::new(self.config.issuer_of(mode).to_owned()).mode(mode);
        let now = self.clock.now();
        let ring = self.keys.ring(now);
        let keys = ring.verifying(mode)?;
        let claims = verify_jwt(token, keys, &expectations, now.unix_timestamp()).ok()?;
        (!self.deny_list.contains(claims.jti())).then_some(claims)
    }

    /// Stops the background tasks registered with [`AppState::on_stop`].
    pub fn stop_background(&self) {
        for task in self.background.lock().drain(..) {
            task.abort();
        }
    }

    /// Registers a background task to abort when the server stops.
    pub fn on_stop(&self, task: tokio::task::AbortHandle) {
        self.background.lock().push(task);
    }

    /// A weak handle for background tasks.
    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.0))
    }

    /// Runs `pass` every `period`, the first time one period from now, in
    /// its own task, until the state is dropped. A slow pass delays the next
    /// one rather than bunching them. Every periodic duty of a node (the
    /// usage flush, the deny-list sync, signing-key maintenance) runs here.
    pub fn every<F, Fut>(&self, period: std::time::Duration, pass: F)
    where
        F: Fn(AppState) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let weak = self.downgrade();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut tick = tokio::time::interval_at(start, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(state) = weak.upgrade() else { break };
                pass(state).await;
            }
        });
    }

    /// Loads the state, bootstrapping an empty store first.
    pub async fn load(
        store: Store,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<AppState, ServerError> {
        let master = resolve_master_key(&config.master_key)?;
        let workspace = match store.workspace().await? {
            Some(ws) => ws,
            None => bootstrap(&store, &config, clock.as_ref(), &master).await?,
        };
        let keys = KeyManager::load(&store, master, clock.now()).await?;
        for mode in Mode::ALL {
            if keys.signing(mode, clock.now()).is_none() {
                return Err(ServerError::Bootstrap(format!(
                    "no {mode} signing key in the store"
                )));
            }
        }
        let admin_keys = load_admin_keys(&store).await?;
        let deny_list = DenyList::load(&store, clock.now()).await?;
        let redis = match &config.redis_url {
            Some(url) => Some(Redis::connect(url.expose()).await.map_err(|e| {
                ServerError::Bootstrap(format!("cannot connect to Redis at redis_url: {e}"))
            })?),
            None => None,
        };
        let cache_ttl = config.cache_ttl;
        let cache_sizes = config.cache_sizes;
        let bruteforce = crate::authn::bruteforce::Guard::shared(
            config.bruteforce,
            redis.clone(),
            &workspace.id,
        );
        let login_guard =
            crate::login::engine::guard(config.bruteforce, redis.clone(), &workspace.id);
        let delivery = crate::login::delivery::Delivery::new(&config.delivery)
            .map_err(ServerError::Bootstrap)?;
        let metrics = Arc::new(crate::http::metrics::Metrics::default());
        let observed = Arc::clone(&metrics);
        store.set_observer(Box::new(move |op, elapsed| observed.store_op(op, elapsed)));
        let audit = crate::admin::audit::AuditLog::start(
            store.clone(),
            crate::admin::audit::QUEUE_CAPACITY,
        );
        Ok(AppState(Arc::new(Inner {
            store,
            config,
            clock,
            workspace,
            keys,
            admin_keys,
            caches: Arc::new(Caches::new(cache_ttl, cache_sizes)),
            limiter: RateLimiter::new(redis.clone()),
            replay: ReplayGuard::new(redis.clone()),
            bruteforce,
            login_guard,
            passwords: crate::login::hashing::PasswordPool::default(),
            delivery,
            usage: Arc::new(UsageRecorder::default()),
            legacy_keys: Default::default(),
            deny_list,
            federation: crate::federation::workload::Federation::default(),
            providers: crate::federation::sso::Providers::default(),
            audit,
            metrics,
            background: parking_lot::Mutex::default(),
        })))
    }
}

/// What the server knows of an admin key (its digest is the map's key).
#[derive(Debug, Clone)]
pub struct AdminKeyInfo {
    /// The partition it administers.
    pub mode: Mode,
    /// Its `adm_…` id, the actor of audit events.
    pub id: Arc<str>,
}

async fn load_admin_keys(
    store: &Store,
) -> Result<HashMap<CredentialDigest, AdminKeyInfo>, ServerError> {
    Ok(store
        .admin_keys()
        .await?
        .into_iter()
        .map(|k| {
            (
                k.digest,
                AdminKeyInfo {
                    mode: k.mode,
                    id: k.id.into(),
                },
            )
        })
        .collect())
}

/// The audit events of the first start, committed with it: in each mode's
/// partition, the workspace, its first signing key and its admin key (and
/// whether that key was generated here or given in the environment).
fn bootstrap_events(
    workspace: &WorkspaceRecord,
    signing: &[SigningKeyRecord],
    admin: &[AdminKeyRecord],
    generated: &[(Mode, Secret)],
    now: time::OffsetDateTime,
) -> Vec<latchkey_types::audit::AuditEvent> {
    use crate::admin::audit::event_at;
    use latchkey_types::audit::{AuditAction, AuditActor, AuditTarget};
    let mut events = Vec::new();
    for mode in Mode::ALL {
        events.push(
            event_at(
                now,
                Some(mode),
                AuditAction::WorkspaceCreated,
                AuditActor::system(),
                AuditTarget::new("workspace", &workspace.id),
                None,
            )
            .with_tenant(&workspace.id),
        );
        for key in signing.iter().filter(|k| k.mode == mode) {
            events.push(
                event_at(
                    now,
                    Some(mode),
                    AuditAction::SigningKeyCreated,
                    AuditActor::system(),
                    AuditTarget::new("signing_key", &key.kid),
                    None,
                )
                .with_detail("alg", key.alg.clone()),
            );
        }
        for key in admin.iter().filter(|k| k.mode == mode) {
            let source = if generated.iter().any(|(m, _)| *m == mode) {
                "generated"
            } else {
                "environment"
            };
            events.push(
                event_at(
                    now,
                    Some(mode),
                    AuditAction::AdminKeyCreated,
                    AuditActor::system(),
                    AuditTarget::new("admin_key", &key.id),
                    None,
                )
                .with_detail("source", source),
            );
        }
    }
    events
}

/// Creates the workspace, one signing key and one admin key per mode. Admin
/// keys come from `LATCHKEY_BOOTSTRAP_*_ADMIN_KEY` when set (they must be
/// well-formed admin keys of the right mode), else they are generated and
/// printed once on stderr.
async fn bootstrap(
    store: &Store,
    config: &Config,
    clock: &dyn Clock,
    master: &MasterKey,
) -> Result<WorkspaceRecord, ServerError> {
    let now = clock.now();
    let workspace = WorkspaceRecord {
        id: config
            .workspace_id
            .clone()
            .unwrap_or_else(ids::new_tenant_id),
        name: config.workspace_name.clone(),
        created_at: now,
    };
    let mut signing = Vec::new();
    for (mode, alg) in [
        (Mode::Test, config.signing_algs.0),
        (Mode::Live, config.signing_algs.1),
    ] {
        let key = SigningKey::generate(alg)
            .map_err(|e| ServerError::Bootstrap(format!("cannot generate a signing key: {e}")))?;
        let sealed = master
            .seal(key.kid(), key.pkcs8_der())
            .map_err(|e| ServerError::Bootstrap(format!("cannot seal a signing key: {e}")))?;
        signing.push(SigningKeyRecord {
            kid: key.kid().to_owned(),
            mode,
            alg: alg.as_str().to_owned(),
            private_pkcs8: sealed,
            created_at: now,
            not_before: now,
        });
    }
    let mut admin = Vec::new();
    let mut generated: Vec<(Mode, Secret)> = Vec::new();
    for (mode, given) in [
        (Mode::Test, &config.bootstrap_keys.test),
        (Mode::Live, &config.bootstrap_keys.live),
    ] {
        let value = match given {
            Some(v) => {
                let info = credential::parse(v.expose()).map_err(|e| {
                    ServerError::Bootstrap(format!(
                        "LATCHKEY_BOOTSTRAP_{}_ADMIN_KEY is not a valid admin key: {e}",
                        mode.as_str().to_uppercase()
                    ))
                })?;
                if info.mode != mode || info.kind != CredentialKind::Admin {
                    return Err(ServerError::Bootstrap(format!(
                        "LATCHKEY_BOOTSTRAP_{}_ADMIN_KEY must be an lk_{}_admin_… key",
                        mode.as_str().to_uppercase(),
                        mode
                    )));
                }
                v.clone()
            }
            None => {
                let v = credential::generate(mode, CredentialKind::Admin);
                generated.push((mode, v.clone()));
                v
            }
        };
        admin.push(AdminKeyRecord {
            id: ids::new_prefixed_id("adm"),
            mode,
            digest: CredentialDigest::of(value.expose()),
            created_at: now,
        });
    }
    let events = bootstrap_events(&workspace, &signing, &admin, &generated, now);
    match store.bootstrap(&workspace, &signing, &admin, &events).await {
        Ok(()) => {}
        // Another node bootstrapped the same store first: use its workspace.
        Err(StoreError::Conflict(_)) => {
            return store
                .workspace()
                .await?
                .ok_or_else(|| ServerError::Bootstrap("workspace vanished".into()));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(workspace = %workspace.id, "bootstrapped a new workspace");
    if !generated.is_empty() {
        // Printed once, on stderr, and never logged: this is the only time
        // these keys can be seen.
        let mut text = String::from(
            "\n=== Latchkey first start: admin keys (shown once, store them now) ===\n",
        );
        for (mode, key) in &generated {
            text.push_str(&format!(
                "  LATCHKEY_{}_ADMIN_KEY={}\n",
                mode.as_str().to_uppercase(),
                key.expose()
            ));
        }
        text.push_str(&format!("  workspace: {}\n", workspace.id));
        text.push_str("=====================================================================\n");
        eprint!("{text}");
    }
    Ok(workspace)
}
