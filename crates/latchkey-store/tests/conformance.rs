//! The store conformance suite: every test runs on a fresh SQLite database,
//! and on a fresh PostgreSQL database when `LATCHKEY_TEST_POSTGRES_URL` is
//! set (otherwise the PostgreSQL half says it was skipped).

use latchkey_core::credential::CredentialDigest;
use latchkey_store::{
    AdminKeyRecord, AuditFilter, NewApiKey, NewSecret, NewTenant, NewUser, PageRequest,
    SigningKeyRecord, Store, StoreError, WorkspaceRecord,
};
use latchkey_types::admin::{UpdateTenant, UpdateUser};
use latchkey_types::audit::{AuditAction, AuditActor, AuditEvent, AuditTarget};
use latchkey_types::{JsonObject, Mode, UserKind};
use time::OffsetDateTime;

#[macro_use]
mod common;

use common::{rec, Value};

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn page(limit: u32) -> PageRequest {
    PageRequest { limit, after: None }
}

async fn bootstrapped(store: &Store) {
    let ws = WorkspaceRecord {
        id: "ws".into(),
        name: "Workspace".into(),
        created_at: now(),
    };
    let keys = [SigningKeyRecord {
        kid: "k1".into(),
        mode: Mode::Test,
        alg: "EdDSA".into(),
        private_pkcs8: "AAAA".into(),
        created_at: now(),
        not_before: now(),
    }];
    let admin = [AdminKeyRecord {
        id: "adm_1".into(),
        mode: Mode::Live,
        digest: CredentialDigest::of("admin-key"),
        created_at: now(),
    }];
    store.bootstrap(&ws, &keys, &admin, &[]).await.unwrap();
}

fn tenant(id: &str, parent: &str, cascade: bool) -> NewTenant {
    NewTenant {
        id: id.into(),
        name: id.to_uppercase(),
        parent_id: parent.into(),
        cascade,
        metadata: JsonObject::new(),
    }
}

fn user(id: &str, username: Option<&str>) -> NewUser {
    NewUser {
        id: id.into(),
        external_id: None,
        kind: UserKind::Machine,
        name: format!("machine {id}"),
        email: None,
        username: username.map(str::to_string),
        phone_number: None,
        email_verified: false,
        phone_verified: false,
        metadata: JsonObject::new(),
        custom_claims: serde_json::from_str(r#"{"region":"eu"}"#).unwrap(),
        disabled: false,
        token_ttl_seconds: None,
    }
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::NotFound(_)))
}

async fn bootstrap_happens_once_and_creates_a_root_tenant_per_mode(s: &Store) {
    assert!(s.workspace().await.unwrap().is_none());
    bootstrapped(s).await;
    let ws = s.workspace().await.unwrap().unwrap();
    assert_eq!(ws.id, "ws");
    for mode in Mode::ALL {
        let root = s.get_tenant(mode, "ws").await.unwrap();
        assert_eq!(root.parent_id, None);
        assert_eq!(root.mode, mode);
    }
    let again = WorkspaceRecord {
        id: "other".into(),
        name: "x".into(),
        created_at: now(),
    };
    assert!(is_conflict(s.bootstrap(&again, &[], &[], &[]).await));
    assert_eq!(s.signing_keys().await.unwrap().len(), 1);
    // A scheduled rotation adds one key, not one per node.
    let next = SigningKeyRecord {
        kid: "k2".into(),
        mode: Mode::Test,
        alg: "EdDSA".into(),
        private_pkcs8: "v1.sealed".into(),
        created_at: now() + time::Duration::seconds(10),
        not_before: now() + time::Duration::seconds(610),
    };
    assert!(s.add_signing_key(&next, Some(now()), rec()).await.v());
    let mut again = next.clone();
    again.kid = "k3".into();
    assert!(!s.add_signing_key(&again, Some(now()), rec()).await.v());
    let keys = s.signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].private_pkcs8, "AAAA");
    assert_eq!(keys[1].not_before, next.not_before);
    let admin = s
        .find_admin_key(&CredentialDigest::of("admin-key"))
        .await
        .unwrap();
    assert_eq!(admin.unwrap().mode, Mode::Live);
    assert!(s
        .find_admin_key(&CredentialDigest::of("nope"))
        .await
        .unwrap()
        .is_none());
}

