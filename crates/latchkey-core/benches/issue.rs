//! Micro-benchmarks of token issuance without HTTP: building the claims of
//! a realistic access token (`token::build_claims`), encoding and signing
//! them (`token::sign`: JSON, base64url, the signature) with each
//! algorithm, both together, and, for scale, the signature alone through
//! `SigningKey::sign` and straight through aws-lc-rs (`Ed25519KeyPair`).
//!
//! Run (from the workspace root):
//!
//! ```text
//! cargo bench -p latchkey-core --bench issue
//! cargo bench -p latchkey-core --bench issue -- eddsa   # a subset
//! ```
//!
//! On a loaded machine wall-clock figures wander; instruction counts do
//! not. With `LATCHKEY_BENCH_CALLGRIND=N` set, the binary skips criterion
//! and runs the raw Ed25519 signature, `token::sign` and build+sign (EdDSA)
//! N times each, in the non-inlined functions `cg_ed25519_sign_raw`,
//! `cg_sign_token` and `cg_build_and_sign`, for Callgrind to count:
//!
//! ```text
//! cargo bench -p latchkey-core --bench issue --no-run   # prints the binary's path
//! LATCHKEY_BENCH_CALLGRIND=1000 valgrind --tool=callgrind \
//!     --callgrind-out-file=issue.cg target/release/deps/issue-<hash>
//! callgrind_annotate --inclusive=yes issue.cg | grep cg_
//! ```
//!
//! Divide each function's inclusive Ir by N for the cost of one call.
//!
//! With `LATCHKEY_BENCH_INTERLEAVED=ROUNDS` (say 3000) it instead times
//! alternating blocks of the three and prints the fastest blocks' per-call
//! times: the least noisy wall-clock figures when other builds share the
//! cores.

use std::hint::black_box;

use aws_lc_rs::signature::Ed25519KeyPair;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_core::token::{self, TokenGrant};
use time::OffsetDateTime;

mod common;

use common::{custom_claims, realistic_grant};

