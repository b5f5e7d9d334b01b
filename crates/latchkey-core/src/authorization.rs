//! The `authorization` claim a token carries, within a byte budget.
//!
//! A token scoped to a tenant carries the roles effective there and, for
//! each descendant where the user holds roles, the roles effective in that
//! descendant ([`rbac::authorization`]). A gateway holding a role in each of
//! thousands of device tenants would get a token of hundreds of kilobytes,
//! which proxies (8 to 16 KiB header limits) and Latchkey itself refuse. So
//! the claim has a budget, in bytes of its JSON:
//!
//! - the token tenant's own entry is always carried; if it alone exceeds
//!   the budget, there is no token ([`OverBudget`]): a token without it
//!   would be wrong about the one tenant it is for;
//! - descendants follow nearest first (by depth below the token's tenant,
//!   then by id), while they fit; at the first that does not, the claim
//!   stops and says so (`truncated`), and the token carries
//!   `authorizationTruncated: true`.
//!
//! Leaving entries out only ever under-grants: a receiver that ignores the
//! flag sees fewer roles, never more. One that needs a deeper tenant's
//! roles asks for a token scoped to that tenant (or a narrower one), which
//! carries its entry first.

use std::collections::BTreeSet;

use latchkey_types::admin::{Authorization, TenantRoles};

use crate::rbac::{self, DirectRoles, TenantTree};

/// The smallest budget a server may be configured with: a token tenant's
/// entry with a few long role names.
pub const MIN_BUDGET_BYTES: usize = 512;

/// The default budget: with the other claims, a token stays well under the
/// 8 KiB header limit of common proxies.
pub const DEFAULT_BUDGET_BYTES: usize = 4096;

/// The largest budget a server may be configured with (Latchkey refuses
/// request headers over 16 KiB, and a token travels in one).
pub const MAX_BUDGET_BYTES: usize = 12 * 1024;

/// The smallest entry a descendant can add: `,"a":{"roles":["b"]}`.
const MIN_ENTRY_BYTES: usize = 20;

/// The claim as carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundedAuthorization {
    /// The entries carried.
    pub claim: Authorization,
    /// Whether descendants with roles were left out for the budget.
    pub truncated: bool,
}

/// The token tenant's own entry is larger than the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the roles effective in the token's tenant take {needed} bytes, over the budget of {budget}"
)]
pub struct OverBudget {
    /// Bytes the tenant's entry alone needs in the claim.
    pub needed: usize,
    /// The budget.
    pub budget: usize,
}

/// The `authorization` claim of a token scoped to `tenant`, narrowed to
/// `allowed` (an API key's roles) when given, within `budget` bytes of
/// JSON. See the module documentation for what is kept.
pub fn bounded(
    tree: &TenantTree,
    direct: &DirectRoles,
    tenant: &str,
    allowed: Option<&BTreeSet<String>>,
    budget: usize,
) -> Result<BoundedAuthorization, OverBudget> {
    let narrowed = |roles: BTreeSet<String>| -> Vec<String> {
        match allowed {
            Some(allowed) => roles.into_iter().filter(|r| allowed.contains(r)).collect(),
            None => roles.into_iter().collect(),
        }
    };
    let own = narrowed(rbac::effective_roles(tree, direct, tenant));
    // `{` and `}`, then the entries with a comma between each two.
    let mut used = 2 + entry_len(tenant, &own);
    if used > budget {
        return Err(OverBudget {
            needed: used,
            budget,
        });
    }
    let mut claim = Authorization::new();
    claim.insert(tenant.to_owned(), TenantRoles { roles: own });

    // Descendants where the user holds roles, nearest first, then by id.
    let mut rest: Vec<(usize, &str)> = direct
        .iter()
        .filter(|(held_in, roles)| !roles.is_empty() && held_in.as_str() != tenant)
        .filter_map(|(held_in, _)| {
            depth_below(tree, held_in, tenant).map(|d| (d, held_in.as_str()))
        })
        .collect();
    // Only the first entries in that order can fit: sort a chunk of the
    // smallest (more than the budget can hold), not all of a fleet's
    // thousands. A chunk whose entries are all narrowed away is followed by
    // the next.
    let chunk = budget / MIN_ENTRY_BYTES + 1;
    let mut truncated = false;
    'chunks: while !rest.is_empty() {
        let take = chunk.min(rest.len());
        if take < rest.len() {
            rest.select_nth_unstable(take);
        }
        let mut next: Vec<(usize, &str)> = rest.drain(..take).collect();
        next.sort_unstable();
        for (_, held_in) in next {
            let roles = narrowed(rbac::effective_roles(tree, direct, held_in));
            if roles.is_empty() {
                // Narrowed to nothing: not carried, and not missing either.
                continue;
            }
            let len = 1 + entry_len(held_in, &roles);
            if used + len > budget {
                truncated = true;
                break 'chunks;
            }
            used += len;
            claim.insert(held_in.to_owned(), TenantRoles { roles });
        }
    }
    Ok(BoundedAuthorization { claim, truncated })
}

