//! Login flows: what users can log in with (`user_factors`), tenants' login
//! policies, and logins in progress. Every step that could race another
//! (two nodes, two tabs) is one conditional statement: a factor is added
//! to a login only if the login still holds what the caller read, a TOTP
//! step is used only if it is after the last one, a backup code is spent
//! only if it is still unspent, and a session is handed out only once.

use std::collections::HashMap;

use latchkey_core::clock::to_unix_ms;
use latchkey_core::credential::CredentialDigest;
use latchkey_types::audit::AuditEvent;
use latchkey_types::login::LoginPolicy;
use latchkey_types::Mode;
use sqlx::any::AnyRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::records::{digest_of, list_of, opt_time_of, time_of, to_json};
use crate::sessions::{insert_session, SessionRecord};
use crate::{Store, StoreError, StoreResult, Written};

/// What a user can log in with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserFactors {
    /// Argon2id PHC string.
    pub password_hash: Option<String>,
    /// The TOTP secret, sealed under the master key.
    pub totp_secret: Option<String>,
    /// Whether the TOTP secret was confirmed with a code.
    pub totp_confirmed: bool,
    /// The last TOTP step accepted.
    pub totp_last_step: Option<i64>,
    /// SHA-256 digests (hex) of the unused backup codes.
    pub backup_codes: Vec<String>,
}

impl std::fmt::Debug for UserFactors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserFactors")
            .field("password", &self.password_hash.is_some())
            .field("totp", &self.totp_secret.is_some())
            .field("totp_confirmed", &self.totp_confirmed)
            .field("backup_codes", &self.backup_codes.len())
            .finish()
    }
}

/// A code or link sent for a login, stored as a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `email_code`, `sms_code` or `magic_link`.
    pub factor: String,
    /// Hex SHA-256 of what was sent (a code with the login id, or a link's
    /// token).
    pub digest: String,
    /// When it dies.
    pub expires_at: OffsetDateTime,
    /// Wrong tries so far.
    pub tries: i64,
}

/// A login in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    /// `lgn_…`.
    pub id: String,
    /// SHA-256 of the login's secret.
    pub secret_digest: CredentialDigest,
    /// Whom the identifier named; `None`: nobody.
    pub user_id: Option<String>,
    /// What throttling counts this login's failures against: the user id,
    /// or a digest of an identifier that names nobody.
    pub subject: String,
    /// The tenant the session will be for.
    pub tenant_id: String,
    /// Where a browser goes afterwards.
    pub redirect_uri: Option<String>,
    /// Names of the factors passed.
    pub satisfied: Vec<String>,
    /// Failed steps.
    pub failures: i64,
    /// The code or link in flight.
    pub challenge: Option<Challenge>,
    /// The session handed out, once complete.
    pub session_id: Option<String>,
    /// SHA-256 (hex) of the one-time code an SSO return gave the browser
    /// at the redirect URI: the session goes only to a poll presenting it.
    pub browser_code_digest: Option<String>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Dies.
    pub expires_at: OffsetDateTime,
}

const LOGIN_COLUMNS: &str =
    "id, secret_digest, user_id, subject, tenant_id, redirect_uri, satisfied, \
     failures, challenge_factor, challenge_digest, challenge_expires_at, challenge_tries, \
     session_id, browser_code_digest, created_at, expires_at";

fn login_of(row: &AnyRow) -> StoreResult<LoginRecord> {
    let factor: Option<String> = row.try_get("challenge_factor")?;
    let digest: Option<String> = row.try_get("challenge_digest")?;
    let expires: Option<OffsetDateTime> = opt_time_of(row, "challenge_expires_at")?;
    let challenge = match (factor, digest, expires) {
        (Some(factor), Some(digest), Some(expires_at)) => Some(Challenge {
            factor,
            digest,
            expires_at,
            tries: row.try_get("challenge_tries")?,
        }),
        _ => None,
    };
    Ok(LoginRecord {
        id: row.try_get("id")?,
        secret_digest: digest_of(row, "secret_digest")?,
        user_id: row.try_get("user_id")?,
        subject: row.try_get("subject")?,
        tenant_id: row.try_get("tenant_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        satisfied: list_of(row, "satisfied")?,
        failures: row.try_get("failures")?,
        challenge,
        session_id: row.try_get("session_id")?,
        browser_code_digest: row.try_get("browser_code_digest")?,
        created_at: time_of(row, "created_at")?,
        expires_at: time_of(row, "expires_at")?,
    })
}

fn factors_of(row: &AnyRow) -> StoreResult<UserFactors> {
    Ok(UserFactors {
        password_hash: row.try_get("password_hash")?,
        totp_secret: row.try_get("totp_secret")?,
        totp_confirmed: row.try_get::<i64, _>("totp_confirmed")? != 0,
        totp_last_step: row.try_get("totp_last_step")?,
        backup_codes: list_of(row, "backup_codes")?,
    })
}

/// Which factor of a user an admin or the user removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovableFactor {
    /// The password.
    Password,
    /// TOTP, with its backup codes.
    Totp,
    /// The backup codes only.
    BackupCodes,
}

