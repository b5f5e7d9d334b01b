//! The tenant tree and RBAC resolution, as pure functions.
//!
//! A user holds roles directly in tenants (the workspace, the root, holds the
//! global roles). A tenant with `cascade: true` also has every role effective
//! in its parent; a tenant with `cascade: false` is a boundary that inherits
//! nothing, while roles held in it still flow down to its own descendants.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use latchkey_types::admin::{Authorization, TenantRoles};

/// One tenant as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantNode {
    /// The parent; `None` only for the workspace (root).
    pub parent: Option<String>,
    /// Whether the tenant inherits its parent's effective roles.
    pub cascade: bool,
}

/// The tenant tree of one mode, rooted at the workspace.
#[derive(Debug, Clone, Default)]
pub struct TenantTree {
    nodes: HashMap<String, TenantNode>,
}

/// Roles a user holds directly, by tenant id.
pub type DirectRoles = HashMap<String, BTreeSet<String>>;

impl TenantTree {
    /// Builds a tree from `(id, parent, cascade)` rows; the root is the row
    /// without a parent.
    pub fn new(rows: impl IntoIterator<Item = (String, Option<String>, bool)>) -> Self {
        let nodes = rows
            .into_iter()
            .map(|(id, parent, cascade)| (id, TenantNode { parent, cascade }))
            .collect();
        TenantTree { nodes }
    }

    /// Whether the tenant exists.
    pub fn contains(&self, id: &str) -> bool {
        self.nodes.contains_key(id)
    }

    /// The tenant's node.
    pub fn get(&self, id: &str) -> Option<&TenantNode> {
        self.nodes.get(id)
    }

    /// Number of tenants, the root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no tenant at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The ancestors of `id`, nearest first, not including `id`. Stops at a
    /// missing parent or (defensively) at a cycle.
    pub fn ancestors<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let mut current = self.nodes.get(id).and_then(|n| n.parent.as_deref());
        let mut steps = 0usize;
        let limit = self.nodes.len();
        std::iter::from_fn(move || {
            let here = current?;
            steps += 1;
            if steps > limit {
                return None;
            }
            current = self.nodes.get(here).and_then(|n| n.parent.as_deref());
            Some(here)
        })
    }

    /// Whether `id` lies strictly below `ancestor`.
    pub fn is_strict_descendant(&self, id: &str, ancestor: &str) -> bool {
        self.ancestors(id).any(|a| a == ancestor)
    }

    /// Whether making `new_parent` the parent of `id` would create a cycle:
    /// the new parent is the tenant itself or one of its descendants.
    pub fn move_creates_cycle(&self, id: &str, new_parent: &str) -> bool {
        id == new_parent || self.is_strict_descendant(new_parent, id)
    }

    /// The direct children of `id`.
    pub fn children<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.nodes
            .iter()
            .filter(move |(_, n)| n.parent.as_deref() == Some(id))
            .map(|(k, _)| k.as_str())
    }
}

/// The roles effective for a user in `tenant`: those held there, plus, while
/// the chain of tenants cascades, those held in each ancestor.
pub fn effective_roles(tree: &TenantTree, direct: &DirectRoles, tenant: &str) -> BTreeSet<String> {
    let mut roles = BTreeSet::new();
    let mut current = tenant;
    let mut steps = 0usize;
    loop {
        if let Some(held) = direct.get(current) {
            roles.extend(held.iter().cloned());
        }
        let Some(node) = tree.get(current) else { break };
        if !node.cascade {
            break;
        }
        match node.parent.as_deref() {
            Some(parent) if steps < tree.len() => {
                current = parent;
                steps += 1;
            }
            _ => break,
        }
    }
    roles
}

/// The `authorization` claim of a token scoped to `tenant`: an entry for the
/// tenant itself with its effective roles (possibly none), and one for each
/// descendant where the user holds roles directly, with the roles effective
/// there.
pub fn authorization(tree: &TenantTree, direct: &DirectRoles, tenant: &str) -> Authorization {
    let mut out = BTreeMap::new();
    out.insert(
        tenant.to_owned(),
        TenantRoles {
            roles: effective_roles(tree, direct, tenant).into_iter().collect(),
        },
    );
    for (held_in, roles) in direct {
        if roles.is_empty() || held_in == tenant || !tree.is_strict_descendant(held_in, tenant) {
            continue;
        }
        out.insert(
            held_in.clone(),
            TenantRoles {
                roles: effective_roles(tree, direct, held_in).into_iter().collect(),
            },
        );
    }
    out
}