/// How many levels `id` lies below `ancestor` (`None` when it does not).
fn depth_below(tree: &TenantTree, id: &str, ancestor: &str) -> Option<usize> {
    tree.ancestors(id)
        .position(|a| a == ancestor)
        .map(|steps| steps + 1)
}

/// The length of `"tenant":{"roles":["a","b"]}` as JSON.
fn entry_len(tenant: &str, roles: &[String]) -> usize {
    // `"tenant"`, `:`, `{"roles":[`, the roles and their commas, `]}`.
    let roles_len: usize =
        roles.iter().map(|r| json_string_len(r)).sum::<usize>() + roles.len().saturating_sub(1);
    json_string_len(tenant) + 1 + r#"{"roles":["#.len() + roles_len + "]}".len()
}

/// The length of `s` as a JSON string, quotes included, escaped as
/// `serde_json` escapes it.
fn json_string_len(s: &str) -> usize {
    2 + s
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rbac::fixtures::{held, tree};

    fn json_len(claim: &Authorization) -> usize {
        serde_json::to_string(claim).unwrap().len()
    }

    /// ws → fleet → {site-a → {dev-3, dev-4}, site-b, dev-1, dev-2}; the
    /// gateway holds `gateway` in fleet and `reader` in every device and
    /// site.
    fn fleet() -> (TenantTree, DirectRoles) {
        let t = tree(&[
            ("ws", None, true),
            ("fleet", Some("ws"), true),
            ("site-a", Some("fleet"), true),
            ("site-b", Some("fleet"), true),
            ("dev-1", Some("fleet"), true),
            ("dev-2", Some("fleet"), true),
            ("dev-3", Some("site-a"), true),
            ("dev-4", Some("site-a"), true),
            ("other", Some("ws"), true),
        ]);
        let direct = held(&[
            ("fleet", &["gateway"]),
            ("site-a", &["reader"]),
            ("site-b", &["reader"]),
            ("dev-1", &["reader"]),
            ("dev-2", &["reader"]),
            ("dev-3", &["reader"]),
            ("dev-4", &["reader", "writer"]),
            ("other", &["reader"]),
        ]);
        (t, direct)
    }

    #[test]
    fn the_claim_is_the_full_one_when_it_fits_and_its_length_is_exact() {
        let (t, direct) = fleet();
        let full = rbac::authorization(&t, &direct, "fleet");
        let got = bounded(&t, &direct, "fleet", None, json_len(&full)).unwrap();
        assert_eq!(got.claim, full);
        assert!(!got.truncated);
        // One byte less and the last entry no longer fits.
        let less = bounded(&t, &direct, "fleet", None, json_len(&full) - 1).unwrap();
        assert!(less.truncated);
        assert_eq!(less.claim.len(), full.len() - 1);
    }

    #[test]
    fn entries_are_kept_nearest_first_then_by_id_while_they_fit() {
        let (t, direct) = fleet();
        let full = rbac::authorization(&t, &direct, "fleet");
        // Depth 1 in id order (dev-1, dev-2, site-a, site-b), then depth 2
        // (dev-3, dev-4); `other` is not below fleet at all.
        let order = ["dev-1", "dev-2", "site-a", "site-b", "dev-3", "dev-4"];
        assert_eq!(full.len(), order.len() + 1);
        let prefix = |n: usize| -> Authorization {
            full.iter()
                .filter(|(k, _)| *k == "fleet" || order[..n].contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        for n in 0..=order.len() {
            let exact = json_len(&prefix(n));
            // Exactly the first n entries' size carries them.
            let got = bounded(&t, &direct, "fleet", None, exact).unwrap();
            assert_eq!(got.claim, prefix(n), "{n} entries");
            assert_eq!(got.truncated, n < order.len(), "{n} entries");
            if n < order.len() {
                // One byte short of the next entry: the same n, truncated;
                // and the first entry that does not fit ends the claim,
                // even if a smaller one after it would.
                let short = json_len(&prefix(n + 1)) - 1;
                let got = bounded(&t, &direct, "fleet", None, short).unwrap();
                assert_eq!(got.claim, prefix(n), "{n} entries, {short} bytes");
                assert!(got.truncated);
                assert!(json_len(&got.claim) <= short);
            }
        }
    }

    #[test]
    fn the_token_tenant_entry_is_never_dropped() {
        let (t, direct) = fleet();
        let own = 2 + "\"fleet\"".len() + 1 + 10 + "\"gateway\"".len() + 2;
        assert_eq!(
            bounded(&t, &direct, "fleet", None, own - 1),
            Err(OverBudget {
                needed: own,
                budget: own - 1
            })
        );
        // A tenant with no roles at all is still carried, as `[]`.
        let empty = bounded(&t, &held(&[]), "dev-1", None, 64).unwrap();
        assert_eq!(empty.claim["dev-1"].roles, Vec::<String>::new());
        assert!(!empty.truncated);
    }

    #[test]
    fn narrowing_applies_before_the_budget_and_empty_entries_are_not_missing() {
        let (t, direct) = fleet();
        let writer: BTreeSet<String> = ["writer".to_string()].into();
        let got = bounded(&t, &direct, "fleet", Some(&writer), usize::MAX).unwrap();
        // Only dev-4 holds `writer`; the token tenant stays, empty.
        assert_eq!(
            got.claim.keys().map(String::as_str).collect::<Vec<_>>(),
            ["dev-4", "fleet"]
        );
        assert!(got.claim["fleet"].roles.is_empty());
        assert_eq!(got.claim["dev-4"].roles, ["writer"]);
        // Entries narrowed to nothing cost no budget and truncate nothing.
        let tight = json_len(&got.claim);
        let again = bounded(&t, &direct, "fleet", Some(&writer), tight).unwrap();
        assert_eq!(again.claim, got.claim);
        assert!(!again.truncated);
        // The same as narrowing the full claim, when everything fits.
        let full = rbac::narrow(rbac::authorization(&t, &direct, "fleet"), "fleet", &writer);
        assert_eq!(got.claim, full);
    }

    #[test]
    fn a_large_fleet_is_cut_the_same_as_a_full_sort_would_cut_it() {
        // 1,000 devices under fleet, in an order unrelated to their ids;
        // the first 300 hold only `writer`, so an API key narrowed to
        // `reader` must look past the first chunks of candidates.
        let ids: Vec<String> = (0..1000)
            .map(|i| format!("d{:04}", (i * 7919) % 1000))
            .collect();
        let mut rows = vec![("ws", None, true), ("fleet", Some("ws"), true)];
        for id in &ids {
            rows.push((id.as_str(), Some("fleet"), true));
        }
        let t = tree(&rows);
        let mut direct = DirectRoles::new();
        for id in &ids {
            let n: usize = id[1..].parse().unwrap();
            let role = if n < 300 { "writer" } else { "reader" };
            direct.insert(id.clone(), [role.to_string()].into());
        }
        let reader: BTreeSet<String> = ["reader".to_string()].into();
        for (allowed, budget) in [(None, 4096), (Some(&reader), 4096), (Some(&reader), 600)] {
            let got = bounded(&t, &direct, "fleet", allowed, budget).unwrap();
            // The reference: every entry in order, kept while it fits.
            let full = match allowed {
                Some(a) => rbac::narrow(rbac::authorization(&t, &direct, "fleet"), "fleet", a),
                None => rbac::authorization(&t, &direct, "fleet"),
            };
            let mut expected = Authorization::new();
            expected.insert("fleet".into(), full["fleet"].clone());
            let mut cut = false;
            for (id, entry) in full.iter().filter(|(id, _)| *id != "fleet") {
                let mut next = expected.clone();
                next.insert(id.clone(), entry.clone());
                if json_len(&next) > budget {
                    cut = true;
                    break;
                }
                expected = next;
            }
            assert_eq!(got.claim, expected, "{allowed:?} {budget}");
            assert_eq!(got.truncated, cut, "{allowed:?} {budget}");
            if allowed.is_some() {
                assert!(got
                    .claim
                    .keys()
                    .all(|k| k == "fleet" || k.as_str() >= "d0300"));
            }
        }
    }

    #[test]
    fn boundaries_and_cascades_are_those_of_rbac() {
        let t = tree(&[
            ("ws", None, true),
            ("a", Some("ws"), true),
            ("x", Some("a"), false),
            ("y", Some("x"), true),
        ]);
        let direct = held(&[("ws", &["admin"]), ("x", &["x-local"]), ("y", &["y-role"])]);
        let got = bounded(&t, &direct, "a", None, usize::MAX).unwrap();
        assert_eq!(got.claim, rbac::authorization(&t, &direct, "a"));
        assert_eq!(got.claim["y"].roles, ["x-local", "y-role"]);
    }

    #[test]
    fn json_string_lengths_match_serde_json() {
        for s in [
            "",
            "a",
            "fleet-eu_01:x",
            "quote\"back\\slash",
            "\n\r\t\u{8}\u{c}",
            "\u{1}\u{1f}\u{7f}",
            "é😀",
        ] {
            assert_eq!(
                json_string_len(s),
                serde_json::to_string(s).unwrap().len(),
                "{s:?}"
            );
        }
    }
}
