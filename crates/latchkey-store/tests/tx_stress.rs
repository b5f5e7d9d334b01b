//! Refused writes inside transactions must leave every pooled connection
//! clean: a burst of not-found errors followed by good writes never fails.

use latchkey_core::credential::CredentialDigest;
use latchkey_store::{NewSecret, NewUser, PageRequest, Store, StoreError, WorkspaceRecord};
use latchkey_types::{JsonObject, Mode, UserKind};
use time::OffsetDateTime;

mod common;

use common::{rec, Value};

async fn hammer(s: &Store) {
    let now = OffsetDateTime::now_utc();
    let ws = WorkspaceRecord {
        id: "ws".into(),
        name: "w".into(),
        created_at: now,
    };
    s.bootstrap(&ws, &[], &[], &[]).await.unwrap();
    let user = NewUser {
        id: "usr_1".into(),
        external_id: None,
        kind: UserKind::Machine,
        name: "m".into(),
        email: None,
        username: None,
        phone_number: None,
        email_verified: false,
        phone_verified: false,
        metadata: JsonObject::new(),
        custom_claims: JsonObject::new(),
        disabled: false,
        token_ttl_seconds: None,
    };
    s.create_user(Mode::Test, &user, now, rec()).await.v();
    let page = PageRequest {
        limit: 10,
        after: None,
    };
    // Concurrent writers and readers, as background tasks and other requests are.
    let bg = {
        let s = s.clone();
        tokio::spawn(async move {
            for _ in 0..200 {
                s.purge_revoked_tokens(OffsetDateTime::now_utc())
                    .await
                    .unwrap();
                let _ = s.load_principal(Mode::Test, "usr_1").await.unwrap();
                let _ = s.get_user(Mode::Test, "usr_ghost").await;
            }
        })
    };
    for i in 0..200 {
        let r = s.list_secrets(Mode::Test, "usr_ghost", &page).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        let r = s
            .delete_secret(Mode::Test, "usr_1", "sec_ghost", rec())
            .await;
        assert!(
            matches!(r, Err(StoreError::NotFound(_))),
            "round {i}: {r:?}"
        );
        let secret = NewSecret {
            id: format!("sec_{i}"),
            user_id: "usr_1".into(),
            name: None,
            digest: CredentialDigest::of(&format!("s{i}")),
            expires_at: None,
        };
        s.create_secret(Mode::Test, &secret, now, rec()).await.v();
    }
    bg.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_inside_transactions_leaves_connections_clean_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_sqlite(dir.path()).await.unwrap();
    hammer(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_inside_transactions_leaves_connections_clean_on_postgres() {
    let Some(url) = latchkey_store::testing::fresh_postgres_url().await else {
        eprintln!("skipped: LATCHKEY_TEST_POSTGRES_URL is not set");
        return;
    };
    let s = Store::connect(&url).await.unwrap();
    hammer(&s).await;
}
