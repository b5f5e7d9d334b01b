//! The federation half of the store conformance suite: trusted issuers and
//! the users their rules provision, identity providers replaced, SAML
//! assertion ids used once, on SQLite and on PostgreSQL when
//! `LATCHKEY_TEST_POSTGRES_URL` is set.

use std::collections::BTreeMap;

use latchkey_store::{
    Identity, Invalidation, NewLinkedUser, NewTenant, NewUser, PageRequest, ProviderSecret, Store,
    StoreError, WorkspaceRecord,
};
use latchkey_types::federation::{
    ProviderType, PutIdentityProvider, PutTrustedIssuer, WorkloadRule,
};
use latchkey_types::ids::{Identifier as _, UserId};
use latchkey_types::{JsonObject, Mode, UserKind};
use time::OffsetDateTime;

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
    let ci = NewTenant {
        id: "ci".into(),
        name: "CI".into(),
        parent_id: "ws".into(),
        cascade: true,
        metadata: JsonObject::new(),
    };
    s.create_tenant(Mode::Test, &ci, now(), rec()).await.v();
}

fn config(issuer: &str) -> PutTrustedIssuer {
    PutTrustedIssuer {
        issuer: issuer.into(),
        jwks_uri: Some(format!("{issuer}/jwks")),
        jwks: None,
        audiences: vec!["https://auth.example.com".into()],
        rules: vec![WorkloadRule {
            when: BTreeMap::from([("sub".into(), "repo:acme/*".into())]),
            user_id: Some(UserId::parse("usr_ci").unwrap()),
            provision: None,
            tenant_id: None,
            roles: None,
            ttl_seconds: Some(600),
        }],
    }
}

async fn trusted_issuers_are_put_listed_and_deleted_per_mode(s: &Store) {
    setup(s).await;
    let put = s
        .put_trusted_issuer(Mode::Test, "gh", &config("https://gh"), now(), rec())
        .await
        .unwrap();
    assert_eq!(
        put.changes(),
        [Invalidation::TrustedIssuers { mode: Mode::Test }]
    );
    assert_eq!(put.events(), 1);
    let (created, new) = put.into_parts().0;
    assert!(new);
    assert_eq!(created.config(), config("https://gh"));
    // Replacing keeps the creation time.
    let later = now() + time::Duration::minutes(5);
    let mut changed = config("https://gh");
    changed.audiences.push("second".into());
    let (replaced, new) = s
        .put_trusted_issuer(Mode::Test, "gh", &changed, later, rec())
        .await
        .v();
    assert!(!new);
    assert_eq!((replaced.created_at, replaced.updated_at), (now(), later));
    assert_eq!(replaced.audiences.len(), 2);
    // One trusted issuer per iss in a mode; the other mode is apart.
    assert!(matches!(
        s.put_trusted_issuer(Mode::Test, "gh2", &config("https://gh"), now(), rec())
            .await,
        Err(StoreError::Conflict(_))
    ));
    s.put_trusted_issuer(Mode::Live, "gh", &config("https://gh"), now(), rec())
        .await
        .v();
    s.put_trusted_issuer(Mode::Test, "k8s", &config("https://k8s"), now(), rec())
        .await
        .v();
    let all: Vec<String> = s
        .all_trusted_issuers(Mode::Test)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id.as_str().to_owned())
        .collect();
    assert_eq!(all, ["gh", "k8s"]);
    let first = s
        .list_trusted_issuers(
            Mode::Test,
            &PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 1);
    assert!(first.next_after.is_some());
    s.delete_trusted_issuer(Mode::Test, "gh", rec()).await.v();
    assert!(matches!(
        s.get_trusted_issuer(Mode::Test, "gh").await,
        Err(StoreError::NotFound("trusted issuer"))
    ));
    assert!(s.get_trusted_issuer(Mode::Live, "gh").await.is_ok());
    assert!(matches!(
        s.delete_trusted_issuer(Mode::Test, "gh", rec()).await,
        Err(StoreError::NotFound(_))
    ));
}

fn workload_user(id: &str) -> NewUser {
    NewUser {
        id: id.into(),
        external_id: None,
        kind: UserKind::Machine,
        name: "repo:acme/api".into(),
        email: None,
        username: None,
        phone_number: None,
        email_verified: false,
        phone_verified: false,
        metadata: JsonObject::new(),
        custom_claims: JsonObject::new(),
        disabled: false,
        token_ttl_seconds: None,
    }
}

