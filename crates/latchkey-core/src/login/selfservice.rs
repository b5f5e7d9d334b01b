//! What an API key made from a session (`POST /v1/me/api-keys`) may be:
//! never broader than the session. Its tenant is the session's or one
//! below it (the session's token speaks for those), its roles are roles
//! the user holds there, and it ends when the session would at the latest.

use time::OffsetDateTime;

use crate::rbac::{effective_roles, DirectRoles, TenantTree};

/// The session a key is asked from.
#[derive(Debug, Clone, Copy)]
pub struct SessionScope<'a> {
    /// The session's tenant.
    pub tenant: &'a str,
    /// When the session ends at the latest.
    pub expires_at: OffsetDateTime,
}

/// What the caller asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct AskedKey<'a> {
    /// The key's tenant (default: the session's).
    pub tenant: Option<&'a str>,
    /// Roles to narrow the key to.
    pub roles: Option<&'a [String]>,
    /// When the key should stop working (default: the session's end).
    pub expires_at: Option<OffsetDateTime>,
}

/// The key to create: its tenant and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedKey {
    /// The key's tenant.
    pub tenant: String,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
}

/// Why a self-service key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    /// The tenant's login policy does not let sessions create keys.
    #[error("the login policy of {0} does not allow API keys from sessions (selfServiceApiKeys)")]
    NotAllowed(String),
    /// The tenant does not exist.
    #[error("tenant {0} not found")]
    UnknownTenant(String),
    /// The tenant is neither the session's nor below it.
    #[error("a session of {session} can only create keys for {session} and the tenants below it")]
    OutsideSession {
        /// The session's tenant.
        session: String,
    },
    /// A role the user does not hold in the key's tenant.
    #[error("the role {0} is not held in the key's tenant")]
    RoleNotHeld(String),
    /// The key would outlive the session.
    #[error("expiresAt must not be later than the session's end")]
    OutlivesSession,
}

/// Decides the key, given whether the key's tenant's policy allows
/// self-service keys (`allowed`, asked of the caller once the tenant is
/// known).
pub fn allowed_key(
    tree: &TenantTree,
    direct: &DirectRoles,
    session: SessionScope<'_>,
    asked: AskedKey<'_>,
    allowed: impl FnOnce(&str) -> bool,
) -> Result<AllowedKey, KeyRefusal> {
    let tenant = asked.tenant.unwrap_or(session.tenant);
    if !tree.contains(tenant) {
        return Err(KeyRefusal::UnknownTenant(tenant.to_owned()));
    }
    if tenant != session.tenant && !tree.is_strict_descendant(tenant, session.tenant) {
        return Err(KeyRefusal::OutsideSession {
            session: session.tenant.to_owned(),
        });
    }
    if !allowed(tenant) {
        return Err(KeyRefusal::NotAllowed(tenant.to_owned()));
    }
    if let Some(roles) = asked.roles {
        let held = effective_roles(tree, direct, tenant);
        if let Some(missing) = roles.iter().find(|r| !held.contains(*r)) {
            return Err(KeyRefusal::RoleNotHeld(missing.clone()));
        }
    }
    let expires_at = match asked.expires_at {
        Some(at) if at > session.expires_at => return Err(KeyRefusal::OutlivesSession),
        Some(at) => at,
        None => session.expires_at,
    };
    Ok(AllowedKey {
        tenant: tenant.to_owned(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn tree() -> TenantTree {
        // ws ─ a ─ b
        //    └ c
        TenantTree::new([
            ("ws".to_owned(), None, true),
            ("a".to_owned(), Some("ws".to_owned()), true),
            ("b".to_owned(), Some("a".to_owned()), true),
            ("c".to_owned(), Some("ws".to_owned()), true),
        ])
    }

    #[test]
    fn a_key_from_a_session_is_never_broader_than_the_session() {
        let tree = tree();
        let mut direct = DirectRoles::new();
        direct.insert("a".into(), BTreeSet::from(["operator".to_owned()]));
        let end = OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
        let session = SessionScope {
            tenant: "a",
            expires_at: end,
        };
        let roles = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let operator = roles(&["operator"]);
        let admin = roles(&["admin"]);
        let earlier = end - time::Duration::days(1);
        let later = end + time::Duration::days(1);
        let yes = |_: &str| true;
        let ok = |tenant: &str, at| {
            Ok(AllowedKey {
                tenant: tenant.into(),
                expires_at: at,
            })
        };
        let cases: Vec<(&str, AskedKey, Result<AllowedKey, KeyRefusal>)> = vec![
            (
                "defaults: the session's tenant and end",
                AskedKey::default(),
                ok("a", end),
            ),
            (
                "a tenant below",
                AskedKey {
                    tenant: Some("b"),
                    ..Default::default()
                },
                ok("b", end),
            ),
            (
                "a role held there (cascaded)",
                AskedKey {
                    tenant: Some("b"),
                    roles: Some(&operator),
                    ..Default::default()
                },
                ok("b", end),
            ),
            (
                "an earlier end",
                AskedKey {
                    expires_at: Some(earlier),
                    ..Default::default()
                },
                ok("a", earlier),
            ),
            (
                "above the session",
                AskedKey {
                    tenant: Some("ws"),
                    ..Default::default()
                },
                Err(KeyRefusal::OutsideSession {
                    session: "a".into(),
                }),
            ),
            (
                "beside the session",
                AskedKey {
                    tenant: Some("c"),
                    ..Default::default()
                },
                Err(KeyRefusal::OutsideSession {
                    session: "a".into(),
                }),
            ),
            (
                "unknown",
                AskedKey {
                    tenant: Some("zz"),
                    ..Default::default()
                },
                Err(KeyRefusal::UnknownTenant("zz".into())),
            ),
            (
                "a role not held",
                AskedKey {
                    roles: Some(&admin),
                    ..Default::default()
                },
                Err(KeyRefusal::RoleNotHeld("admin".into())),
            ),
            (
                "outliving the session",
                AskedKey {
                    expires_at: Some(later),
                    ..Default::default()
                },
                Err(KeyRefusal::OutlivesSession),
            ),
        ];
        for (name, asked, expected) in cases {
            assert_eq!(
                allowed_key(&tree, &direct, session, asked, yes),
                expected,
                "{name}"
            );
        }
        let no = |t: &str| t != "b";
        assert_eq!(
            allowed_key(
                &tree,
                &direct,
                session,
                AskedKey {
                    tenant: Some("b"),
                    ..Default::default()
                },
                no
            ),
            Err(KeyRefusal::NotAllowed("b".into()))
        );
    }
}