async fn tenants_nest_move_and_refuse_cycles(s: &Store) {
    bootstrapped(s).await;
    s.create_tenant(Mode::Test, &tenant("a", "ws", true), now(), rec())
        .await
        .v();
    s.create_tenant(Mode::Test, &tenant("b", "a", true), now(), rec())
        .await
        .v();
    s.create_tenant(Mode::Test, &tenant("c", "b", false), now(), rec())
        .await
        .v();
    assert!(is_conflict(
        s.create_tenant(Mode::Test, &tenant("a", "ws", true), now(), rec())
            .await
    ));
    assert!(is_not_found(
        s.create_tenant(Mode::Test, &tenant("d", "zz", true), now(), rec())
            .await
    ));

    let move_under = |p: &str| UpdateTenant {
        parent_id: Some(p.into()),
        ..Default::default()
    };
    assert!(is_conflict(
        s.update_tenant(Mode::Test, "a", &move_under("c"), rec())
            .await
    ));
    assert!(is_conflict(
        s.update_tenant(Mode::Test, "a", &move_under("a"), rec())
            .await
    ));
    assert!(is_conflict(
        s.update_tenant(Mode::Test, "ws", &move_under("a"), rec())
            .await
    ));
    // The refused move left the tree as it was.
    assert_eq!(
        s.get_tenant(Mode::Test, "a")
            .await
            .unwrap()
            .parent_id
            .as_deref(),
        Some("ws")
    );
    let moved = s
        .update_tenant(Mode::Test, "c", &move_under("a"), rec())
        .await
        .v();
    assert_eq!(moved.parent_id.as_deref(), Some("a"));
    assert!(!moved.cascade);

    let mut tree = s.tenant_tree(Mode::Test).await.unwrap();
    tree.sort();
    assert_eq!(
        tree,
        vec![
            ("a".into(), Some("ws".into()), true),
            ("b".into(), Some("a".into()), true),
            ("c".into(), Some("a".into()), false),
            ("ws".into(), None, true),
        ]
    );
    let children = s
        .list_tenants(Mode::Test, Some("a"), &page(50))
        .await
        .unwrap();
    let ids: Vec<_> = children.items.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec!["b", "c"]);
}

async fn tenants_with_children_or_members_cannot_be_deleted(s: &Store) {
    bootstrapped(s).await;
    s.create_tenant(Mode::Test, &tenant("a", "ws", true), now(), rec())
        .await
        .v();
    s.create_tenant(Mode::Test, &tenant("b", "a", true), now(), rec())
        .await
        .v();
    s.create_user(Mode::Test, &user("usr_1", None), now(), rec())
        .await
        .v();
    s.set_roles(Mode::Test, "b", "usr_1", &["viewer".into()], now(), rec())
        .await
        .v();
    assert!(is_conflict(s.delete_tenant(Mode::Test, "a", rec()).await));
    assert!(is_conflict(s.delete_tenant(Mode::Test, "b", rec()).await));
    assert!(is_conflict(s.delete_tenant(Mode::Test, "ws", rec()).await));
    assert!(s
        .set_roles(Mode::Test, "b", "usr_1", &[], now(), rec())
        .await
        .v()
        .is_none());
    s.delete_tenant(Mode::Test, "b", rec()).await.v();
    s.delete_tenant(Mode::Test, "a", rec()).await.v();
    assert!(is_not_found(s.get_tenant(Mode::Test, "a").await));
    assert!(is_not_found(s.delete_tenant(Mode::Test, "a", rec()).await));
}

