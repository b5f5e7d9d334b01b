//! Sessions and their refresh tokens. A session is one refresh-token
//! family: each refresh spends the token presented and stores its
//! successor; a repeat within the retry window gets the same successor
//! (kept sealed for that); any later repeat ends the session, and so every
//! token of the family.

use latchkey_core::clock::{from_unix_ms, to_unix_ms};
use latchkey_core::credential::CredentialDigest;
use latchkey_types::audit::AuditEvent;
use latchkey_types::Mode;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use time::OffsetDateTime;

use crate::records::{list_of, opt_time_of, time_of, to_json};
use crate::{Conditions, PageRequest, PageResult, Store, StoreError, StoreResult, Written};

/// A session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// `ses_…`.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The tenant its tokens are scoped to.
    pub tenant_id: String,
    /// Names of the factors its login passed.
    pub factors: Vec<String>,
    /// When its login completed.
    pub auth_time: OffsetDateTime,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last refresh (or creation).
    pub last_used_at: OffsetDateTime,
    /// Absolute end.
    pub expires_at: OffsetDateTime,
    /// Ends this long after `last_used_at`.
    pub idle_timeout_seconds: i64,
    /// When it was ended (logout, reuse, admin, password change).
    pub ended_at: Option<OffsetDateTime>,
    /// Why.
    pub end_reason: Option<String>,
}

impl SessionRecord {
    /// When it ends without a refresh.
    pub fn idle_expires_at(&self) -> OffsetDateTime {
        (self.last_used_at + time::Duration::seconds(self.idle_timeout_seconds))
            .min(self.expires_at)
    }

    /// Whether it is alive at `now`.
    pub fn active_at(&self, now: OffsetDateTime) -> bool {
        self.ended_at.is_none() && now < self.idle_expires_at()
    }
}

const SESSION_COLUMNS: &str = "id, user_id, tenant_id, factors, auth_time, created_at, \
     last_used_at, expires_at, idle_timeout_seconds, ended_at, end_reason";

fn session_of(row: &AnyRow) -> StoreResult<SessionRecord> {
    Ok(SessionRecord {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        tenant_id: row.try_get("tenant_id")?,
        factors: list_of(row, "factors")?,
        auth_time: time_of(row, "auth_time")?,
        created_at: time_of(row, "created_at")?,
        last_used_at: time_of(row, "last_used_at")?,
        expires_at: time_of(row, "expires_at")?,
        idle_timeout_seconds: row.try_get("idle_timeout_seconds")?,
        ended_at: opt_time_of(row, "ended_at")?,
        end_reason: row.try_get("end_reason")?,
    })
}

/// What a refresh found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// The token was current: it is spent and its successor stored. The
    /// session as it is now.
    Rotated(SessionRecord),
    /// The token was spent moments ago (a client retry): its successor,
    /// sealed, is the answer again.
    Retry {
        /// The session.
        session: SessionRecord,
        /// The sealed successor.
        successor: String,
    },
    /// The token was spent before the retry window: the session is ended
    /// (the whole family), and the event recorded.
    Reused(SessionRecord),
    /// No such token, or its session has ended or expired.
    Invalid,
}

/// What a refresh should do when the token is current.
#[derive(Debug)]
pub struct Rotation<'a> {
    /// Digest of the new refresh token.
    pub next: &'a CredentialDigest,
    /// The new refresh token, sealed, kept on the spent one for retries.
    pub sealed_next: &'a str,
    /// Re-scope the session to this tenant.
    pub tenant_id: Option<&'a str>,
    /// Now.
    pub now: OffsetDateTime,
    /// A repeat this soon after the spend is a retry.
    pub retry_window_ms: i64,
}

pub(crate) async fn insert_session(
    tx: &mut Transaction<'static, Any>,
    mode: Mode,
    session: &SessionRecord,
    refresh: &CredentialDigest,
) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO sessions (mode, {SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
         $9, $10, NULL, NULL)"
    ))
    .bind(mode.as_str())
    .bind(&session.id)
    .bind(&session.user_id)
    .bind(&session.tenant_id)
    .bind(to_json(&session.factors)?)
    .bind(to_unix_ms(session.auth_time))
    .bind(to_unix_ms(session.created_at))
    .bind(to_unix_ms(session.last_used_at))
    .bind(to_unix_ms(session.expires_at))
    .bind(session.idle_timeout_seconds)
    .execute(&mut **tx)
    .await?;
    insert_refresh(tx, mode, &session.id, refresh, session.created_at).await
}

