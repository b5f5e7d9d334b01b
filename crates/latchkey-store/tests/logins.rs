//! The login and session half of the store conformance suite: on SQLite,
//! and on PostgreSQL when `LATCHKEY_TEST_POSTGRES_URL` is set.

use latchkey_core::credential::CredentialDigest;
use latchkey_store::{
    Challenge, LoginRecord, NewTenant, NewUser, PageRequest, Refreshed, RemovableFactor, Rotation,
    SessionRecord, Store, StoreError, WorkspaceRecord,
};
use latchkey_types::login::{Factor, LoginPolicy};
use latchkey_types::{JsonObject, Mode, UserKind};
use time::{Duration, OffsetDateTime};

#[macro_use]
mod common;

use common::{rec, Value};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

async fn setup(s: &Store) {
    let ws = WorkspaceRecord {
        id: "ws".into(),
        name: "Workspace".into(),
        created_at: now(),
    };
    s.bootstrap(&ws, &[], &[], &[]).await.unwrap();
    for (id, email, username) in [
        ("usr_a", Some("A@Example.com"), Some("alice")),
        ("usr_b", Some("shared@example.com"), None),
        ("usr_c", Some("shared@example.com"), None),
    ] {
        let user = NewUser {
            id: id.into(),
            external_id: None,
            kind: UserKind::Machine,
            name: id.into(),
            email: email.map(Into::into),
            username: username.map(Into::into),
            phone_number: Some(format!("+1555{}", &id[4..])),
            email_verified: false,
            phone_verified: false,
            metadata: JsonObject::new(),
            custom_claims: JsonObject::new(),
            disabled: false,
            token_ttl_seconds: None,
        };
        s.create_user(Mode::Test, &user, now(), rec()).await.v();
    }
}

fn login(id: &str, user: Option<&str>) -> LoginRecord {
    LoginRecord {
        id: id.into(),
        secret_digest: CredentialDigest::of(id),
        user_id: user.map(Into::into),
        subject: user.unwrap_or("anon").into(),
        tenant_id: "ws".into(),
        redirect_uri: None,
        satisfied: Vec::new(),
        failures: 0,
        challenge: None,
        session_id: None,
        browser_code_digest: None,
        created_at: now(),
        expires_at: now() + Duration::minutes(15),
    }
}

fn session(id: &str, user: &str) -> SessionRecord {
    SessionRecord {
        id: id.into(),
        user_id: user.into(),
        tenant_id: "ws".into(),
        factors: vec!["password".into()],
        auth_time: now(),
        created_at: now(),
        last_used_at: now(),
        expires_at: now() + Duration::days(30),
        idle_timeout_seconds: 7 * 86400,
        ended_at: None,
        end_reason: None,
    }
}

async fn identifiers_name_one_user_or_nobody(s: &Store) {
    setup(s).await;
    for (identifier, expected) in [
        ("usr_a", Some("usr_a")),
        ("a@example.com", Some("usr_a")),
        ("alice", Some("usr_a")),
        ("+1555b", Some("usr_b")),
        ("shared@example.com", None),
        ("nobody@example.com", None),
        ("a\0", None),
    ] {
        assert_eq!(
            s.find_login_user(Mode::Test, identifier)
                .await
                .unwrap()
                .as_deref(),
            expected,
            "{identifier}"
        );
    }
    assert_eq!(s.find_login_user(Mode::Live, "usr_a").await.unwrap(), None);
}

