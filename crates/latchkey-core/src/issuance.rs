//! What a token request gets, decided without I/O: the token's tenant, the
//! scope it is granted, its audience and its `authorization` claim. The
//! server fetches the inputs (tree, roles, catalog) from its caches, calls
//! [`decide`], then builds the claims and signs.

use std::collections::BTreeSet;

use latchkey_types::ids::{Identifier as _, ScopeToken};
use latchkey_types::oauth::Audience;

use crate::authorization::{self, BoundedAuthorization};
use crate::rbac::{self, Catalog, DirectRoles, TenantTree};

/// The description of the error for a `tenant_id` that names no tenant.
pub const UNKNOWN_TENANT: &str = "tenant_id names no tenant";

/// The longest `scope` read.
pub const MAX_SCOPE_LEN: usize = 4096;

/// What was asked, and what the client authenticated with.
#[derive(Debug, Default, Clone)]
pub struct Asked<'a> {
    /// `tenant_id`: the workspace when absent.
    pub tenant_id: Option<&'a str>,
    /// `scope`: space-separated permissions.
    pub scope: Option<&'a str>,
    /// `audience` values (may repeat).
    pub audiences: Vec<&'a str>,
    /// `resource` values (RFC 8707, may repeat).
    pub resources: Vec<&'a str>,
    /// The tenant of the API key the client authenticated with: it fixes
    /// the token's tenant.
    pub key_tenant: Option<&'a str>,
    /// The roles of that key: they narrow what the user holds there.
    pub key_roles: Option<&'a BTreeSet<String>>,
}

/// What the decision reads: the user's roles, the tree, the catalog (only
/// needed for a scope), and the server's settings.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The tenant tree of the mode.
    pub tree: &'a TenantTree,
    /// The roles the user holds directly.
    pub direct: &'a DirectRoles,
    /// The role catalog; `None` grants no permission.
    pub catalog: Option<&'a Catalog>,
    /// The workspace (root tenant) id.
    pub workspace: &'a str,
    /// The mode's issuer: the audience when none is asked for.
    pub issuer: &'a str,
    /// The byte budget of the `authorization` claim.
    pub budget: usize,
}

/// What the token gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The token's tenant.
    pub tenant: &'a str,
    /// The granted scope (deduplicated, in request order), when one was
    /// asked for.
    pub scope: Option<String>,
    /// The `aud` claim.
    pub audience: Audience,
    /// The `authorization` claim, within its budget.
    pub authorization: BoundedAuthorization,
}

/// Why a request gets no token: an RFC 6749/8707 error and a description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `invalid_target` (RFC 8707): the tenant or the audience.
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    /// `invalid_scope`.
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
}

/// The token's tenant: the API key's when the client used one (asking for
/// another is refused), else the one asked for, else the workspace; it must
/// exist.
pub fn tenant<'a>(asked: &Asked<'a>, inputs: &Inputs<'a>) -> Result<&'a str, Refusal> {
    let tenant = match (asked.tenant_id, asked.key_tenant) {
        (Some(a), Some(fixed)) if a != fixed => {
            return Err(Refusal::InvalidTarget(
                "the credential's tokens are scoped to its own tenant (an API key's, or a workload rule's)".into(),
            ))
        }
        (_, Some(fixed)) => fixed,
        (Some(a), None) => a,
        (None, None) => inputs.workspace,
    };
    if !inputs.tree.contains(tenant) {
        return Err(Refusal::InvalidTarget(UNKNOWN_TENANT.into()));
    }
    Ok(tenant)
}

/// The roles effective for the user in `tenant`, narrowed to `key_roles`
/// when the client used an API key that has roles.
pub fn roles(
    tree: &TenantTree,
    direct: &DirectRoles,
    tenant: &str,
    key_roles: Option<&BTreeSet<String>>,
) -> BTreeSet<String> {
    let mut roles = rbac::effective_roles(tree, direct, tenant);
    if let Some(allowed) = key_roles {
        roles.retain(|r| allowed.contains(r));
    }
    roles
}

/// The granted scope: `None` when none (or only spaces) was asked for;
/// every asked permission must be a valid scope token granted by a role
/// the user holds in `tenant` (narrowed by the key).
pub fn scope(
    asked: &Asked<'_>,
    inputs: &Inputs<'_>,
    tenant: &str,
) -> Result<Option<String>, Refusal> {
    let Some(requested) = asked.scope.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    if requested.len() > MAX_SCOPE_LEN
        || !requested
            .split(' ')
            .filter(|t| !t.is_empty())
            .all(ScopeToken::is_valid)
    {
        return Err(Refusal::InvalidScope(
            "scope is not a list of valid scope tokens".into(),
        ));
    }
    let held = roles(inputs.tree, inputs.direct, tenant, asked.key_roles);
    let granted = inputs
        .catalog
        .map(|c| c.permissions(&held))
        .unwrap_or_default();
    let accepted = rbac::check_scope(requested, &granted).map_err(|missing| {
        Refusal::InvalidScope(format!(
            "no role the client holds in this tenant grants {missing:?}"
        ))
    })?;
    Ok(Some(accepted.join(" ")))
}