async fn modes_never_see_each_other(s: &Store) {
    bootstrapped(s).await;
    s.create_tenant(Mode::Live, &tenant("prod", "ws", true), now(), rec())
        .await
        .v();
    s.create_user(Mode::Live, &user("usr_live", Some("edge")), now(), rec())
        .await
        .v();
    assert!(is_not_found(s.get_tenant(Mode::Test, "prod").await));
    assert!(is_not_found(s.get_user(Mode::Test, "usr_live").await));
    assert!(s
        .load_principal(Mode::Test, "usr_live")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .list_tenants(Mode::Test, None, &page(50))
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(is_not_found(
        s.set_roles(
            Mode::Test,
            "ws",
            "usr_live",
            &["admin".into()],
            now(),
            rec()
        )
        .await
    ));
    // The same ids and usernames may exist in both modes independently.
    s.create_tenant(Mode::Test, &tenant("prod", "ws", true), now(), rec())
        .await
        .v();
    s.create_user(Mode::Test, &user("usr_live", Some("edge")), now(), rec())
        .await
        .v();
    s.delete_user(Mode::Test, "usr_live", rec()).await.v();
    assert!(s.get_user(Mode::Live, "usr_live").await.is_ok());
}

async fn users_update_delete_and_keep_usernames_unique(s: &Store) {
    bootstrapped(s).await;
    let u = s
        .create_user(Mode::Test, &user("usr_1", Some("sensor")), now(), rec())
        .await
        .v();
    assert_eq!(u.custom_claims["region"], "eu");
    assert!(is_conflict(
        s.create_user(Mode::Test, &user("usr_2", Some("sensor")), now(), rec())
            .await
    ));
    assert!(is_conflict(
        s.create_user(Mode::Test, &user("usr_1", None), now(), rec())
            .await
    ));
    s.create_user(Mode::Test, &user("usr_2", None), now(), rec())
        .await
        .v();
    let taken = UpdateUser {
        username: Some(Some("sensor".into())),
        ..Default::default()
    };
    assert!(is_conflict(
        s.update_user(Mode::Test, "usr_2", &taken, now(), rec())
            .await
    ));
    let patch = UpdateUser {
        name: Some("renamed".into()),
        email: Some(Some("ops@example.com".into())),
        username: Some(None),
        disabled: Some(true),
        token_ttl_seconds: Some(Some(60)),
        ..Default::default()
    };
    let updated = s
        .update_user(Mode::Test, "usr_1", &patch, now(), rec())
        .await
        .v();
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.username, None);
    assert!(updated.disabled);
    assert_eq!(updated.token_ttl_seconds, Some(60));
    assert_eq!(updated.email.as_deref(), Some("ops@example.com"));
    // The freed username can be taken now.
    s.update_user(Mode::Test, "usr_2", &taken, now(), rec())
        .await
        .v();

    s.create_tenant(Mode::Test, &tenant("a", "ws", true), now(), rec())
        .await
        .v();
    s.set_roles(Mode::Test, "a", "usr_1", &["viewer".into()], now(), rec())
        .await
        .v();
    let by_tenant = s
        .list_users(Mode::Test, None, Some("a"), &page(50))
        .await
        .unwrap();
    assert_eq!(by_tenant.items.len(), 1);
    assert_eq!(by_tenant.items[0].id, "usr_1");
    let humans = s
        .list_users(Mode::Test, Some(UserKind::Human), None, &page(50))
        .await
        .unwrap();
    assert!(humans.items.is_empty());

    s.delete_user(Mode::Test, "usr_1", rec()).await.v();
    assert!(is_not_found(
        s.delete_user(Mode::Test, "usr_1", rec()).await
    ));
    // Its membership went with it, so the tenant can be deleted.
    s.delete_tenant(Mode::Test, "a", rec()).await.v();
}

