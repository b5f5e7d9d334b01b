//! Latchkey's store: SQLite (the embedded default) and PostgreSQL behind one
//! type, [`Store`]. This crate is the only place that knows SQL.
//!
//! Both backends run through sqlx's `Any` driver with the same statements:
//! the schema uses only `TEXT` and `BIGINT` columns and `$n` placeholders,
//! which both databases accept, so one implementation (and one conformance
//! suite) covers both. Each backend still has its own versioned migrations.
//! Writes that belong together run in one transaction.

mod api_keys;
mod audit;
mod bootstrap;
mod changes;
mod export;
mod federation;
mod import;
mod logins;
mod notify;
mod outbox;
mod principals;
mod records;
mod revoked_tokens;
mod roles;
mod sessions;
mod sso;
mod tenants;
mod user_keys;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor, Transaction};

pub use api_keys::{ApiKeyMatch, LegacyCandidate, NewApiKey};
pub use audit::AuditFilter;
pub use changes::{Invalidation, Written};
pub use export::ExportSection;
pub use federation::Provisioned;
pub use import::{Applied, ImportItem, ImportMemory, ImportTx, Outcome, Refused};
pub use logins::{Challenge, LoginRecord, RemovableFactor, UserFactors};
pub use notify::{ListenEvent, StoreListener, NOTIFY_CHANNEL};
pub use outbox::OutboxMessage;
pub use records::*;
pub use sessions::{Refreshed, Rotation, SessionRecord};
pub use sso::{Identity, IdentityProviderRecord, NewLinkedUser, ProviderSecret, SsoFlow};

/// What went wrong in the store, in terms callers can act on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named thing does not exist (in this mode).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The write conflicts with what is stored (duplicate, cycle, in use).
    #[error("{0}")]
    Conflict(String),
    /// The database cannot be reached.
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else; the cause is for the log, never for a client.
    #[error("store failure")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict("a record with this id or name already exists".into())
            }
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                StoreError::Conflict("the record is referenced by or refers to another".into())
            }
            sqlx::Error::Database(db) if is_connection_failure(db.as_ref()) => {
                StoreError::Unavailable(e)
            }
            // PostgreSQL cannot hold U+0000 in text (SQLite can). The API
            // refuses it in every text it stores, and no id or name has it,
            // so one that reaches a statement is a key or a reference that
            // names nothing: the answer is the one for any unknown key.
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => {
                StoreError::NotFound("record")
            }
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e),
            _ => StoreError::Internal(Box::new(e)),
        }
    }
}

/// Whether a database error means "cannot talk to the database now"
/// (PostgreSQL's connection-exception class, a shutdown or restart in
/// progress, too many connections, a database closed to connections),
/// rather than a problem with the statement.
fn is_connection_failure(db: &dyn sqlx::error::DatabaseError) -> bool {
    let code = db.code();
    let code = code.as_deref().unwrap_or("");
    code.starts_with("08")
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
        || db.message().contains("not currently accepting connections")
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Internal(Box::new(e))
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file (WAL).
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// The store: a connection pool and the statements Latchkey runs.
#[derive(Debug, Clone)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Write transactions. On SQLite this is a pool of exactly one
    /// connection: SQLite has one writer at a time, a deferred transaction
    /// that reads before it writes fails with `SQLITE_BUSY` instead of
    /// waiting when another connection writes, and a refused transaction's
    /// rollback is queued on its own connection. One writer connection makes
    /// writes wait their turn and always start on a clean connection, while
    /// readers (WAL) never wait. On PostgreSQL it is the same pool.
    write_pool: AnyPool,
    backend: Backend,
    /// The URL, for the PostgreSQL notification listener's own connection.
    url: Url,
    /// Told how long each operation took (metrics), once set.
    observer: Arc<ObserverSlot>,
    /// This process's id in the notifications it sends, so its own
    /// listener skips them.
    node_id: Arc<str>,
}

/// A database URL; it may hold a password, so `Debug` does not show it.
#[derive(Clone)]
struct Url(Arc<str>);