/// The `aud` claim: every `audience` and `resource` given (sorted,
/// deduplicated; several become an array), or the mode's issuer. An
/// audience is a non-empty identifier without spaces; a resource an
/// absolute URI without a fragment (RFC 8707 §2).
pub fn audience(asked: &Asked<'_>, issuer: &str) -> Result<Audience, Refusal> {
    let mut all: Vec<String> = Vec::new();
    for a in &asked.audiences {
        if a.is_empty() || a.len() > 512 || a.contains(char::is_whitespace) {
            return Err(Refusal::InvalidTarget(
                "audience must be a non-empty identifier without spaces".into(),
            ));
        }
        all.push((*a).to_owned());
    }
    for r in &asked.resources {
        let absolute = r.split_once(':').is_some_and(|(scheme, rest)| {
            !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !rest.is_empty()
        });
        if !absolute || r.contains('#') || r.len() > 512 || r.contains(char::is_whitespace) {
            return Err(Refusal::InvalidTarget(
                "resource must be an absolute URI without a fragment".into(),
            ));
        }
        all.push((*r).to_owned());
    }
    all.sort();
    all.dedup();
    Ok(match all.len() {
        0 => Audience::One(issuer.to_owned()),
        1 => Audience::One(all.remove(0)),
        _ => Audience::Many(all),
    })
}