/// Narrows an `authorization` claim to the roles in `allowed` (an API key's
/// `roles`). The token tenant's entry stays even when nothing is left in it;
/// other entries left empty are dropped.
pub fn narrow(
    auth: Authorization,
    token_tenant: &str,
    allowed: &BTreeSet<String>,
) -> Authorization {
    auth.into_iter()
        .filter_map(|(tenant, entry)| {
            let roles: Vec<String> = entry
                .roles
                .into_iter()
                .filter(|r| allowed.contains(r))
                .collect();
            (tenant == token_tenant || !roles.is_empty()).then_some((tenant, TenantRoles { roles }))
        })
        .collect()
}

/// The role catalog of one mode: role name → permissions it grants.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    roles: HashMap<String, BTreeSet<String>>,
}

impl Catalog {
    /// Builds the catalog from `(role, permissions)` pairs.
    pub fn new(entries: impl IntoIterator<Item = (String, Vec<String>)>) -> Self {
        Catalog {
            roles: entries
                .into_iter()
                .map(|(r, p)| (r, p.into_iter().collect()))
                .collect(),
        }
    }

    /// Every permission granted by any of `roles`. Roles missing from the
    /// catalog grant nothing.
    pub fn permissions<'a>(&self, roles: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
        roles
            .into_iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|p| p.iter().cloned())
            .collect()
    }

    /// Every permission of the catalog, for metadata.
    pub fn all_permissions(&self) -> BTreeSet<String> {
        self.roles
            .values()
            .flat_map(|p| p.iter().cloned())
            .collect()
    }
}