async fn provisioning_creates_once_and_only_widens_roles(s: &Store) {
    setup(s).await;
    let user = workload_user("usr_wl1");
    let roles = vec!["deployer".to_owned()];
    let first = s
        .provision_workload_user(Mode::Test, &user, "ci", &roles, now(), rec())
        .await
        .unwrap();
    assert_eq!(first.events(), 1);
    let done = first.into_parts().0;
    assert!(done.created.is_some());
    assert_eq!(done.roles, Some(roles.clone()));
    // Again: nothing to write, no event.
    let again = s
        .provision_workload_user(Mode::Test, &user, "ci", &roles, now(), rec())
        .await
        .unwrap();
    assert_eq!((again.events(), again.changes().len()), (0, 0));
    assert!(!again.into_parts().0.wrote());
    // A rule that now grants more widens; roles given by an admin stay.
    let wider = vec!["deployer".to_owned(), "reader".to_owned()];
    let done = s
        .provision_workload_user(Mode::Test, &user, "ci", &wider, now(), rec())
        .await
        .v();
    assert!(done.created.is_none());
    assert_eq!(done.roles, Some(wider.clone()));
    let principal = s
        .load_principal(Mode::Test, "usr_wl1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(principal.memberships.len(), 1);
    // Races: many provisions of one new user at once all succeed, and
    // exactly one creates it.
    let racers = (0..8).map(|_| {
        let s = s.clone();
        let user = workload_user("usr_wl2");
        let roles = roles.clone();
        tokio::spawn(async move {
            s.provision_workload_user(Mode::Test, &user, "ci", &roles, now(), rec())
                .await
        })
    });
    let mut created = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(w) => created += usize::from(w.into_parts().0.created.is_some()),
            // SQLite serialises writers; PostgreSQL may report the loser's
            // unique violation, which the server retries as "exists".
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(created, 1);
    // An unknown tenant writes nothing.
    assert!(matches!(
        s.provision_workload_user(
            Mode::Test,
            &workload_user("usr_wl3"),
            "nowhere",
            &roles,
            now(),
            rec()
        )
        .await,
        Err(StoreError::NotFound("tenant"))
    ));
    assert!(s
        .load_principal(Mode::Test, "usr_wl3")
        .await
        .unwrap()
        .is_none());
}

async fn saml_assertion_ids_are_accepted_once(s: &Store) {
    let t = now().unix_timestamp();
    assert!(s
        .accept_saml_assertion(Mode::Test, "corp", "_a1", t + 360, now())
        .await
        .unwrap());
    assert!(!s
        .accept_saml_assertion(Mode::Test, "corp", "_a1", t + 360, now())
        .await
        .unwrap());
    // Per mode and per provider.
    assert!(s
        .accept_saml_assertion(Mode::Live, "corp", "_a1", t + 360, now())
        .await
        .unwrap());
    assert!(s
        .accept_saml_assertion(Mode::Test, "other", "_a1", t + 360, now())
        .await
        .unwrap());
    // Once past its time the id is forgotten (the assertion itself would
    // be refused as expired by then).
    let later = now() + time::Duration::seconds(361);
    assert!(s
        .accept_saml_assertion(Mode::Test, "corp", "_a1", t + 720, later)
        .await
        .unwrap());
}

async fn a_provider_pointed_elsewhere_forgets_its_links_and_secret(s: &Store) {
    setup(s).await;
    let oidc = |issuer: &str| PutIdentityProvider {
        kind: Some(ProviderType::Oidc),
        issuer: Some(issuer.into()),
        client_id: Some("latchkey".into()),
        ..PutIdentityProvider::default()
    };
    let put = |config: PutIdentityProvider, secret: Option<&'static str>, new_source: bool| {
        let s = s.clone();
        async move {
            let secret = ProviderSecret {
                sealed: secret,
                new_source,
            };
            s.put_identity_provider(Mode::Test, "corp", &config, secret, now(), rec())
                .await
                .v()
        }
    };
    put(oidc("https://idp.example"), Some("sealed-1"), false).await;
    let user = workload_user("usr_sso1");
    let identity = Identity {
        provider_id: "corp",
        subject: "jsmith",
        user_id: "usr_sso1",
    };
    let linked = NewLinkedUser {
        user: &user,
        tenant: None,
        roles: &[],
    };
    s.link_identity(Mode::Test, &identity, Some(linked), now(), rec())
        .await
        .v();
    let linked = || s.linked_user(Mode::Test, "corp", "jsmith");
    assert_eq!(linked().await.unwrap().as_deref(), Some("usr_sso1"));
    // The same provider, replaced without a secret: links and secret stay.
    let (kept, _) = put(oidc("https://idp.example"), None, false).await;
    assert_eq!(kept.secret_sealed.as_deref(), Some("sealed-1"));
    assert_eq!(linked().await.unwrap().as_deref(), Some("usr_sso1"));
    // Pointed at another issuer: its `jsmith` is nobody here yet.
    let (moved, _) = put(oidc("https://other-idp.example"), None, true).await;
    assert_eq!(moved.secret_sealed, None);
    assert_eq!(linked().await.unwrap(), None);
}

conformance!(
    a_provider_pointed_elsewhere_forgets_its_links_and_secret,
    trusted_issuers_are_put_listed_and_deleted_per_mode,
    provisioning_creates_once_and_only_widens_roles,
    saml_assertion_ids_are_accepted_once,
);