/// Everything a token request gets, in the order its errors are reported:
/// the tenant, the scope, the audience, the `authorization` claim (whose
/// own entry must fit the budget).
pub fn decide<'a>(asked: &Asked<'a>, inputs: &Inputs<'a>) -> Result<Decision<'a>, Refusal> {
    let tenant = tenant(asked, inputs)?;
    let scope = scope(asked, inputs, tenant)?;
    let audience = audience(asked, inputs.issuer)?;
    let authorization = authorization::bounded(
        inputs.tree,
        inputs.direct,
        tenant,
        asked.key_roles,
        inputs.budget,
    )
    .map_err(|e| {
        Refusal::InvalidTarget(format!("tenant_id: {e} (token_authorization_max_bytes)"))
    })?;
    Ok(Decision {
        tenant,
        scope,
        audience,
        authorization,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rbac::fixtures::{held, tree};

    /// ws → a → b; the user holds `viewer` globally and `operator` in a.
    fn world() -> (TenantTree, DirectRoles, Catalog) {
        let t = tree(&[
            ("ws", None, true),
            ("a", Some("ws"), true),
            ("b", Some("a"), true),
        ]);
        let d = held(&[("ws", &["viewer"]), ("a", &["operator"])]);
        let c = Catalog::new([
            ("viewer".to_string(), vec!["telemetry:read".to_string()]),
            ("operator".to_string(), vec!["telemetry:write".to_string()]),
        ]);
        (t, d, c)
    }

    fn inputs<'a>(t: &'a TenantTree, d: &'a DirectRoles, c: &'a Catalog) -> Inputs<'a> {
        Inputs {
            tree: t,
            direct: d,
            catalog: Some(c),
            workspace: "ws",
            issuer: "https://auth.example/test",
            budget: 4096,
        }
    }

    #[test]
    fn the_tenant_is_the_keys_the_asked_or_the_workspace() {
        let (t, d, c) = world();
        let i = inputs(&t, &d, &c);
        let ask = |tenant_id, key_tenant| Asked {
            tenant_id,
            key_tenant,
            ..Asked::default()
        };
        // (tenant_id, key tenant, result)
        type Row<'a> = (Option<&'a str>, Option<&'a str>, Result<&'a str, &'a str>);
        let table: &[Row] = &[
            (None, None, Ok("ws")),
            (Some("b"), None, Ok("b")),
            (None, Some("a"), Ok("a")),
            (Some("a"), Some("a"), Ok("a")),
            (
                Some("b"),
                Some("a"),
                Err("the credential's tokens are scoped to its own tenant (an API key's, or a workload rule's)"),
            ),
            (Some("nope"), None, Err(UNKNOWN_TENANT)),
            (None, Some("gone"), Err(UNKNOWN_TENANT)),
        ];
        for (tenant_id, key_tenant, expected) in table {
            assert_eq!(
                tenant(&ask(*tenant_id, *key_tenant), &i),
                expected.map_err(|e| Refusal::InvalidTarget(e.into())),
                "{tenant_id:?} {key_tenant:?}"
            );
        }
    }

    #[test]
    fn scope_is_granted_by_the_roles_held_there_narrowed_by_the_key() {
        let (t, d, c) = world();
        let i = inputs(&t, &d, &c);
        let viewer: BTreeSet<String> = ["viewer".to_string()].into();
        // (tenant, scope, key roles, result)
        type Row<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a BTreeSet<String>>,
            Result<Option<&'a str>, &'a str>,
        );
        let table: &[Row] = &[
            ("ws", None, None, Ok(None)),
            ("ws", Some("   "), None, Ok(None)),
            (
                "ws",
                Some("telemetry:read"),
                None,
                Ok(Some("telemetry:read")),
            ),
            (
                "b",
                Some("telemetry:write telemetry:read telemetry:write"),
                None,
                Ok(Some("telemetry:write telemetry:read")),
            ),
            (
                "ws",
                Some("telemetry:write"),
                None,
                Err("no role the client holds in this tenant grants \"telemetry:write\""),
            ),
            (
                "a",
                Some("telemetry:write"),
                Some(&viewer),
                Err("no role the client holds in this tenant grants \"telemetry:write\""),
            ),
            (
                "a",
                Some("telemetry:read"),
                Some(&viewer),
                Ok(Some("telemetry:read")),
            ),
            (
                "ws",
                Some("bad\u{0}token"),
                None,
                Err("scope is not a list of valid scope tokens"),
            ),
        ];
        for (tenant, s, key_roles, expected) in table {
            let asked = Asked {
                scope: *s,
                key_roles: *key_roles,
                ..Asked::default()
            };
            assert_eq!(
                scope(&asked, &i, tenant),
                expected
                    .map(|o| o.map(str::to_owned))
                    .map_err(|e| Refusal::InvalidScope(e.into())),
                "{tenant} {s:?}"
            );
        }
        let long = "a".repeat(MAX_SCOPE_LEN + 1);
        let asked = Asked {
            scope: Some(&long),
            ..Asked::default()
        };
        assert!(scope(&asked, &i, "ws").is_err());
        // Without a catalog nothing is granted.
        let no_catalog = Inputs { catalog: None, ..i };
        let asked = Asked {
            scope: Some("telemetry:read"),
            ..Asked::default()
        };
        assert!(scope(&asked, &no_catalog, "ws").is_err());
    }

    #[test]
    fn the_audience_is_what_was_asked_or_the_issuer() {
        let issuer = "https://auth.example/test";
        let aud = |audiences: Vec<&'static str>, resources: Vec<&'static str>| {
            audience(
                &Asked {
                    audiences,
                    resources,
                    ..Asked::default()
                },
                issuer,
            )
        };
        assert_eq!(aud(vec![], vec![]), Ok(Audience::One(issuer.into())));
        assert_eq!(
            aud(vec!["urn:x"], vec![]),
            Ok(Audience::One("urn:x".into()))
        );
        assert_eq!(
            aud(
                vec!["urn:x"],
                vec!["https://b.example/", "https://a.example/", "urn:x"]
            ),
            Ok(Audience::Many(vec![
                "https://a.example/".into(),
                "https://b.example/".into(),
                "urn:x".into()
            ]))
        );
        for bad in [vec![""], vec!["a b"]] {
            assert!(aud(bad, vec![]).is_err());
        }
        for bad in [
            "relative/path",
            "https://a.example/#frag",
            ":x",
            "https://a b",
        ] {
            assert!(aud(vec![], vec![bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_decision_reports_the_first_refusal_in_order() {
        let (t, d, c) = world();
        let i = inputs(&t, &d, &c);
        // An unknown tenant is reported before a bad scope or audience.
        let asked = Asked {
            tenant_id: Some("nope"),
            scope: Some("telemetry:write"),
            audiences: vec![""],
            ..Asked::default()
        };
        assert_eq!(
            decide(&asked, &i),
            Err(Refusal::InvalidTarget(UNKNOWN_TENANT.into()))
        );
        let asked = Asked {
            tenant_id: Some("a"),
            scope: Some("telemetry:write"),
            ..Asked::default()
        };
        let got = decide(&asked, &i).unwrap();
        assert_eq!(got.tenant, "a");
        assert_eq!(got.scope.as_deref(), Some("telemetry:write"));
        assert_eq!(got.audience, Audience::One(i.issuer.into()));
        assert_eq!(got.authorization.claim["a"].roles, ["operator", "viewer"]);
        // A budget too small for the tenant's own entry refuses the token.
        let tight = Inputs { budget: 10, ..i };
        assert!(matches!(
            decide(&asked, &tight),
            Err(Refusal::InvalidTarget(_))
        ));
    }
}