impl std::fmt::Debug for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Url(redacted)")
    }
}

#[derive(Default)]
struct ObserverSlot(OnceLock<Observer>);

impl std::fmt::Debug for ObserverSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "ObserverSlot(set)"
        } else {
            "ObserverSlot(unset)"
        })
    }
}

/// Receives the name and duration of every store operation, successful or
/// not.
pub type Observer = Box<dyn Fn(&'static str, Duration) + Send + Sync>;

/// Times one store operation; reports to the observer when dropped.
struct OpTimer<'a> {
    observer: &'a OnceLock<Observer>,
    op: &'static str,
    start: Instant,
}

impl Drop for OpTimer<'_> {
    fn drop(&mut self) {
        if let Some(observe) = self.observer.get() {
            observe(self.op, self.start.elapsed());
        }
    }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating if needed) the SQLite database `latchkey.db` under
    /// `data_dir`, in WAL mode, and migrates it.
    pub async fn open_sqlite(data_dir: &Path) -> StoreResult<Store> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Internal(Box::new(e)))?;
        let path = data_dir.join("latchkey.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        Self::connect(&url).await
    }

    /// Connects to `url` (`sqlite://…` or `postgres://…`) and migrates.
    pub async fn connect(url: &str) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Internal(
                "database URL must start with sqlite: or postgres://".into(),
            ));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool_options = |max: u32, acquire: u64| {
            let o = AnyPoolOptions::new()
                .acquire_timeout(Duration::from_secs(acquire))
                .max_connections(max);
            match backend {
                Backend::Sqlite => o.after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // The busy timeout first: every later statement, on this
                        // connection, then waits for a lock instead of failing.
                        // WAL is persistent in the file and set once below.
                        conn.execute(
                            "PRAGMA busy_timeout = 5000; PRAGMA synchronous = NORMAL; \
                         PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                        Ok(())
                    })
                }),
                Backend::Postgres => o,
            }
        };
        let (pool, write_pool) = match backend {
            Backend::Sqlite => {
                let write_pool = pool_options(1, 30).connect_with(options.clone()).await?;
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&write_pool)
                    .await?;
                let pool = pool_options(4, 5).connect_with(options).await?;
                (pool, write_pool)
            }
            Backend::Postgres => {
                let pool = pool_options(16, 5).connect_with(options).await?;
                (pool.clone(), pool)
            }
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&write_pool)
            .await
            .map_err(|e| StoreError::Internal(Box::new(e)))?;
        Ok(Store {
            pool,
            write_pool,
            backend,
            url: Url(url.into()),
            observer: Arc::default(),
            node_id: latchkey_core::ids::random_lower_alnum(16).into(),
        })
    }

    /// Sets the function told the duration of every operation (once; later
    /// calls are ignored).
    pub fn set_observer(&self, observer: Observer) {
        let _ = self.observer.0.set(observer);
    }

    /// Starts timing the operation `op`.
    fn timed(&self, op: &'static str) -> OpTimer<'_> {
        OpTimer {
            observer: &self.observer.0,
            op,
            start: Instant::now(),
        }
    }

    /// Begins a write transaction (on SQLite, on the one writer connection).
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Any>> {
        Ok(self.write_pool.begin().await?)
    }

    /// This process's id in change notifications.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        let _timer = self.timed("ping");
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Closes every connection; later calls fail with `Unavailable`.
    pub async fn close(&self) {
        self.pool.close().await;
        self.write_pool.close().await;
    }
}

/// One page of a list query: at most `limit` items after the item whose sort
/// key is `after`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Maximum number of items.
    pub limit: u32,
    /// Sort key (id) of the last item of the previous page.
    pub after: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct PageResult<T> {
    /// The items.
    pub items: Vec<T>,
    /// The sort key to continue after, when there are more items.
    pub next_after: Option<String>,
}