async fn insert_refresh(
    tx: &mut Transaction<'static, Any>,
    mode: Mode,
    session_id: &str,
    digest: &CredentialDigest,
    now: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (digest, mode, session_id, created_at, used_at, successor) \
         VALUES ($1, $2, $3, $4, NULL, NULL)",
    )
    .bind(digest.to_hex())
    .bind(mode.as_str())
    .bind(session_id)
    .bind(to_unix_ms(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends every live session of a user but `except`; returns how many.
pub(crate) async fn end_all(
    tx: &mut Transaction<'static, Any>,
    mode: Mode,
    user_id: &str,
    except: Option<&str>,
    reason: &str,
    now: OffsetDateTime,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = $4, end_reason = $5 WHERE mode = $1 AND user_id = $2 \
         AND ended_at IS NULL AND id <> $3",
    )
    .bind(mode.as_str())
    .bind(user_id)
    .bind(except.unwrap_or(""))
    .bind(to_unix_ms(now))
    .bind(reason)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

impl Store {
    /// A session by id.
    pub async fn session(&self, mode: Mode, id: &str) -> StoreResult<Option<SessionRecord>> {
        let _timer = self.timed("session");
        let row = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_of).transpose()
    }

    /// The session a refresh token (by digest) belongs to.
    pub async fn session_by_refresh(
        &self,
        mode: Mode,
        digest: &CredentialDigest,
    ) -> StoreResult<Option<SessionRecord>> {
        let _timer = self.timed("session_by_refresh");
        let row = sqlx::query(
            "SELECT s.id, s.user_id, s.tenant_id, s.factors, s.auth_time, s.created_at, \
             s.last_used_at, s.expires_at, s.idle_timeout_seconds, s.ended_at, s.end_reason \
             FROM refresh_tokens r JOIN sessions s ON s.mode = r.mode AND s.id = r.session_id \
             WHERE r.digest = $1 AND r.mode = $2",
        )
        .bind(digest.to_hex())
        .bind(mode.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(session_of).transpose()
    }

    /// A user's sessions alive at `now`, by id.
    pub async fn list_sessions(
        &self,
        mode: Mode,
        user_id: &str,
        now: OffsetDateTime,
        page: &PageRequest,
    ) -> StoreResult<PageResult<SessionRecord>> {
        let _timer = self.timed("list_sessions");
        let mut c = Conditions::default();
        c.push("mode = {}", mode.as_str());
        c.push("user_id = {}", user_id);
        c.push_raw("ended_at IS NULL");
        c.push_int("expires_at > {}", to_unix_ms(now));
        let mut result = c
            .fetch_page(
                &self.pool,
                SESSION_COLUMNS,
                "sessions",
                "id",
                page,
                session_of,
                |s| s.id.clone(),
            )
            .await?;
        // The idle rule needs two columns; few sessions are idle and alive.
        result.items.retain(|s| s.active_at(now));
        Ok(result)
    }

    /// Spends a refresh token (see [`Refreshed`]). One transaction; two
    /// nodes spending the same token at once cannot both rotate it.
    pub async fn refresh_session(
        &self,
        mode: Mode,
        presented: &CredentialDigest,
        rotation: Rotation<'_>,
        record_reuse: impl FnOnce(&SessionRecord) -> AuditEvent + Send,
    ) -> StoreResult<(Refreshed, Option<Written<()>>)> {
        let _timer = self.timed("refresh_session");
        let now_ms = to_unix_ms(rotation.now);
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT session_id, used_at, successor FROM refresh_tokens WHERE digest = $1 AND mode = $2",
        )
        .bind(presented.to_hex())
        .bind(mode.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok((Refreshed::Invalid, None));
        };
        let session_id: String = row.try_get("session_id")?;
        let used_at: Option<i64> = row.try_get("used_at")?;
        let successor: Option<String> = row.try_get("successor")?;
        let session = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(&session_id)
        .fetch_optional(&mut *tx)
        .await?
        .as_ref()
        .map(session_of)
        .transpose()?
        .ok_or(StoreError::NotFound("session"))?;
        if !session.active_at(rotation.now) {
            return Ok((Refreshed::Invalid, None));
        }
        match (used_at, successor) {
            (None, _) => {
                let spent = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $2, successor = $3 \
                     WHERE digest = $1 AND used_at IS NULL",
                )
                .bind(presented.to_hex())
                .bind(now_ms)
                .bind(rotation.sealed_next)
                .execute(&mut *tx)
                .await?;
                if spent.rows_affected() == 0 {
                    // Spent by a concurrent refresh that committed first:
                    // the caller asks again and gets the retry answer.
                    return Ok((Refreshed::Invalid, None));
                }
                insert_refresh(&mut tx, mode, &session_id, rotation.next, rotation.now).await?;
                let tenant = rotation.tenant_id.unwrap_or(&session.tenant_id).to_owned();
                sqlx::query("UPDATE sessions SET last_used_at = $3, tenant_id = $4 WHERE mode = $1 AND id = $2")
                    .bind(mode.as_str())
                    .bind(&session_id)
                    .bind(now_ms)
                    .bind(&tenant)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((
                    Refreshed::Rotated(SessionRecord {
                        tenant_id: tenant,
                        last_used_at: from_unix_ms(now_ms),
                        ..session
                    }),
                    None,
                ))
            }
            (Some(used), Some(successor)) if now_ms - used <= rotation.retry_window_ms => {
                Ok((Refreshed::Retry { session, successor }, None))
            }
            (Some(_), _) => {
                sqlx::query(
                    "UPDATE sessions SET ended_at = $3, end_reason = 'refresh_token_reused' \
                     WHERE mode = $1 AND id = $2",
                )
                .bind(mode.as_str())
                .bind(&session_id)
                .bind(now_ms)
                .execute(&mut *tx)
                .await?;
                let ended = SessionRecord {
                    ended_at: Some(from_unix_ms(now_ms)),
                    end_reason: Some("refresh_token_reused".into()),
                    ..session
                };
                let event = record_reuse(&ended);
                let written = self.commit_write(tx, (), Some(event), Vec::new()).await?;
                Ok((Refreshed::Reused(ended), Some(written)))
            }
        }
    }

    /// Ends a session (of `user_id` when given: a user ending its own).
    /// `NotFound` when there is no such live session.
    pub async fn end_session(
        &self,
        mode: Mode,
        id: &str,
        user_id: Option<&str>,
        reason: &str,
        now: OffsetDateTime,
        record: impl FnOnce(&SessionRecord) -> AuditEvent + Send,
    ) -> StoreResult<Written<SessionRecord>> {
        let _timer = self.timed("end_session");
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE sessions SET ended_at = $3, end_reason = $4 WHERE mode = $1 AND id = $2 \
             AND ended_at IS NULL AND user_id = COALESCE($5, user_id) RETURNING {SESSION_COLUMNS}"
        ))
        .bind(mode.as_str())
        .bind(id)
        .bind(to_unix_ms(now))
        .bind(reason)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let session = row
            .as_ref()
            .map(session_of)
            .transpose()?
            .ok_or(StoreError::NotFound("session"))?;
        let event = record(&session);
        self.commit_write(tx, session, Some(event), Vec::new())
            .await
    }

    /// Ends every live session of a user; returns how many.
    pub async fn end_user_sessions(
        &self,
        mode: Mode,
        user_id: &str,
        reason: &str,
        now: OffsetDateTime,
        record: impl FnOnce(&u64) -> AuditEvent + Send,
    ) -> StoreResult<Written<u64>> {
        let _timer = self.timed("end_user_sessions");
        let mut tx = self.begin_write().await?;
        crate::logins::require_user(&mut tx, mode, user_id).await?;
        let ended = end_all(&mut tx, mode, user_id, None, reason, now).await?;
        let event = record(&ended);
        self.commit_write(tx, ended, Some(event), Vec::new()).await
    }
}