/// Checks a requested scope against the granted permissions. Returns the
/// normalised scope (deduplicated, in request order) or the first permission
/// that is not granted.
pub fn check_scope(requested: &str, granted: &BTreeSet<String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for token in requested.split(' ').filter(|t| !t.is_empty()) {
        if !granted.contains(token) {
            return Err(token.to_owned());
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    Ok(out)
}

/// Builders for the table tests of the rules built on this module.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{DirectRoles, TenantTree};

    /// A tree from `(id, parent, cascade)` rows.
    pub(crate) fn tree(rows: &[(&str, Option<&str>, bool)]) -> TenantTree {
        TenantTree::new(
            rows.iter()
                .map(|(id, p, c)| (id.to_string(), p.map(str::to_string), *c)),
        )
    }

    /// Direct roles from `(tenant, roles)` pairs.
    pub(crate) fn held(entries: &[(&str, &[&str])]) -> DirectRoles {
        entries
            .iter()
            .map(|(t, rs)| (t.to_string(), rs.iter().map(|r| r.to_string()).collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::fixtures::{held, tree};

    fn set(rs: &[&str]) -> BTreeSet<String> {
        rs.iter().map(|r| r.to_string()).collect()
    }

    /// ws → a → b → c (all cascading); a → x (boundary) → y (cascading).
    fn base() -> Vec<(&'static str, Option<&'static str>, bool)> {
        vec![
            ("ws", None, true),
            ("a", Some("ws"), true),
            ("b", Some("a"), true),
            ("c", Some("b"), true),
            ("x", Some("a"), false),
            ("y", Some("x"), true),
        ]
    }

    #[test]
    fn effective_roles_follow_cascade_and_stop_at_boundaries() {
        let t = tree(&base());
        let direct = held(&[
            ("ws", &["admin"]),
            ("a", &["operator"]),
            ("b", &["viewer"]),
            ("x", &["x-local"]),
        ]);
        // (tenant, expected effective roles)
        let table: &[(&str, &[&str])] = &[
            ("ws", &["admin"]),
            ("a", &["admin", "operator"]),
            ("b", &["admin", "operator", "viewer"]),
            // Three levels below the workspace, everything flows down.
            ("c", &["admin", "operator", "viewer"]),
            // The boundary inherits nothing but keeps its own roles...
            ("x", &["x-local"]),
            // ...which flow into its descendants, while the global and `a`
            // roles do not cross it.
            ("y", &["x-local"]),
            // Unknown tenants hold nothing.
            ("nope", &[]),
        ];
        for (tenant, expected) in table {
            assert_eq!(
                effective_roles(&t, &direct, tenant),
                set(expected),
                "tenant {tenant}"
            );
        }
    }

    #[test]
    fn moving_a_tenant_changes_what_it_inherits() {
        let direct = held(&[("a", &["operator"]), ("x", &["x-local"])]);
        let before = tree(&base());
        assert_eq!(effective_roles(&before, &direct, "c"), set(&["operator"]));
        // Move b (and with it c) under the boundary x.
        let mut rows = base();
        rows.iter_mut().find(|r| r.0 == "b").unwrap().1 = Some("x");
        let after = tree(&rows);
        assert_eq!(effective_roles(&after, &direct, "c"), set(&["x-local"]));
        assert_eq!(effective_roles(&after, &direct, "b"), set(&["x-local"]));
        // Turning the boundary's cascade on lets `a`'s roles through again.
        rows.iter_mut().find(|r| r.0 == "x").unwrap().2 = true;
        let open = tree(&rows);
        assert_eq!(
            effective_roles(&open, &direct, "c"),
            set(&["operator", "x-local"])
        );
    }

    #[test]
    fn deleting_a_tenant_or_a_membership_removes_what_it_gave() {
        let mut rows = base();
        let direct = held(&[("a", &["operator"]), ("c", &["leaf"])]);
        assert_eq!(
            effective_roles(&tree(&rows), &direct, "c"),
            set(&["leaf", "operator"])
        );
        // Delete c: its roles are gone with it and the authorization of `a`
        // no longer lists it.
        rows.retain(|r| r.0 != "c");
        let t = tree(&rows);
        let auth = authorization(&t, &direct, "a");
        assert_eq!(auth.keys().collect::<Vec<_>>(), vec!["a"]);
        // Delete the membership in a: nothing flows down any more.
        let direct = held(&[]);
        assert!(effective_roles(&t, &direct, "b").is_empty());
    }

    #[test]
    fn authorization_lists_the_tenant_and_descendants_with_held_roles() {
        let t = tree(&base());
        let direct = held(&[
            ("ws", &["admin"]),
            ("b", &["viewer"]),
            ("y", &["y-role"]),
            ("c", &[]),
        ]);
        let auth = authorization(&t, &direct, "a");
        let as_pairs: Vec<(&str, Vec<&str>)> = auth
            .iter()
            .map(|(k, v)| (k.as_str(), v.roles.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            as_pairs,
            vec![
                ("a", vec!["admin"]),
                ("b", vec!["admin", "viewer"]),
                ("y", vec!["y-role"]),
            ]
        );
        // A token scoped to a leaf lists only the leaf, even with no roles.
        let leaf = authorization(&t, &held(&[]), "c");
        assert_eq!(leaf.len(), 1);
        assert!(leaf["c"].roles.is_empty());
        // Tenants above the token's tenant never appear.
        let below = authorization(&t, &direct, "b");
        assert!(!below.contains_key("ws") && !below.contains_key("a"));
    }

    #[test]
    fn narrowing_keeps_only_allowed_roles_and_the_token_tenant() {
        let t = tree(&base());
        let direct = held(&[("a", &["operator", "viewer"]), ("b", &["admin"])]);
        let auth = authorization(&t, &direct, "a");
        let narrowed = narrow(auth, "a", &set(&["viewer"]));
        assert_eq!(narrowed["a"].roles, vec!["viewer"]);
        assert_eq!(narrowed["b"].roles, vec!["viewer"]);
        let none = narrow(authorization(&t, &direct, "a"), "a", &set(&["nothing"]));
        assert_eq!(none.len(), 1);
        assert!(none["a"].roles.is_empty());
    }

    #[test]
    fn cycles_are_detected_before_a_move() {
        let t = tree(&base());
        assert!(t.move_creates_cycle("a", "a"));
        assert!(t.move_creates_cycle("a", "c"));
        assert!(t.move_creates_cycle("x", "y"));
        assert!(!t.move_creates_cycle("c", "x"));
        assert!(!t.move_creates_cycle("y", "ws"));
        let mut kids: Vec<_> = t.children("a").collect();
        kids.sort();
        assert_eq!(kids, vec!["b", "x"]);
    }

    #[test]
    fn scope_is_checked_against_the_catalog() {
        let catalog = Catalog::new([
            (
                "operator".to_string(),
                vec!["telemetry:write".into(), "telemetry:read".into()],
            ),
            ("viewer".to_string(), vec!["telemetry:read".into()]),
        ]);
        let granted = catalog.permissions(&set(&["viewer", "unknown-role"]));
        assert_eq!(granted, set(&["telemetry:read"]));
        assert_eq!(
            check_scope("telemetry:read  telemetry:read", &granted),
            Ok(vec!["telemetry:read".to_string()])
        );
        assert_eq!(
            check_scope("telemetry:read telemetry:write", &granted),
            Err("telemetry:write".to_string())
        );
    }
}