async fn secrets_and_memberships_make_up_the_principal(s: &Store) {
    bootstrapped(s).await;
    s.create_user(Mode::Test, &user("usr_1", None), now(), rec())
        .await
        .v();
    s.create_tenant(Mode::Test, &tenant("a", "ws", true), now(), rec())
        .await
        .v();
    for (id, expiry) in [("sec_1", None), ("sec_2", Some(now()))] {
        let secret = NewSecret {
            id: id.into(),
            user_id: "usr_1".into(),
            name: Some(format!("{id} label")),
            digest: CredentialDigest::of(id),
            expires_at: expiry,
        };
        s.create_secret(Mode::Test, &secret, now(), rec()).await.v();
    }
    let orphan = NewSecret {
        id: "sec_3".into(),
        user_id: "usr_404".into(),
        name: None,
        digest: CredentialDigest::of("sec_3"),
        expires_at: None,
    };
    assert!(is_not_found(
        s.create_secret(Mode::Test, &orphan, now(), rec()).await
    ));
    s.set_roles(
        Mode::Test,
        "a",
        "usr_1",
        &["operator".into(), "viewer".into()],
        now(),
        rec(),
    )
    .await
    .v();
    s.set_roles(Mode::Test, "ws", "usr_1", &["admin".into()], now(), rec())
        .await
        .v();

    let p = s
        .load_principal(Mode::Test, "usr_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.secrets.len(), 2);
    assert!(p
        .secrets
        .iter()
        .any(|x| x.digest == CredentialDigest::of("sec_1")));
    assert_eq!(
        p.secrets
            .iter()
            .find(|x| x.id == "sec_2")
            .unwrap()
            .expires_at,
        Some(now())
    );
    let mut m = p.memberships.clone();
    m.sort();
    assert_eq!(
        m,
        vec![
            ("a".into(), vec!["operator".into(), "viewer".into()]),
            ("ws".into(), vec!["admin".into()]),
        ]
    );

    let listed = s
        .list_secrets(Mode::Test, "usr_1", &page(50))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    s.delete_secret(Mode::Test, "usr_1", "sec_1", rec())
        .await
        .v();
    assert!(is_not_found(
        s.delete_secret(Mode::Test, "usr_1", "sec_1", rec()).await
    ));
    assert!(is_not_found(
        s.delete_secret(Mode::Live, "usr_1", "sec_2", rec()).await
    ));
    let p = s
        .load_principal(Mode::Test, "usr_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.secrets.len(), 1);
    let members = s.list_members(Mode::Test, "a", &page(50)).await.unwrap();
    assert_eq!(members.items[0].roles, vec!["operator", "viewer"]);
}

async fn the_role_catalog_is_replaced_whole_and_lists_in_pages(s: &Store) {
    bootstrapped(s).await;
    let (_, created) = s
        .put_role(
            Mode::Test,
            "operator",
            &["telemetry:write".into()],
            Some("ops"),
            now(),
            rec(),
        )
        .await
        .v();
    assert!(created);
    let (role, created) = s
        .put_role(
            Mode::Test,
            "operator",
            &["telemetry:read".into()],
            None,
            now(),
            rec(),
        )
        .await
        .v();
    assert!(!created);
    assert_eq!(role.permissions, vec!["telemetry:read"]);
    assert_eq!(role.description, None);
    for name in ["a1", "a2", "a3"] {
        s.put_role(Mode::Test, name, &[], None, now(), rec())
            .await
            .v();
    }
    let first = s.list_roles(Mode::Test, &page(2)).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let next = PageRequest {
        limit: 2,
        after: first.next_after.clone(),
    };
    let second = s.list_roles(Mode::Test, &next).await.unwrap();
    let names: Vec<_> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|r| r.name.clone())
        .collect();
    assert_eq!(names, vec!["a1", "a2", "a3", "operator"]);
    assert!(second.next_after.is_none());
    assert_eq!(s.role_catalog(Mode::Test).await.unwrap().len(), 4);
    assert!(s.role_catalog(Mode::Live).await.unwrap().is_empty());
    s.delete_role(Mode::Test, "a1", rec()).await.v();
    assert!(is_not_found(s.delete_role(Mode::Test, "a1", rec()).await));
    assert!(is_not_found(s.get_role(Mode::Live, "operator").await));
}

async fn concurrent_writes_all_land(s: &Store) {
    bootstrapped(s).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.create_tenant(
                Mode::Test,
                &tenant(&format!("t{i:02}"), "ws", true),
                now(),
                rec(),
            )
            .await
        }));
    }
    for t in tasks {
        t.await.unwrap().v();
    }
    let all = s.list_tenants(Mode::Test, None, &page(1000)).await.unwrap();
    assert_eq!(all.items.len(), 24);
}