impl<T> PageResult<T> {
    /// The same page with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PageResult<U> {
        PageResult {
            items: self.items.into_iter().map(f).collect(),
            next_after: self.next_after,
        }
    }

    /// Cuts `limit + 1` fetched items down to a page, remembering where to go on.
    fn from_overfetch(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let limit = limit as usize;
        let next_after = if items.len() > limit {
            items.truncate(limit);
            items.last().map(key)
        } else {
            None
        };
        PageResult { items, next_after }
    }
}

/// Small helper for statements with optional `WHERE` conditions: tracks the
/// `$n` numbering so dynamic SQL stays correct on both backends.
#[derive(Debug, Default)]
struct Conditions {
    sql: String,
    args: Vec<Arg>,
}

/// A value bound to a dynamic statement.
#[derive(Debug)]
enum Arg {
    Text(String),
    Int(i64),
}

impl Conditions {
    /// Adds `column <op> $n` bound to `value`. A value with U+0000, which
    /// no stored key has (and PostgreSQL cannot compare), matches nothing.
    fn push(&mut self, clause: &str, value: impl Into<String>) {
        let value = value.into();
        if value.contains('\0') {
            self.push_raw("1 = 0");
            return;
        }
        self.push_arg(clause, Arg::Text(value));
    }

    /// Adds `column <op> $n` bound to the integer `value`.
    fn push_int(&mut self, clause: &str, value: i64) {
        self.push_arg(clause, Arg::Int(value));
    }

    fn push_arg(&mut self, clause: &str, value: Arg) {
        self.args.push(value);
        let placeholder = format!("${}", self.args.len());
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace("{}", &placeholder));
    }

    /// `sql` with every pushed value bound, in order.
    fn query<'q>(
        &'q self,
        sql: &'q str,
    ) -> sqlx::query::Query<'q, Any, <Any as sqlx::Database>::Arguments<'q>> {
        let mut q = sqlx::query(sql);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q
    }

    /// Adds a condition without a bound value.
    fn push_raw(&mut self, clause: &str) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
    }

    /// Runs `SELECT columns FROM table WHERE <conditions> AND key > after
    /// ORDER BY key LIMIT limit + 1`, and cuts the result into a page: the
    /// one shape every list of the store shares.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_page<'c, E, T>(
        mut self,
        executor: E,
        columns: &str,
        table: &str,
        key: &str,
        page: &PageRequest,
        map: fn(&sqlx::any::AnyRow) -> StoreResult<T>,
        key_of: fn(&T) -> String,
    ) -> StoreResult<PageResult<T>>
    where
        E: Executor<'c, Database = Any>,
    {
        if let Some(after) = &page.after {
            self.push(&format!("{key} > {{}}"), after.clone());
        }
        let sql = format!(
            "SELECT {columns} FROM {table} WHERE 1 = 1{} ORDER BY {key} LIMIT ${}",
            self.sql,
            self.args.len() + 1
        );
        let rows = self
            .query(&sql)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(executor)
            .await?;
        let items = rows.iter().map(map).collect::<StoreResult<Vec<_>>>()?;
        Ok(PageResult::from_overfetch(items, page.limit, key_of))
    }
}

/// Helpers for test suites that need a fresh database.
pub mod testing {
    use sqlx::Executor;

    /// The environment variable that enables the PostgreSQL suites.
    pub const POSTGRES_URL_VAR: &str = "LATCHKEY_TEST_POSTGRES_URL";

    /// Creates a new, empty PostgreSQL database on the server named by
    /// `LATCHKEY_TEST_POSTGRES_URL` and returns its URL, or `None` when the
    /// variable is unset (the suite is then skipped).
    pub async fn fresh_postgres_url() -> Option<String> {
        let base = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|s| !s.is_empty())?;
        sqlx::any::install_default_drivers();
        let name = format!("lk_test_{}", latchkey_core::ids::random_lower_alnum(16));
        let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_URL_VAR}: {e}"));
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create test database: {e}"));
        let (prefix, _) = base.rsplit_once('/').unwrap_or((&base, ""));
        Some(format!("{prefix}/{name}"))
    }
}