async fn factors_are_set_used_once_and_removed(s: &Store) {
    setup(s).await;
    assert_eq!(
        s.user_factors(Mode::Test, "usr_a").await.unwrap(),
        Default::default()
    );
    assert!(matches!(
        s.set_password(Mode::Test, "usr_404", "h", now(), None, rec())
            .await,
        Err(StoreError::NotFound(_))
    ));
    s.set_password(Mode::Test, "usr_a", "$argon2id$x", now(), None, rec())
        .await
        .v();
    // TOTP: pending, confirmed once, each step once.
    s.start_totp(Mode::Test, "usr_a", "sealed-1", now())
        .await
        .unwrap();
    s.start_totp(Mode::Test, "usr_a", "sealed-2", now())
        .await
        .unwrap();
    assert!(
        !s.use_totp_step(Mode::Test, "usr_a", 5).await.unwrap(),
        "not confirmed yet"
    );
    let codes = vec!["d1".to_string(), "d2".to_string()];
    s.confirm_totp(Mode::Test, "usr_a", 10, &codes, now(), rec())
        .await
        .v();
    assert!(matches!(
        s.confirm_totp(Mode::Test, "usr_a", 11, &codes, now(), rec())
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.start_totp(Mode::Test, "usr_a", "sealed-3", now()).await,
        Err(StoreError::Conflict(_))
    ));
    let f = s.user_factors(Mode::Test, "usr_a").await.unwrap();
    assert_eq!(f.password_hash.as_deref(), Some("$argon2id$x"));
    assert_eq!(f.totp_secret.as_deref(), Some("sealed-2"));
    assert!(f.totp_confirmed);
    assert_eq!(f.totp_last_step, Some(10));
    assert!(
        !s.use_totp_step(Mode::Test, "usr_a", 10).await.unwrap(),
        "the confirming code"
    );
    assert!(s.use_totp_step(Mode::Test, "usr_a", 11).await.unwrap());
    assert!(
        !s.use_totp_step(Mode::Test, "usr_a", 11).await.unwrap(),
        "once"
    );
    // Backup codes: each once.
    assert!(s.use_backup_code(Mode::Test, "usr_a", "d1").await.unwrap());
    assert!(!s.use_backup_code(Mode::Test, "usr_a", "d1").await.unwrap());
    assert!(!s
        .use_backup_code(Mode::Test, "usr_a", "nope")
        .await
        .unwrap());
    assert_eq!(
        s.user_factors(Mode::Test, "usr_a")
            .await
            .unwrap()
            .backup_codes,
        ["d2"]
    );
    // The other mode sees none of it.
    assert_eq!(
        s.user_factors(Mode::Live, "usr_a").await.unwrap(),
        Default::default()
    );
    // Removal.
    s.remove_factor(Mode::Test, "usr_a", RemovableFactor::Totp, now(), rec())
        .await
        .v();
    assert!(matches!(
        s.remove_factor(Mode::Test, "usr_a", RemovableFactor::Totp, now(), rec())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let f = s.user_factors(Mode::Test, "usr_a").await.unwrap();
    assert!(f.totp_secret.is_none() && !f.totp_confirmed && f.backup_codes.is_empty());
    assert!(f.password_hash.is_some());
}

async fn policies_are_set_per_tenant(s: &Store) {
    setup(s).await;
    let policy = LoginPolicy {
        factors: vec![Factor::Password, Factor::Totp],
        require: vec![vec![Factor::Password, Factor::Totp]],
        session_lifetime_seconds: 3600,
        idle_timeout_seconds: 600,
        password_min_length: 16,
        require_enrolled_factors: true,
        self_service_api_keys: true,
        allowed_redirect_uris: vec!["https://app.example/done".into()],
    };
    assert!(matches!(
        s.put_login_policy(Mode::Test, "nope", &policy, now(), rec())
            .await,
        Err(StoreError::NotFound(_))
    ));
    s.put_login_policy(Mode::Test, "ws", &policy, now(), rec())
        .await
        .v();
    s.put_login_policy(Mode::Test, "ws", &policy, now(), rec())
        .await
        .v();
    let all = s.login_policies(Mode::Test).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all["ws"], policy);
    assert!(s.login_policies(Mode::Live).await.unwrap().is_empty());
    let child = NewTenant {
        id: "a".into(),
        name: "A".into(),
        parent_id: "ws".into(),
        cascade: true,
        metadata: JsonObject::new(),
    };
    s.create_tenant(Mode::Test, &child, now(), rec()).await.v();
    s.put_login_policy(Mode::Test, "a", &policy, now(), rec())
        .await
        .v();
    assert!(s.delete_login_policy(Mode::Test, "a", rec()).await.v());
    assert!(!s.delete_login_policy(Mode::Test, "a", rec()).await.v());
    assert!(matches!(
        s.delete_login_policy(Mode::Test, "nope", rec()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn logins_move_by_conditional_steps_and_complete_once(s: &Store) {
    setup(s).await;
    s.create_login(Mode::Test, &login("lgn_1", Some("usr_a")), now())
        .await
        .unwrap();
    let got = s.login(Mode::Test, "lgn_1").await.unwrap().unwrap();
    assert_eq!(got, login("lgn_1", Some("usr_a")));
    assert_eq!(s.login(Mode::Live, "lgn_1").await.unwrap(), None);
    // Failures count; a code's tries count with them.
    assert_eq!(
        s.login_failed(Mode::Test, "lgn_1", false).await.unwrap(),
        (1, 0)
    );
    let challenge = Challenge {
        factor: "magic_link".into(),
        digest: "abc".into(),
        expires_at: now() + Duration::minutes(10),
        tries: 0,
    };
    s.set_challenge(Mode::Test, "lgn_1", &challenge)
        .await
        .unwrap();
    assert_eq!(
        s.login_failed(Mode::Test, "lgn_1", true).await.unwrap(),
        (2, 1)
    );
    assert_eq!(
        s.login_by_link(Mode::Test, "abc")
            .await
            .unwrap()
            .unwrap()
            .id,
        "lgn_1"
    );
    assert_eq!(s.login_by_link(Mode::Live, "abc").await.unwrap(), None);
    // A step lands only on the login it read.
    let pwd = vec!["password".to_string()];
    assert!(s
        .login_passed(Mode::Test, "lgn_1", &[], &pwd, false)
        .await
        .unwrap());
    assert!(!s
        .login_passed(Mode::Test, "lgn_1", &[], &pwd, false)
        .await
        .unwrap());
    let both = vec!["password".to_string(), "magic_link".to_string()];
    assert!(s
        .login_passed(Mode::Test, "lgn_1", &pwd, &both, true)
        .await
        .unwrap());
    let got = s.login(Mode::Test, "lgn_1").await.unwrap().unwrap();
    assert_eq!((got.satisfied, got.challenge), (both.clone(), None));
    assert_eq!(
        s.login_by_link(Mode::Test, "abc").await.unwrap(),
        None,
        "a link is spent"
    );
    // The session is handed out once.
    let refresh = CredentialDigest::of("refresh-1");
    let first = s
        .complete_login(
            Mode::Test,
            "lgn_1",
            &session("ses_1", "usr_a"),
            &refresh,
            rec(),
        )
        .await
        .unwrap();
    assert!(first.is_some());
    let again = s
        .complete_login(
            Mode::Test,
            "lgn_1",
            &session("ses_2", "usr_a"),
            &CredentialDigest::of("r2"),
            rec(),
        )
        .await
        .unwrap();
    assert!(again.is_none());
    assert!(
        !s.login_passed(Mode::Test, "lgn_1", &both, &pwd, false)
            .await
            .unwrap(),
        "complete"
    );
    assert_eq!(
        s.session(Mode::Test, "ses_1").await.unwrap().unwrap(),
        session("ses_1", "usr_a")
    );
    assert_eq!(s.session(Mode::Test, "ses_2").await.unwrap(), None);
    // Logins dead for a day are dropped when the next one starts.
    s.create_login(Mode::Test, &login("lgn_2", None), now() + Duration::days(2))
        .await
        .unwrap();
    assert_eq!(s.login(Mode::Test, "lgn_1").await.unwrap(), None);
}

fn rotation<'a>(next: &'a CredentialDigest, sealed: &'a str, at: OffsetDateTime) -> Rotation<'a> {
    Rotation {
        next,
        sealed_next: sealed,
        tenant_id: None,
        now: at,
        retry_window_ms: 10_000,
    }
}

async fn refresh_tokens_rotate_retry_and_revoke_the_family_on_reuse(s: &Store) {
    setup(s).await;
    s.create_login(Mode::Test, &login("lgn_1", Some("usr_a")), now())
        .await
        .unwrap();
    let r1 = CredentialDigest::of("r1");
    s.complete_login(Mode::Test, "lgn_1", &session("ses_1", "usr_a"), &r1, rec())
        .await
        .unwrap()
        .unwrap()
        .into_parts();
    let (r2, r3) = (CredentialDigest::of("r2"), CredentialDigest::of("r3"));
    let t1 = now() + Duration::minutes(1);
    let (got, _) = s
        .refresh_session(Mode::Test, &r1, rotation(&r2, "sealed-r2", t1), rec())
        .await
        .unwrap();
    let Refreshed::Rotated(session) = got else {
        panic!("{got:?}")
    };
    assert_eq!(session.last_used_at, t1);
    // A retry within 10 s: the same successor, nothing changes.
    let (got, _) = s
        .refresh_session(
            Mode::Test,
            &r1,
            rotation(&r3, "sealed-r3", t1 + Duration::seconds(10)),
            rec(),
        )
        .await
        .unwrap();
    assert!(
        matches!(got, Refreshed::Retry { ref successor, .. } if successor == "sealed-r2"),
        "{got:?}"
    );
    // The successor rotates, re-scoped.
    let tenant_rotation = Rotation {
        tenant_id: Some("ws"),
        ..rotation(&r3, "sealed-r3", t1 + Duration::seconds(20))
    };
    let (got, _) = s
        .refresh_session(Mode::Test, &r2, tenant_rotation, rec())
        .await
        .unwrap();
    assert!(matches!(got, Refreshed::Rotated(_)), "{got:?}");
    // r1 again, after the window: the family is revoked, with an event.
    let r4 = CredentialDigest::of("r4");
    let (got, written) = s
        .refresh_session(
            Mode::Test,
            &r1,
            rotation(&r4, "sealed-r4", t1 + Duration::seconds(30)),
            rec(),
        )
        .await
        .unwrap();
    assert!(
        matches!(got, Refreshed::Reused(ref s) if s.end_reason.as_deref() == Some("refresh_token_reused"))
    );
    assert_eq!(written.map(|w| w.events()), Some(1));
    // Now even the newest token of the family is dead.
    let (got, _) = s
        .refresh_session(
            Mode::Test,
            &r3,
            rotation(&r4, "x", t1 + Duration::seconds(31)),
            rec(),
        )
        .await
        .unwrap();
    assert_eq!(got, Refreshed::Invalid);
    assert!(s
        .session_by_refresh(Mode::Test, &r3)
        .await
        .unwrap()
        .unwrap()
        .ended_at
        .is_some());
    // Unknown token, or the other mode.
    let (got, _) = s
        .refresh_session(Mode::Live, &r3, rotation(&r4, "x", t1), rec())
        .await
        .unwrap();
    assert_eq!(got, Refreshed::Invalid);
}

async fn sessions_list_end_and_expire(s: &Store) {
    setup(s).await;
    for (i, id) in ["ses_1", "ses_2", "ses_3"].iter().enumerate() {
        let login_id = format!("lgn_{i}");
        s.create_login(Mode::Test, &login(&login_id, Some("usr_a")), now())
            .await
            .unwrap();
        let digest = CredentialDigest::of(id);
        s.complete_login(Mode::Test, &login_id, &session(id, "usr_a"), &digest, rec())
            .await
            .unwrap()
            .unwrap()
            .into_parts();
    }
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    let ids = |r: latchkey_store::PageResult<SessionRecord>| {
        r.items.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s
            .list_sessions(Mode::Test, "usr_a", now(), &page)
            .await
            .unwrap()),
        ["ses_1", "ses_2", "ses_3"]
    );
    // Idle for eight days: none alive.
    let later = now() + Duration::days(8);
    assert!(ids(s
        .list_sessions(Mode::Test, "usr_a", later, &page)
        .await
        .unwrap())
    .is_empty());
    // A user ends its own; not another's.
    assert!(matches!(
        s.end_session(Mode::Test, "ses_1", Some("usr_b"), "logout", now(), rec())
            .await,
        Err(StoreError::NotFound(_))
    ));
    let ended = s
        .end_session(Mode::Test, "ses_1", Some("usr_a"), "logout", now(), rec())
        .await
        .v();
    assert_eq!(ended.end_reason.as_deref(), Some("logout"));
    assert!(matches!(
        s.end_session(Mode::Test, "ses_1", None, "admin", now(), rec())
            .await,
        Err(StoreError::NotFound(_))
    ));
    // A password change from ses_2 ends the others.
    s.set_password(Mode::Test, "usr_a", "h", now(), Some(Some("ses_2")), rec())
        .await
        .v();
    assert_eq!(
        ids(s
            .list_sessions(Mode::Test, "usr_a", now(), &page)
            .await
            .unwrap()),
        ["ses_2"]
    );
    assert_eq!(
        s.end_user_sessions(Mode::Test, "usr_a", "admin", now(), rec())
            .await
            .v(),
        1
    );
    assert!(ids(s
        .list_sessions(Mode::Test, "usr_a", now(), &page)
        .await
        .unwrap())
    .is_empty());
    // Deleting the user deletes its sessions.
    s.delete_user(Mode::Test, "usr_a", rec()).await.v();
    assert_eq!(s.session(Mode::Test, "ses_2").await.unwrap(), None);
}

conformance!(
    identifiers_name_one_user_or_nobody,
    factors_are_set_used_once_and_removed,
    policies_are_set_per_tenant,
    logins_move_by_conditional_steps_and_complete_once,
    refresh_tokens_rotate_retry_and_revoke_the_family_on_reuse,
    sessions_list_end_and_expire,
);