impl Store {
    /// The user an identifier names: a user id, an email (any case), a
    /// username or a phone number. An identifier that names two users
    /// (two accounts share an email) names nobody: a login must know whom
    /// it proves.
    pub async fn find_login_user(
        &self,
        mode: Mode,
        identifier: &str,
    ) -> StoreResult<Option<String>> {
        let _timer = self.timed("find_login_user");
        if identifier.contains('\0') {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id FROM users WHERE mode = $1 AND (id = $2 OR lower(email) = lower($2) \
             OR username = $2 OR phone_number = $2) LIMIT 2",
        )
        .bind(mode.as_str())
        .bind(identifier)
        .fetch_all(&self.pool)
        .await?;
        Ok(match rows.as_slice() {
            [one] => Some(one.try_get("id")?),
            _ => None,
        })
    }

    /// What a user can log in with (nothing set up: the default).
    pub async fn user_factors(&self, mode: Mode, user_id: &str) -> StoreResult<UserFactors> {
        let _timer = self.timed("user_factors");
        let row = sqlx::query(
            "SELECT password_hash, totp_secret, totp_confirmed, totp_last_step, backup_codes \
             FROM user_factors WHERE mode = $1 AND user_id = $2",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref()
            .map(factors_of)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Sets (or replaces) a user's password hash. With `end_sessions`, the
    /// user's sessions end too, but the one named `Some(id)` (a change made
    /// from that session).
    pub async fn set_password(
        &self,
        mode: Mode,
        user_id: &str,
        hash: &str,
        now: OffsetDateTime,
        end_sessions: Option<Option<&str>>,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("set_password");
        let mut tx = self.begin_write().await?;
        require_user(&mut tx, mode, user_id).await?;
        upsert_password(&mut tx, mode, user_id, hash, to_unix_ms(now)).await?;
        if let Some(except) = end_sessions {
            crate::sessions::end_all(&mut tx, mode, user_id, except, "password_changed", now)
                .await?;
        }
        let event = record(&());
        self.commit_write(tx, (), Some(event), Vec::new()).await
    }

    /// Replaces an imported password hash with its Argon2id rehash, only
    /// while `old` is still the stored one (a password changed meanwhile
    /// stays). Whether it was replaced.
    pub async fn rehash_password(
        &self,
        mode: Mode,
        user_id: &str,
        old: &str,
        new: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let _timer = self.timed("rehash_password");
        let done = sqlx::query(
            "UPDATE user_factors SET password_hash = $4, updated_at = $5 \
             WHERE mode = $1 AND user_id = $2 AND password_hash = $3",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .bind(old)
        .bind(new)
        .bind(to_unix_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Starts a TOTP enrolment: the sealed secret waits for a code. A
    /// user whose TOTP is confirmed must remove it first (`Conflict`).
    pub async fn start_totp(
        &self,
        mode: Mode,
        user_id: &str,
        sealed: &str,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let _timer = self.timed("start_totp");
        let mut tx = self.begin_write().await?;
        require_user(&mut tx, mode, user_id).await?;
        let done = sqlx::query(
            "INSERT INTO user_factors (mode, user_id, totp_secret, totp_confirmed, backup_codes, \
             updated_at) VALUES ($1, $2, $3, 0, '[]', $4) ON CONFLICT (mode, user_id) DO UPDATE \
             SET totp_secret = excluded.totp_secret, totp_last_step = NULL, \
             updated_at = excluded.updated_at WHERE user_factors.totp_confirmed = 0",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .bind(sealed)
        .bind(to_unix_ms(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "TOTP is already set up; remove it first (DELETE /v1/me/totp)".into(),
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Confirms a pending TOTP secret with the step its code matched, and
    /// stores the first backup codes. `Conflict` when there is nothing
    /// pending (never started, or confirmed meanwhile).
    pub async fn confirm_totp(
        &self,
        mode: Mode,
        user_id: &str,
        step: i64,
        backup_digests: &[String],
        now: OffsetDateTime,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("confirm_totp");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE user_factors SET totp_confirmed = 1, totp_last_step = $3, backup_codes = $4, \
             updated_at = $5 WHERE mode = $1 AND user_id = $2 AND totp_secret IS NOT NULL \
             AND totp_confirmed = 0",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .bind(step)
        .bind(to_json(&backup_digests)?)
        .bind(to_unix_ms(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "no TOTP enrolment is waiting for a code".into(),
            ));
        }
        let event = record(&());
        self.commit_write(tx, (), Some(event), Vec::new()).await
    }

    /// Replaces a user's backup codes (TOTP must be confirmed: `Conflict`).
    pub async fn set_backup_codes(
        &self,
        mode: Mode,
        user_id: &str,
        digests: &[String],
        now: OffsetDateTime,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("set_backup_codes");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE user_factors SET backup_codes = $3, updated_at = $4 \
             WHERE mode = $1 AND user_id = $2 AND totp_confirmed = 1",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .bind(to_json(&digests)?)
        .bind(to_unix_ms(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "backup codes need TOTP set up first".into(),
            ));
        }
        let event = record(&());
        self.commit_write(tx, (), Some(event), Vec::new()).await
    }

    /// Removes a factor of a user. `NotFound("factor")` when it is not set.
    pub async fn remove_factor(
        &self,
        mode: Mode,
        user_id: &str,
        factor: RemovableFactor,
        now: OffsetDateTime,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("remove_factor");
        let mut tx = self.begin_write().await?;
        require_user(&mut tx, mode, user_id).await?;
        let sql = match factor {
            RemovableFactor::Password => {
                "UPDATE user_factors SET password_hash = NULL, updated_at = $3 \
                 WHERE mode = $1 AND user_id = $2 AND password_hash IS NOT NULL"
            }
            RemovableFactor::Totp => {
                "UPDATE user_factors SET totp_secret = NULL, totp_confirmed = 0, \
                 totp_last_step = NULL, backup_codes = '[]', updated_at = $3 \
                 WHERE mode = $1 AND user_id = $2 AND totp_secret IS NOT NULL"
            }
            RemovableFactor::BackupCodes => {
                "UPDATE user_factors SET backup_codes = '[]', updated_at = $3 \
                 WHERE mode = $1 AND user_id = $2 AND backup_codes <> '[]'"
            }
        };
        let done = sqlx::query(sql)
            .bind(mode.as_str())
            .bind(user_id)
            .bind(to_unix_ms(now))
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("factor"));
        }
        let event = record(&());
        self.commit_write(tx, (), Some(event), Vec::new()).await
    }

    /// Marks a TOTP step used, if it is after the last one used: `false`
    /// when the code was used already (here or on another node).
    pub async fn use_totp_step(&self, mode: Mode, user_id: &str, step: i64) -> StoreResult<bool> {
        let _timer = self.timed("use_totp_step");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE user_factors SET totp_last_step = $3 WHERE mode = $1 AND user_id = $2 \
             AND totp_confirmed = 1 AND (totp_last_step IS NULL OR totp_last_step < $3)",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends a backup code by its digest: `false` when it is not (or no
    /// longer) one of the user's.
    pub async fn use_backup_code(
        &self,
        mode: Mode,
        user_id: &str,
        digest: &str,
    ) -> StoreResult<bool> {
        let _timer = self.timed("use_backup_code");
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT backup_codes FROM user_factors WHERE mode = $1 AND user_id = $2 AND totp_confirmed = 1",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(false) };
        let before: String = row.try_get("backup_codes")?;
        let mut codes: Vec<String> = serde_json::from_str(&before)?;
        let Some(at) = codes.iter().position(|c| c == digest) else {
            return Ok(false);
        };
        codes.remove(at);
        let done = sqlx::query(
            "UPDATE user_factors SET backup_codes = $4 WHERE mode = $1 AND user_id = $2 AND backup_codes = $3",
        )
        .bind(mode.as_str())
        .bind(user_id)
        .bind(&before)
        .bind(to_json(&codes)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every tenant's own login policy in a mode.
    pub async fn login_policies(&self, mode: Mode) -> StoreResult<HashMap<String, LoginPolicy>> {
        let _timer = self.timed("login_policies");
        let rows = sqlx::query("SELECT tenant_id, policy FROM login_policies WHERE mode = $1")
            .bind(mode.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let policy: String = row.try_get("policy")?;
                Ok((row.try_get("tenant_id")?, serde_json::from_str(&policy)?))
            })
            .collect()
    }

    /// Sets a tenant's own login policy.
    pub async fn put_login_policy(
        &self,
        mode: Mode,
        tenant_id: &str,
        policy: &LoginPolicy,
        now: OffsetDateTime,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<()>> {
        let _timer = self.timed("put_login_policy");
        let mut tx = self.begin_write().await?;
        let tenant = sqlx::query("SELECT id FROM tenants WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
        if tenant.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        sqlx::query(
            "INSERT INTO login_policies (mode, tenant_id, policy, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mode, tenant_id) DO UPDATE SET policy = excluded.policy, \
             updated_at = excluded.updated_at",
        )
        .bind(mode.as_str())
        .bind(tenant_id)
        .bind(to_json(policy)?)
        .bind(to_unix_ms(now))
        .execute(&mut *tx)
        .await?;
        let event = record(&());
        self.commit_write(tx, (), Some(event), Vec::new()).await
    }

    /// Removes a tenant's own login policy (it then takes the one above).
    /// A tenant without one is left as it is, with no event; `true` when a
    /// policy was removed. `NotFound("tenant")` for an unknown tenant.
    pub async fn delete_login_policy(
        &self,
        mode: Mode,
        tenant_id: &str,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Written<bool>> {
        let _timer = self.timed("delete_login_policy");
        let mut tx = self.begin_write().await?;
        let tenant = sqlx::query("SELECT id FROM tenants WHERE mode = $1 AND id = $2")
            .bind(mode.as_str())
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
        if tenant.is_none() {
            return Err(StoreError::NotFound("tenant"));
        }
        let done = sqlx::query("DELETE FROM login_policies WHERE mode = $1 AND tenant_id = $2")
            .bind(mode.as_str())
            .bind(tenant_id)
            .execute(&mut *tx)
            .await?;
        let removed = done.rows_affected() > 0;
        let event = removed.then(|| record(&()));
        self.commit_write(tx, removed, event, Vec::new()).await
    }

    /// Stores a new login, and drops logins that died a day ago or more.
    pub async fn create_login(
        &self,
        mode: Mode,
        login: &LoginRecord,
        now: OffsetDateTime,
    ) -> StoreResult<()> {
        let _timer = self.timed("create_login");
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM logins WHERE expires_at < $1")
            .bind(to_unix_ms(now) - 24 * 3600 * 1000)
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO logins (mode, {LOGIN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, \
             NULL, NULL, NULL, 0, NULL, NULL, $9, $10)"
        ))
        .bind(mode.as_str())
        .bind(&login.id)
        .bind(login.secret_digest.to_hex())
        .bind(login.user_id.as_deref())
        .bind(&login.subject)
        .bind(&login.tenant_id)
        .bind(login.redirect_uri.as_deref())
        .bind(to_json(&login.satisfied)?)
        .bind(to_unix_ms(login.created_at))
        .bind(to_unix_ms(login.expires_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A login by id.
    pub async fn login(&self, mode: Mode, id: &str) -> StoreResult<Option<LoginRecord>> {
        let _timer = self.timed("login");
        let row = sqlx::query(&format!(
            "SELECT {LOGIN_COLUMNS} FROM logins WHERE mode = $1 AND id = $2"
        ))
        .bind(mode.as_str())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(login_of).transpose()
    }

    /// The login a magic link's token (by digest) belongs to.
    pub async fn login_by_link(
        &self,
        mode: Mode,
        digest: &str,
    ) -> StoreResult<Option<LoginRecord>> {
        let _timer = self.timed("login_by_link");
        let row = sqlx::query(&format!(
            "SELECT {LOGIN_COLUMNS} FROM logins WHERE challenge_digest = $2 AND mode = $1 \
             AND challenge_factor = 'magic_link'"
        ))
        .bind(mode.as_str())
        .bind(digest)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(login_of).transpose()
    }

    /// Counts a failed step; with `challenge`, a wrong try of the code in
    /// flight too. Returns the login's failures and the code's tries.
    pub async fn login_failed(
        &self,
        mode: Mode,
        id: &str,
        challenge: bool,
    ) -> StoreResult<(i64, i64)> {
        let _timer = self.timed("login_failed");
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "UPDATE logins SET failures = failures + 1, challenge_tries = challenge_tries + $3 \
             WHERE mode = $1 AND id = $2 RETURNING failures, challenge_tries",
        )
        .bind(mode.as_str())
        .bind(id)
        .bind(i64::from(challenge))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("login"))?;
        tx.commit().await?;
        Ok((row.try_get("failures")?, row.try_get("challenge_tries")?))
    }

    /// Adds a passed factor, if the login still holds `before` (another
    /// step did not change it meanwhile) and is not complete; with
    /// `clear_challenge`, the code or link in flight is spent. `false`
    /// when the login changed: read it again.
    pub async fn login_passed(
        &self,
        mode: Mode,
        id: &str,
        before: &[String],
        after: &[String],
        clear_challenge: bool,
    ) -> StoreResult<bool> {
        let _timer = self.timed("login_passed");
        let mut tx = self.begin_write().await?;
        let sql = if clear_challenge {
            "UPDATE logins SET satisfied = $4, challenge_factor = NULL, challenge_digest = NULL, \
             challenge_expires_at = NULL, challenge_tries = 0 \
             WHERE mode = $1 AND id = $2 AND satisfied = $3 AND session_id IS NULL"
        } else {
            "UPDATE logins SET satisfied = $4 \
             WHERE mode = $1 AND id = $2 AND satisfied = $3 AND session_id IS NULL"
        };
        let done = sqlx::query(sql)
            .bind(mode.as_str())
            .bind(id)
            .bind(to_json(&before)?)
            .bind(to_json(&after)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Puts a new code or link in flight (replacing any other).
    pub async fn set_challenge(
        &self,
        mode: Mode,
        id: &str,
        challenge: &Challenge,
    ) -> StoreResult<()> {
        let _timer = self.timed("set_challenge");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE logins SET challenge_factor = $3, challenge_digest = $4, \
             challenge_expires_at = $5, challenge_tries = $6 \
             WHERE mode = $1 AND id = $2 AND session_id IS NULL",
        )
        .bind(mode.as_str())
        .bind(id)
        .bind(&challenge.factor)
        .bind(&challenge.digest)
        .bind(to_unix_ms(challenge.expires_at))
        .bind(challenge.tries)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("login"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Hands out a complete login's session: stores it with its first
    /// refresh token, once. `None` when the login's session was already
    /// handed out (another request got there first).
    pub async fn complete_login(
        &self,
        mode: Mode,
        login_id: &str,
        session: &SessionRecord,
        refresh_digest: &CredentialDigest,
        record: impl FnOnce(&()) -> AuditEvent + Send,
    ) -> StoreResult<Option<Written<()>>> {
        let _timer = self.timed("complete_login");
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE logins SET session_id = $3, challenge_factor = NULL, challenge_digest = NULL \
             WHERE mode = $1 AND id = $2 AND session_id IS NULL",
        )
        .bind(mode.as_str())
        .bind(login_id)
        .bind(&session.id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        insert_session(&mut tx, mode, session, refresh_digest).await?;
        let event = record(&());
        self.commit_write(tx, (), Some(event), Vec::new())
            .await
            .map(Some)
    }
}

/// `NotFound("user")` unless the user exists in this mode.
/// Sets a user's password hash (the user known to exist).
pub(crate) async fn upsert_password(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mode: Mode,
    user_id: &str,
    hash: &str,
    now_ms: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO user_factors (mode, user_id, password_hash, totp_confirmed, backup_codes, \
         updated_at) VALUES ($1, $2, $3, 0, '[]', $4) ON CONFLICT (mode, user_id) DO UPDATE \
         SET password_hash = excluded.password_hash, updated_at = excluded.updated_at",
    )
    .bind(mode.as_str())
    .bind(user_id)
    .bind(hash)
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn require_user(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    mode: Mode,
    user_id: &str,
) -> StoreResult<()> {
    let user = sqlx::query("SELECT id FROM users WHERE mode = $1 AND id = $2")
        .bind(mode.as_str())
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    match user {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound("user")),
    }
}
