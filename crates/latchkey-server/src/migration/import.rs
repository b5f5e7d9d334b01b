//! The import engine: each line parsed and checked (core's rules, the API's
//! field rules), then applied in the store's import transaction. Records
//! naming a tenant or user that is not there yet wait until the end of the
//! file and are tried again (parents may follow children). Commits come
//! every [`BATCH`] records, so a kill -9 loses at most the batch in flight
//! and a rerun finds the rest unchanged; `atomic` commits once at the end,
//! only without errors; a dry run never commits.

use latchkey_core::credential::CredentialKind;
use latchkey_core::login::password::imported;
use latchkey_core::migration::{self, FieldError};
use latchkey_store::{Applied, ImportItem, ImportMemory, ImportTx, Refused, StoreError};
use latchkey_types::audit::AuditEvent;
use latchkey_types::migration::{ImportError, ImportSummary, Record};
use latchkey_types::Mode;

use super::lines::{Line, Lines};
use crate::http::error::ApiError;
use crate::routes::users::{check_custom_claims, check_email, check_external_id, check_ttl};
use crate::routes::{check_name, check_object, check_optional_text};
use crate::state::AppState;

/// Records per transaction (outside `atomic` and dry runs).
pub const BATCH: usize = 1000;
/// Errors listed in the answer (all are counted).
pub const MAX_LISTED_ERRORS: usize = 1000;
/// Records that may wait for a later one (a child before its parent).
pub const MAX_WAITING: usize = 1_000_000;

/// How an import runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// All or nothing for the whole file.
    pub atomic: bool,
}

/// The text of a field check's refusal.
fn detail(e: ApiError) -> String {
    match e {
        ApiError::InvalidRequest(detail) => detail,
        other => format!("{other:?}"),
    }
}

/// A record checked and turned into what the store applies.
fn prepare(mode: Mode, record: Record) -> Result<ImportItem, String> {
    let field = detail;
    let fe = |e: FieldError| e.to_string();
    Ok(match record {
        Record::Tenant(r) => {
            check_name("name", &r.name).map_err(field)?;
            if let Some(m) = &r.metadata {
                check_object("metadata", m).map_err(field)?;
            }
            ImportItem::Tenant(r)
        }
        Record::Role(mut r) => {
            if r.permissions.len() > 200 {
                return Err("permissions: at most 200 per role".into());
            }
            check_optional_text("description", r.description.as_deref()).map_err(field)?;
            r.permissions.sort();
            r.permissions.dedup();
            ImportItem::Role(r)
        }
        Record::User(r) => {
            if r.id.is_none() && r.external_id.is_none() {
                return Err("externalId: required (or the id of an exported user)".into());
            }
            check_external_id("externalId", r.external_id.as_deref()).map_err(field)?;
            check_name("name", &r.name).map_err(field)?;
            check_email(r.email.as_deref()).map_err(field)?;
            check_optional_text("username", r.username.as_deref()).map_err(field)?;
            check_optional_text("phoneNumber", r.phone_number.as_deref()).map_err(field)?;
            if let Some(m) = &r.metadata {
                check_object("metadata", m).map_err(field)?;
            }
            if let Some(c) = &r.custom_claims {
                check_custom_claims(c).map_err(field)?;
            }
            check_ttl(r.token_ttl_seconds).map_err(field)?;
            let hash = match (&r.password_hash, &r.custom_password_hash) {
                (Some(_), Some(_)) => {
                    return Err(
                        "passwordHash: give passwordHash or customPasswordHash, not both".into(),
                    )
                }
                (Some(h), None) => {
                    Some(imported::accept(h).map_err(|e| format!("passwordHash: {e}"))?)
                }
                (None, Some(c)) => Some(
                    imported::accept_custom(c).map_err(|e| format!("customPasswordHash: {e}"))?,
                ),
                (None, None) => None,
            };
            ImportItem::User(r, hash)
        }
        Record::Membership(mut r) => {
            check_user_ref(&r.user)?;
            if r.roles.len() > 100 {
                return Err("roles: at most 100".into());
            }
            r.roles.sort();
            r.roles.dedup();
            ImportItem::Membership(r)
        }
        Record::ApiKey(mut r) => {
            check_user_ref(&r.user)?;
            check_optional_text("name", r.name.as_deref()).map_err(field)?;
            if let Some(roles) = &mut r.roles {
                if roles.len() > 100 {
                    return Err("roles: at most 100 per key".into());
                }
                roles.sort();
                roles.dedup();
            }
            if let Some(limit) = r.ratelimit {
                if limit.limit < 1 || !(1..=86_400).contains(&limit.window_seconds) {
                    return Err(
                        "ratelimit: limit >= 1 and windowSeconds between 1 and 86400".into(),
                    );
                }
            }
            if r.remaining.is_some_and(|x| x < 0) {
                return Err("remaining: 0 or more".into());
            }
            if let Some(m) = &r.metadata {
                check_object("metadata", m).map_err(field)?;
            }
            let credential = migration::imported_credential(
                migration::CredentialInput {
                    field: "key",
                    value: r.key.as_deref(),
                    hash: r.key_hash.as_ref(),
                    prefix: r.prefix.as_deref(),
                    legacy: r.legacy,
                },
                mode,
                CredentialKind::ApiKey,
            )
            .map_err(fe)?;
            // Only the digest goes on: the plain value is not kept.
            r.key = None;
            ImportItem::ApiKey(r, credential.stored, credential.legacy)
        }
        Record::Secret(mut r) => {
            check_user_ref(&r.user)?;
            check_optional_text("name", r.name.as_deref()).map_err(field)?;
            if let Some(id) = &r.id {
                let ok = id.starts_with("sec_")
                    && id.len() <= 64
                    && id[4..].chars().all(|c| c.is_ascii_alphanumeric());
                if !ok {
                    return Err("id: sec_ and up to 60 letters and digits".into());
                }
            }
            let credential = migration::imported_credential(
                migration::CredentialInput {
                    field: "secret",
                    value: r.secret.as_deref(),
                    hash: r.secret_hash.as_ref(),
                    prefix: None,
                    legacy: None,
                },
                mode,
                CredentialKind::ClientSecret,
            )
            .map_err(fe)?;
            let migration::StoredCredential::Sha256(digest) = credential.stored else {
                return Err("secretHash.algorithm: client secrets take sha256".into());
            };
            r.secret = None;
            ImportItem::Secret(r, digest)
        }
    })
}