fn api_key(id: &str, user: &str, digest: &str, remaining: Option<i64>) -> NewApiKey {
    NewApiKey {
        id: id.into(),
        user_id: user.into(),
        tenant_id: "ws".into(),
        name: Some("edge".into()),
        roles: Some(vec!["viewer".into()]),
        metadata: JsonObject::new(),
        ratelimit: Some(latchkey_types::api_keys::RateLimit {
            limit: 10,
            window_seconds: 60,
        }),
        remaining,
        expires_at: None,
        digest: CredentialDigest::of(digest),
    }
}

async fn api_keys_rotate_with_grace_and_revoke(s: &Store) {
    bootstrapped(s).await;
    s.create_user(Mode::Test, &user("usr_1", None), now(), rec())
        .await
        .v();
    let created = s
        .create_api_key(
            Mode::Test,
            &api_key("key_1", "usr_1", "v1", None),
            now(),
            rec(),
        )
        .await
        .v();
    assert_eq!(created.roles, Some(vec!["viewer".to_string()]));
    assert_eq!(created.ratelimit.unwrap().limit, 10);
    assert!(is_not_found(
        s.create_api_key(
            Mode::Test,
            &api_key("key_2", "usr_404", "v2", None),
            now(),
            rec()
        )
        .await
    ));
    let found = s
        .find_api_key(Mode::Test, &CredentialDigest::of("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.key.id, "key_1");
    assert_eq!(found.value_expires_at, None);
    assert!(s
        .find_api_key(Mode::Live, &CredentialDigest::of("v1"))
        .await
        .unwrap()
        .is_none());

    let grace_end = now() + time::Duration::minutes(5);
    s.rotate_api_key(
        Mode::Test,
        "key_1",
        &CredentialDigest::of("v2"),
        grace_end,
        rec(),
    )
    .await
    .v();
    let old = s
        .find_api_key(Mode::Test, &CredentialDigest::of("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.value_expires_at, Some(grace_end));
    let new = s
        .find_api_key(Mode::Test, &CredentialDigest::of("v2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.value_expires_at, None);

    let revoked = s
        .revoke_api_key(Mode::Test, "key_1", now(), rec())
        .await
        .v();
    assert_eq!(revoked.revoked_at, Some(now()));
    assert!(is_conflict(
        s.rotate_api_key(
            Mode::Test,
            "key_1",
            &CredentialDigest::of("v3"),
            now(),
            rec()
        )
        .await
    ));
    // The tenant can go once only revoked keys are left; they go with it.
    s.create_tenant(Mode::Test, &tenant("t", "ws", true), now(), rec())
        .await
        .v();
    let mut scoped = api_key("key_t", "usr_1", "vt", None);
    scoped.tenant_id = "t".into();
    s.create_api_key(Mode::Test, &scoped, now(), rec())
        .await
        .v();
    assert!(is_conflict(s.delete_tenant(Mode::Test, "t", rec()).await));
    s.revoke_api_key(Mode::Test, "key_t", now(), rec())
        .await
        .v();
    s.delete_tenant(Mode::Test, "t", rec()).await.v();

    let listed = s
        .list_api_keys(Mode::Test, Some("usr_1"), None, &page(50))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    s.touch_api_keys(&[(Mode::Test, "key_1".into(), now())])
        .await
        .unwrap();
    assert_eq!(
        s.get_api_key(Mode::Test, "key_1")
            .await
            .unwrap()
            .last_used_at,
        Some(now())
    );
    // Deleting the user takes its keys and their digests along.
    s.delete_user(Mode::Test, "usr_1", rec()).await.v();
    assert!(s
        .find_api_key(Mode::Test, &CredentialDigest::of("v2"))
        .await
        .unwrap()
        .is_none());
}

async fn a_budget_is_never_overspent_under_concurrency(s: &Store) {
    bootstrapped(s).await;
    s.create_user(Mode::Test, &user("usr_1", None), now(), rec())
        .await
        .v();
    s.create_api_key(
        Mode::Test,
        &api_key("key_1", "usr_1", "v1", Some(5)),
        now(),
        rec(),
    )
    .await
    .v();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.spend_api_key_use(Mode::Test, "key_1").await.unwrap()
        }));
    }
    let mut left = Vec::new();
    for t in tasks {
        if let Some(n) = t.await.unwrap() {
            left.push(n);
        }
    }
    left.sort();
    assert_eq!(left, vec![0, 1, 2, 3, 4]);
    assert_eq!(
        s.get_api_key(Mode::Test, "key_1").await.unwrap().remaining,
        Some(0)
    );
}

async fn the_token_deny_list_cleans_itself_up(s: &Store) {
    bootstrapped(s).await;
    let later = now() + time::Duration::hours(1);
    s.revoke_token(Mode::Test, "jti-1", later, rec()).await.v();
    s.revoke_token(Mode::Test, "jti-1", later, rec()).await.v();
    s.revoke_token(Mode::Live, "jti-2", now(), rec()).await.v();
    let listed = s.revoked_tokens(now()).await.unwrap();
    assert_eq!(listed, vec![("jti-1".to_string(), later)]);
    assert_eq!(s.purge_revoked_tokens(now()).await.unwrap(), 1);
    assert_eq!(s.purge_revoked_tokens(later).await.unwrap(), 1);
    assert!(s.revoked_tokens(now()).await.unwrap().is_empty());
}

fn audit_event(
    id: &str,
    mode: Option<Mode>,
    action: AuditAction,
    target: &str,
    minute: i64,
) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        time: now() + time::Duration::minutes(minute),
        mode,
        action,
        actor: AuditActor::admin_key("adm_1"),
        target: AuditTarget::new("user", target),
        tenant_id: Some("ws".into()),
        source_address: Some("192.0.2.7".into()),
        details: serde_json::from_str(r#"{"roles":["admin"]}"#).unwrap(),
    }
}

async fn audit_events_list_newest_first_with_filters_and_cursor(s: &Store) {
    bootstrapped(s).await;
    let mut batch = Vec::new();
    for i in 0..25 {
        batch.push(audit_event(
            &format!("evt_{i:02}"),
            Some(Mode::Test),
            if i % 5 == 0 {
                AuditAction::UserDeleted
            } else {
                AuditAction::UserCreated
            },
            &format!("usr_{}", i % 3),
            i,
        ));
    }
    batch.push(audit_event(
        "evt_live",
        Some(Mode::Live),
        AuditAction::UserCreated,
        "usr_0",
        30,
    ));
    batch.push(audit_event(
        "evt_none",
        None,
        AuditAction::AuthFailuresExceeded,
        "usr_0",
        31,
    ));
    s.append_audit_events(&batch).await.unwrap();

    // Every test event and the mode-less one, newest first, in pages of 10.
    let mut seen = Vec::new();
    let mut request = page(10);
    loop {
        let got = s
            .list_audit_events(Mode::Test, &AuditFilter::default(), &request)
            .await
            .unwrap();
        seen.extend(got.items.iter().map(|e| e.id.clone()));
        match got.next_after {
            Some(after) => request.after = Some(after),
            None => break,
        }
    }
    let mut expected: Vec<String> = (0..25).rev().map(|i| format!("evt_{i:02}")).collect();
    expected.insert(0, "evt_none".into());
    assert_eq!(seen, expected);
    let first = s
        .list_audit_events(Mode::Test, &AuditFilter::default(), &page(1))
        .await
        .unwrap();
    assert_eq!(first.items[0], batch[26], "an event reads back whole");

    // The live partition sees its own event and the mode-less one only.
    let live = s
        .list_audit_events(Mode::Live, &AuditFilter::default(), &page(50))
        .await
        .unwrap();
    let ids: Vec<_> = live.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_none", "evt_live"]);

    // Filters combine.
    let filter = AuditFilter {
        action: Some(AuditAction::UserDeleted),
        target_id: Some("usr_0".into()),
        since: Some(now() + time::Duration::minutes(1)),
        until: Some(now() + time::Duration::minutes(20)),
        ..Default::default()
    };
    let got = s
        .list_audit_events(Mode::Test, &filter, &page(50))
        .await
        .unwrap();
    let ids: Vec<_> = got.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["evt_15"]);
    let by_actor = AuditFilter {
        actor_id: Some("adm_other".into()),
        ..Default::default()
    };
    assert!(s
        .list_audit_events(Mode::Test, &by_actor, &page(50))
        .await
        .unwrap()
        .items
        .is_empty());

    // A duplicate id fails the whole batch: nothing of it is written.
    let again = [
        audit_event(
            "evt_new",
            Some(Mode::Test),
            AuditAction::UserCreated,
            "usr_9",
            40,
        ),
        audit_event(
            "evt_00",
            Some(Mode::Test),
            AuditAction::UserCreated,
            "usr_9",
            40,
        ),
    ];
    assert!(s.append_audit_events(&again).await.is_err());
    let target = AuditFilter {
        target_id: Some("usr_9".into()),
        ..Default::default()
    };
    assert!(s
        .list_audit_events(Mode::Test, &target, &page(50))
        .await
        .unwrap()
        .items
        .is_empty());
}