fn issue(c: &mut Criterion) {
    let custom = custom_claims();
    let now = OffsetDateTime::now_utc();
    let grant = realistic_grant(&custom, now);

    let mut group = c.benchmark_group("issue");
    group.throughput(Throughput::Elements(1));
    // The grant is built (and cloned) outside the timing: `build_claims`
    // takes it by value.
    group.bench_function("build_claims", |b| {
        b.iter_batched(
            || grant.clone(),
            |g| black_box(token::build_claims(g)),
            BatchSize::SmallInput,
        )
    });

    for alg in Algorithm::ALL {
        let name = alg.as_str().to_lowercase();
        let key = SigningKey::generate(alg).unwrap();
        let header = token::encoded_header(&key);
        let claims = token::build_claims(grant.clone());
        let token = token::sign(&key, &header, &claims).unwrap();
        if alg == Algorithm::EdDSA {
            eprintln!("token: {} bytes", token.len());
        }
        // JSON + base64url + signature, the claims already built.
        group.bench_function(format!("sign_token_{name}"), |b| {
            b.iter(|| token::sign(&key, &header, black_box(&claims)).unwrap())
        });
        group.bench_function(format!("build_and_sign_{name}"), |b| {
            b.iter_batched(
                || grant.clone(),
                |g| token::sign(&key, &header, &token::build_claims(g)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        // The signature alone, over the same signing input.
        let input = &token[..token.rfind('.').unwrap()];
        group.bench_function(format!("signing_key_sign_{name}"), |b| {
            b.iter(|| key.sign(black_box(input.as_bytes())).unwrap())
        });
    }

    // aws-lc-rs with nothing of ours around it, on the same input size.
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let token = token::sign(
        &key,
        &token::encoded_header(&key),
        &token::build_claims(grant.clone()),
    )
    .unwrap();
    let input = &token[..token.rfind('.').unwrap()];
    let pair = Ed25519KeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    group.bench_function("ed25519_sign_raw", |b| {
        b.iter(|| pair.sign(black_box(input.as_bytes())))
    });
    // Encoding alone (what `sign_token_eddsa` adds to the signature).
    group.bench_function("encode_claims_json_base64", |b| {
        let claims = token::build_claims(grant.clone());
        b.iter(|| {
            use base64::Engine as _;
            let json = serde_json::to_vec(black_box(&claims)).unwrap();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        })
    });
    group.finish();
}

#[inline(never)]
fn cg_ed25519_sign_raw(pair: &Ed25519KeyPair, input: &[u8]) {
    black_box(pair.sign(input));
}

#[inline(never)]
fn cg_sign_token(
    key: &SigningKey,
    header: &str,
    claims: &latchkey_types::oauth::AccessTokenClaims,
) {
    black_box(token::sign(key, header, claims).unwrap());
}

#[inline(never)]
fn cg_build_and_sign(key: &SigningKey, header: &str, grant: TokenGrant<'_>) {
    black_box(token::sign(key, header, &token::build_claims(grant)).unwrap());
}

/// The Callgrind mode: `iterations` of each, EdDSA, nothing else after the
/// setup.
fn callgrind(iterations: u32) {
    let custom = custom_claims();
    let grant = realistic_grant(&custom, OffsetDateTime::now_utc());
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let header = token::encoded_header(&key);
    let claims = token::build_claims(grant.clone());
    let token = token::sign(&key, &header, &claims).unwrap();
    let input = &token[..token.rfind('.').unwrap()];
    let pair = Ed25519KeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    for _ in 0..iterations {
        cg_ed25519_sign_raw(&pair, black_box(input.as_bytes()));
    }
    for _ in 0..iterations {
        cg_sign_token(&key, &header, black_box(&claims));
    }
    for _ in 0..iterations {
        cg_build_and_sign(&key, &header, grant.clone());
    }
    eprintln!(
        "callgrind mode: {iterations} x cg_ed25519_sign_raw, cg_sign_token, cg_build_and_sign ({} byte token)",
        token.len()
    );
}

/// The interleaved mode: `rounds` alternating blocks of 20 raw signatures,
/// 20 `token::sign` and 20 build+sign (EdDSA), timed per block. Other
/// processes only ever make a block slower, so the fastest blocks estimate
/// the unloaded cost.
fn interleaved(rounds: usize) {
    const BLOCK: usize = 20;
    let custom = custom_claims();
    let grant = realistic_grant(&custom, OffsetDateTime::now_utc());
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let header = token::encoded_header(&key);
    let claims = token::build_claims(grant.clone());
    let token = token::sign(&key, &header, &claims).unwrap();
    let input = &token[..token.rfind('.').unwrap()];
    let pair = Ed25519KeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    let mut times: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        for (which, times) in times.iter_mut().enumerate() {
            // Clones of the grant made outside the timing.
            let mut grants: Vec<_> = (0..BLOCK).map(|_| grant.clone()).collect();
            let start = std::time::Instant::now();
            for _ in 0..BLOCK {
                match which {
                    0 => cg_ed25519_sign_raw(&pair, black_box(input.as_bytes())),
                    1 => cg_sign_token(&key, &header, black_box(&claims)),
                    _ => cg_build_and_sign(&key, &header, grants.pop().unwrap()),
                }
            }
            times.push(start.elapsed().as_secs_f64() * 1e6 / BLOCK as f64);
        }
    }
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    for (name, at) in [("min", 0), ("p10", rounds / 10), ("median", rounds / 2)] {
        let [raw, sign, both] = [times[0][at], times[1][at], times[2][at]];
        println!(
            "{name:>6}: ed25519_sign_raw {raw:.2} µs ({:.0}/s), sign_token_eddsa {sign:.2} µs ({:+.1}%), build_and_sign_eddsa {both:.2} µs ({:+.1}%)",
            1e6 / raw,
            (sign / raw - 1.0) * 100.0,
            (both / raw - 1.0) * 100.0
        );
    }
}

criterion_group!(benches, issue);

fn main() {
    if let Ok(n) = std::env::var("LATCHKEY_BENCH_CALLGRIND") {
        callgrind(n.parse().expect("LATCHKEY_BENCH_CALLGRIND is a count"));
        return;
    }
    if let Ok(n) = std::env::var("LATCHKEY_BENCH_INTERLEAVED") {
        interleaved(n.parse().expect("LATCHKEY_BENCH_INTERLEAVED is a count"));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