fn check_user_ref(r: &latchkey_types::migration::UserRef) -> Result<(), String> {
    if r.id.is_none() && r.external_id.is_none() {
        return Err("user: {\"id\": …} or {\"externalId\": …}".into());
    }
    check_external_id("user.externalId", r.external_id.as_deref()).map_err(detail)
}

/// The running import.
struct Run<'a> {
    state: &'a AppState,
    mode: Mode,
    options: Options,
    summary: ImportSummary,
    tx: Option<ImportTx>,
    /// What the committed transactions learned (a failed one forgets).
    memory: Option<ImportMemory>,
    /// The records of the open transaction, to replay one by one when it
    /// fails as a whole.
    batch: Vec<(u64, ImportItem)>,
    waiting: Vec<(u64, ImportItem, String)>,
}

impl Run<'_> {
    fn error(&mut self, line: u64, code: &str, detail: String) {
        self.summary.error_count += 1;
        if self.summary.errors.len() < MAX_LISTED_ERRORS {
            self.summary.errors.push(ImportError {
                line,
                code: code.to_owned(),
                detail,
            });
        }
    }

    fn count(&mut self, applied: Applied) {
        match applied {
            Applied::Created => self.summary.created += 1,
            Applied::Updated => self.summary.updated += 1,
            Applied::Unchanged => self.summary.unchanged += 1,
        }
    }

    async fn tx(&mut self) -> Result<&mut ImportTx, StoreError> {
        if self.tx.is_none() {
            let now = self.state.clock.now();
            let memory = self.memory.take();
            self.tx = Some(
                self.state
                    .store
                    .begin_import(self.mode, now, memory)
                    .await?,
            );
        }
        Ok(self.tx.as_mut().expect("just opened"))
    }

    /// Applies one record; `waiting`: a missing reference keeps it for the
    /// end instead of refusing it.
    async fn apply(
        &mut self,
        line: u64,
        item: ImportItem,
        waiting: bool,
    ) -> Result<(), StoreError> {
        let outcome = self.tx().await?.apply(&item).await;
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) if self.options.atomic || self.options.dry_run => return Err(e),
            Err(e) => {
                // The transaction is lost: replay its records alone.
                tracing::warn!(error = %e, line, "an import batch failed; replaying it record by record");
                return self.replay(line, item).await;
            }
        };
        match outcome {
            Ok(applied) => {
                self.count(applied);
                let tenant_created =
                    matches!(item, ImportItem::Tenant(_)) && applied == Applied::Created;
                if !self.options.atomic && !self.options.dry_run {
                    self.batch.push((line, item));
                }
                if tenant_created {
                    // Tenants waiting for this one as their parent go now,
                    // so records in them need not wait for the file's end.
                    Box::pin(self.retry_waiting_tenants()).await?;
                }
            }
            Err(Refused::Missing(why)) if waiting => {
                if self.waiting.len() >= MAX_WAITING {
                    self.error(
                        line,
                        "invalid_request",
                        format!("{why} (too many records wait for later ones)"),
                    );
                } else {
                    self.waiting.push((line, item, why));
                }
            }
            Err(Refused::Missing(why)) => self.error(line, "not_found", why),
            Err(Refused::Conflict(why)) => self.error(line, "conflict", why),
        }
        if !self.options.atomic && !self.options.dry_run && self.batch.len() >= BATCH {
            self.commit(None).await?;
        }
        Ok(())
    }

    /// Retries the tenants that wait for a parent.
    async fn retry_waiting_tenants(&mut self) -> Result<(), StoreError> {
        if !self
            .waiting
            .iter()
            .any(|(_, item, _)| matches!(item, ImportItem::Tenant(_)))
        {
            return Ok(());
        }
        let (tenants, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|(_, item, _)| matches!(item, ImportItem::Tenant(_)));
        self.waiting = rest;
        for (line, item, _) in tenants {
            self.apply(line, item, true).await?;
        }
        Ok(())
    }

    /// The open transaction failed: each of its records (counted already)
    /// and then `failed`, in a transaction of its own.
    async fn replay(&mut self, line: u64, failed: ImportItem) -> Result<(), StoreError> {
        if let Some(tx) = self.tx.take() {
            let _ = tx.rollback().await;
        }
        self.memory = None;
        let items = std::mem::take(&mut self.batch);
        let last = items.len();
        for (i, (line, item)) in items.into_iter().chain([(line, failed)]).enumerate() {
            let now = self.state.clock.now();
            let mut tx = self.state.store.begin_import(self.mode, now, None).await?;
            match tx.apply(&item).await {
                Ok(outcome) => {
                    let written = self.state.store.commit_import(tx, None).await?;
                    self.state.applied(written).await;
                    if i == last {
                        match outcome {
                            Ok(applied) => self.count(applied),
                            Err(Refused::Missing(why)) => self.error(line, "not_found", why),
                            Err(Refused::Conflict(why)) => self.error(line, "conflict", why),
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.rollback().await;
                    tracing::warn!(error = %e, line, "an imported record could not be written");
                    self.error(
                        line,
                        "internal",
                        "the store could not write this record".into(),
                    );
                }
            }
        }
        Ok(())
    }

    async fn commit(&mut self, event: Option<AuditEvent>) -> Result<(), StoreError> {
        self.batch.clear();
        if let Some(tx) = self.tx.take() {
            let written = self.state.store.commit_import(tx, event).await?;
            self.memory = Some(self.state.applied(written).await);
        } else if let Some(event) = event {
            self.state.store.append_audit_events(&[event]).await?;
        }
        Ok(())
    }
}

/// Runs an import of `body` into `mode`. `event` makes the audit event from
/// the summary (stored with the last commit).
pub async fn run(
    state: &AppState,
    mode: Mode,
    body: axum::body::Body,
    options: Options,
    event: impl FnOnce(&ImportSummary) -> AuditEvent,
) -> Result<ImportSummary, ApiError> {
    let mut run = Run {
        state,
        mode,
        options,
        summary: ImportSummary::default(),
        tx: None,
        memory: None,
        batch: Vec::new(),
        waiting: Vec::new(),
    };
    let mut lines = Lines::new(body, migration::MAX_LINE_BYTES);
    let mut lines_read: u64 = 0;
    loop {
        let next = match lines.next().await {
            Ok(next) => next,
            Err(()) => {
                // What was committed stays (outside atomic); the rest never
                // arrived.
                if let Some(tx) = run.tx.take() {
                    let _ = tx.rollback().await;
                }
                return Err(ApiError::InvalidRequest(
                    "the request body could not be read to its end".into(),
                ));
            }
        };
        let Some((number, line)) = next else { break };
        lines_read += 1;
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong => {
                run.error(
                    number,
                    "invalid_request",
                    format!(
                        "the line is longer than {} bytes",
                        migration::MAX_LINE_BYTES
                    ),
                );
                continue;
            }
            Line::NotUtf8 => {
                run.error(number, "invalid_request", "the line is not UTF-8".into());
                continue;
            }
        };
        let item = match migration::parse_line(&text).and_then(|r| prepare(mode, r)) {
            Ok(item) => item,
            Err(detail) => {
                run.error(number, "invalid_request", detail);
                continue;
            }
        };
        run.apply(number, item, true).await?;
    }
    // Records that named something later in the file, until no round makes
    // progress.
    loop {
        let waiting = std::mem::take(&mut run.waiting);
        if waiting.is_empty() {
            break;
        }
        let before = waiting.len();
        for (line, item, _) in waiting {
            run.apply(line, item, true).await?;
        }
        if run.waiting.len() == before {
            for (line, _, why) in std::mem::take(&mut run.waiting) {
                run.error(line, "not_found", why);
            }
            break;
        }
    }
    if lines_read == 0 {
        if let Some(tx) = run.tx.take() {
            let _ = tx.rollback().await;
        }
        return Err(ApiError::InvalidRequest(
            "the body holds no records: send NDJSON, one record per line".into(),
        ));
    }
    run.summary.errors.sort_by_key(|e| e.line);
    let failed_atomic = options.atomic && run.summary.error_count > 0;
    if options.dry_run || failed_atomic {
        if let Some(tx) = run.tx.take() {
            tx.rollback().await?;
        }
        run.summary.written = false;
        return Ok(run.summary);
    }
    run.summary.written = true;
    let event = event(&run.summary);
    run.commit(Some(event)).await?;
    Ok(run.summary)
}