/// Updates and deletes of audit rows are refused by the database itself,
/// whoever connects.
async fn audit_rows_cannot_be_changed(s: &Store, url: &str) {
    bootstrapped(s).await;
    s.append_audit_events(&[audit_event(
        "evt_1",
        Some(Mode::Test),
        AuditAction::UserCreated,
        "usr_1",
        0,
    )])
    .await
    .unwrap();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    for statement in [
        "UPDATE audit_events SET action = 'user.deleted'",
        "DELETE FROM audit_events",
    ] {
        let err = sqlx::query(statement).execute(&mut conn).await.unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let got = s
        .list_audit_events(Mode::Test, &AuditFilter::default(), &page(50))
        .await
        .unwrap();
    assert_eq!(got.items.len(), 1);
    assert_eq!(got.items[0].action, AuditAction::UserCreated);
}

#[tokio::test]
async fn sqlite_audit_rows_cannot_be_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    let url = format!("sqlite://{}", dir.path().join("latchkey.db").display());
    audit_rows_cannot_be_changed(&store, &url).await;
}

#[tokio::test]
async fn postgres_audit_rows_cannot_be_changed() {
    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    audit_rows_cannot_be_changed(&store, &url).await;
}

/// A write's audit event is stored in the write's own transaction: there
/// once the write returns, built from its result, and absent when the
/// write is refused (nothing half-written either way).
async fn a_writes_event_commits_with_it_and_only_with_it(s: &Store) {
    bootstrapped(s).await;
    let event = |id: &str| {
        let mut e = audit_event(id, Some(Mode::Test), AuditAction::UserCreated, "x", 0);
        e.details = JsonObject::new();
        e
    };
    let written = s
        .create_user(Mode::Test, &user("usr_a", Some("alice")), now(), |u| {
            let mut e = event("evt_a");
            e.target = AuditTarget::new("user", &u.id);
            e
        })
        .await
        .unwrap();
    assert_eq!(
        written.changes(),
        [latchkey_store::Invalidation::user(Mode::Test, "usr_a")]
    );
    let listed = |s: &Store| {
        let s = s.clone();
        async move {
            s.list_audit_events(Mode::Test, &AuditFilter::default(), &page(50))
                .await
                .unwrap()
                .items
        }
    };
    let events = listed(s).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].id, "evt_a");
    assert_eq!(events[0].target.id, "usr_a");
    // Refused: a taken username, an unknown user. No event, no change.
    assert!(is_conflict(
        s.create_user(Mode::Test, &user("usr_b", Some("alice")), now(), |_| event(
            "evt_b"
        ))
        .await
    ));
    assert!(is_not_found(
        s.delete_user(Mode::Test, "usr_ghost", |_| event("evt_c"))
            .await
    ));
    assert!(is_not_found(s.get_user(Mode::Test, "usr_b").await));
    // A scheduled rotation that finds a newer key adds and records nothing.
    let key = SigningKeyRecord {
        kid: "k9".into(),
        mode: Mode::Test,
        alg: "EdDSA".into(),
        private_pkcs8: "v1.sealed".into(),
        created_at: now(),
        not_before: now(),
    };
    let skipped = s
        .add_signing_key(&key, Some(now() - time::Duration::days(1)), |_| {
            event("evt_d")
        })
        .await
        .unwrap();
    assert!(skipped.changes().is_empty());
    assert!(!skipped.into_parts().0);
    assert_eq!(listed(s).await.len(), 1, "only the committed write's event");
    // An event the store refuses (its id taken) undoes the write it records.
    assert!(s
        .create_user(Mode::Test, &user("usr_e", None), now(), |_| event("evt_a"))
        .await
        .is_err());
    assert!(is_not_found(s.get_user(Mode::Test, "usr_e").await));
}

