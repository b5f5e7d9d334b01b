//! The `authorization` claim of a fleet gateway: a user holding `gateway` in
//! `fleet` and `reader` in each of N device tenants under it, for a token
//! scoped to `fleet`. Times the bounded claim (the default 4096-byte budget,
//! what issuance computes) against the unbounded one, and prints both
//! claims' sizes.
//!
//! ```text
//! cargo bench -p latchkey-core --bench authorization
//! ```

use std::hint::black_box;

use criterion::{criterion_group, BenchmarkId, Criterion};
use latchkey_core::authorization::{bounded, DEFAULT_BUDGET_BYTES};
use latchkey_core::rbac::{self, DirectRoles, TenantTree};

fn fleet(n: usize) -> (TenantTree, DirectRoles) {
    let mut rows = vec![
        ("ws".to_string(), None, true),
        ("fleet".to_string(), Some("ws".to_string()), true),
    ];
    let mut direct = DirectRoles::new();
    direct.insert("fleet".into(), ["gateway".to_string()].into());
    for i in 0..n {
        let id = format!("dev-{i:05}");
        rows.push((id.clone(), Some("fleet".to_string()), true));
        direct.insert(id, ["reader".to_string()].into());
    }
    (TenantTree::new(rows), direct)
}

fn authorization(c: &mut Criterion) {
    let mut group = c.benchmark_group("authorization");
    for n in [10, 100, 1000, 3000] {
        let (tree, direct) = fleet(n);
        let full = rbac::authorization(&tree, &direct, "fleet");
        let cut = bounded(&tree, &direct, "fleet", None, DEFAULT_BUDGET_BYTES).unwrap();
        eprintln!(
            "N={n}: unbounded {} bytes ({} entries), bounded {} bytes ({} entries, truncated: {})",
            serde_json::to_string(&full).unwrap().len(),
            full.len(),
            serde_json::to_string(&cut.claim).unwrap().len(),
            cut.claim.len(),
            cut.truncated
        );
        group.bench_with_input(BenchmarkId::new("bounded", n), &n, |b, _| {
            b.iter(|| {
                bounded(
                    black_box(&tree),
                    &direct,
                    "fleet",
                    None,
                    DEFAULT_BUDGET_BYTES,
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("unbounded", n), &n, |b, _| {
            b.iter(|| rbac::authorization(black_box(&tree), &direct, "fleet"))
        });
    }
    group.finish();
}

criterion_group!(benches, authorization);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