/// On PostgreSQL every write publishes its invalidations inside its
/// transaction: another node's listener gets them when (and only when) the
/// write commits, and a node never hears its own.
async fn next(
    l: &mut latchkey_store::StoreListener,
) -> Result<latchkey_store::ListenEvent, tokio::time::error::Elapsed> {
    tokio::time::timeout(std::time::Duration::from_millis(500), l.recv()).await
}

#[tokio::test]
async fn postgres_writes_reach_other_nodes_listeners_with_their_commit() {
    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let a = Store::connect(&url).await.unwrap();
    let b = Store::connect(&url).await.unwrap();
    assert_ne!(a.node_id(), b.node_id());
    bootstrapped(&a).await;
    let mut at_b = b.listen().await.unwrap().unwrap();
    let mut at_a = a.listen().await.unwrap().unwrap();
    a.create_user(Mode::Test, &user("usr_1", Some("u1")), now(), rec())
        .await
        .v();
    assert_eq!(
        next(&mut at_b).await.expect("b hears a's write"),
        latchkey_store::ListenEvent::Changes(vec![latchkey_store::Invalidation::user(
            Mode::Test,
            "usr_1"
        )])
    );
    // A refused write sends nothing; a's own listener hears nothing of a.
    assert!(is_conflict(
        a.create_user(Mode::Test, &user("usr_2", Some("u1")), now(), rec())
            .await
    ));
    a.put_role(Mode::Test, "viewer", &[], None, now(), rec())
        .await
        .v();
    assert_eq!(
        next(&mut at_b)
            .await
            .expect("b hears the next committed write"),
        latchkey_store::ListenEvent::Changes(vec![latchkey_store::Invalidation::Catalog {
            mode: Mode::Test
        }])
    );
    assert!(
        next(&mut at_a).await.is_err(),
        "a node skips its own notices"
    );
}

conformance!(
    bootstrap_happens_once_and_creates_a_root_tenant_per_mode,
    tenants_nest_move_and_refuse_cycles,
    tenants_with_children_or_members_cannot_be_deleted,
    modes_never_see_each_other,
    users_update_delete_and_keep_usernames_unique,
    secrets_and_memberships_make_up_the_principal,
    the_role_catalog_is_replaced_whole_and_lists_in_pages,
    concurrent_writes_all_land,
    api_keys_rotate_with_grace_and_revoke,
    a_budget_is_never_overspent_under_concurrency,
    the_token_deny_list_cleans_itself_up,
    audit_events_list_newest_first_with_filters_and_cursor,
    a_writes_event_commits_with_it_and_only_with_it,
);
