//! Micro-benchmarks of the receiving side's hot paths: the raw Ed25519
//! signature check aws-lc-rs does, `verify_jwt` on a realistic Latchkey
//! token (the same check plus parsing and claim checks), and a hit in a
//! `LocalKeyList`, and `RemoteKeyVerifier` answering from its cache (and,
//! for scale, one uncached round trip to a mock issuer on loopback).
//!
//! Run (from the workspace root):
//!
//! ```text
//! cargo bench -p latchkey-verify --bench verify
//! cargo bench -p latchkey-verify --bench verify -- verify_jwt   # a subset
//! ```
//!
//! On a loaded machine wall-clock figures wander; instruction counts do
//! not. With `LATCHKEY_BENCH_CALLGRIND=N` set, the binary skips criterion
//! and runs `verify_jwt` and the raw Ed25519 check N times each, in the
//! non-inlined functions `cg_verify_jwt` and `cg_ed25519_verify_raw`, for
//! Callgrind to count:
//!
//! ```text
//! cargo bench -p latchkey-verify --bench verify --no-run   # prints the binary's path
//! LATCHKEY_BENCH_CALLGRIND=1000 valgrind --tool=callgrind \
//!     --callgrind-out-file=verify.cg target/release/deps/verify-<hash>
//! callgrind_annotate --inclusive=yes verify.cg | grep -E 'cg_|verify_sig|verify_jwt'
//! ```
//!
//! Divide each function's inclusive Ir by N for the cost of one call.
//!
//! With `LATCHKEY_BENCH_INTERLEAVED=ROUNDS` (say 3000) it instead times
//! alternating blocks of raw checks and `verify_jwt` calls and prints the
//! fastest blocks' per-call times and the overhead: the least noisy
//! wall-clock comparison when other builds share the cores.

use std::hint::black_box;

use aws_lc_rs::signature::{ParsedPublicKey, ED25519};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use criterion::{criterion_group, Criterion};
use latchkey_core::credential::{self, CredentialKind};
use latchkey_core::signing::{Algorithm, SigningKey};
use latchkey_core::token;
use latchkey_types::oauth::JwkSet;
use latchkey_types::Mode;
use latchkey_verify::{
    verify_jwt, Expectations, KeyDigest, KeySet, LocalKeyList, RemoteKeyVerifier,
};
use time::OffsetDateTime;

#[path = "../../latchkey-core/benches/common/mod.rs"]
mod common;

use common::{custom_claims, realistic_grant, AUD, ISSUER};

/// A token as the server mints it: roles in three tenants, a scope and two
/// custom claims (about 900 bytes).
fn realistic_token(key: &SigningKey, now: OffsetDateTime) -> String {
    let custom = custom_claims();
    let claims = token::build_claims(realistic_grant(&custom, now));
    token::sign(key, &token::encoded_header(key), &claims).unwrap()
}

fn jwt(c: &mut Criterion) {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let now = OffsetDateTime::now_utc();
    let token = realistic_token(&key, now);
    eprintln!("token: {} bytes", token.len());

    // The raw check: the signature over the signing input, key pre-parsed.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let x = URL_SAFE_NO_PAD
        .decode(key.public_jwk().x.as_ref().unwrap())
        .unwrap();
    let public = ParsedPublicKey::new(&ED25519, x).unwrap();
    c.bench_function("ed25519_verify_raw", |b| {
        b.iter(|| {
            public
                .verify_sig(black_box(input.as_bytes()), black_box(&sig))
                .unwrap()
        })
    });

    let keys = KeySet::from_jwks(&JwkSet {
        keys: vec![key.public_jwk().clone()],
    })
    .unwrap();
    let expect = Expectations::new(ISSUER).audience(AUD);
    let unix = now.unix_timestamp();
    c.bench_function("verify_jwt_eddsa", |b| {
        b.iter(|| verify_jwt(black_box(&token), &keys, &expect, unix).unwrap())
    });

    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::generate(alg).unwrap();
        let token = realistic_token(&key, now);
        let keys = KeySet::from_jwks(&JwkSet {
            keys: vec![key.public_jwk().clone()],
        })
        .unwrap();
        c.bench_function(
            &format!("verify_jwt_{}", alg.as_str().to_lowercase()),
            |b| b.iter(|| verify_jwt(black_box(&token), &keys, &expect, unix).unwrap()),
        );
    }
}

fn local_keys(c: &mut Criterion) {
    // A device that accepts 1000 keys.
    let keys: Vec<String> = (0..1000)
        .map(|_| {
            credential::generate(Mode::Live, CredentialKind::ApiKey)
                .expose()
                .to_owned()
        })
        .collect();
    let list = LocalKeyList::from_digests(keys.iter().map(|k| KeyDigest::of(k).to_hex())).unwrap();
    let hit = &keys[500];
    c.bench_function("local_key_list_contains_hit", |b| {
        b.iter(|| assert!(list.contains(black_box(hit))))
    });
    let mut typo = hit.clone().into_bytes();
    typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    c.bench_function("local_key_list_contains_bad_checksum", |b| {
        b.iter(|| assert!(!list.contains(black_box(&typo))))
    });
}

/// A mock `POST /v1/api-keys/verify` that says every key is valid.
async fn mock_issuer() -> String {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = serde_json::json!({
        "valid": true, "keyId": "key_abc", "userId": "usr_7f3k2m9q", "tenantId": "acme",
        "mode": "live", "roles": ["operator"],
        "authorization": {"acme": {"roles": ["operator"]}}, "expiresAt": null
    });
    let app = axum::Router::new().route(
        "/v1/api-keys/verify",
        post(move || {
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn remote_keys(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(mock_issuer());
    let caller = credential::generate(Mode::Live, CredentialKind::ApiKey);
    let key = credential::generate(Mode::Live, CredentialKind::ApiKey);
    let key = key.expose();
    let cached = RemoteKeyVerifier::builder(&url, caller.expose())
        .build()
        .unwrap();
    rt.block_on(cached.verify(key)).unwrap();
    c.bench_function("remote_key_cached_hit", |b| {
        b.iter(|| rt.block_on(cached.verify(black_box(key))).unwrap())
    });
    assert_eq!(cached.request_count(), 1);
    let uncached = RemoteKeyVerifier::builder(&url, caller.expose())
        .positive_ttl(std::time::Duration::ZERO)
        .build()
        .unwrap();
    c.bench_function("remote_key_uncached_loopback_mock", |b| {
        b.iter(|| rt.block_on(uncached.verify(black_box(key))).unwrap())
    });
}

#[inline(never)]
fn cg_ed25519_verify_raw(public: &ParsedPublicKey, input: &[u8], sig: &[u8]) {
    public.verify_sig(input, sig).unwrap();
}

#[inline(never)]
fn cg_verify_jwt(token: &str, keys: &KeySet, expect: &Expectations, now: i64) {
    black_box(verify_jwt(token, keys, expect, now).unwrap());
}

/// The realistic EdDSA token and everything both checks need.
struct Fixture {
    token: String,
    public: ParsedPublicKey,
    signature: Vec<u8>,
    keys: KeySet,
    expect: Expectations,
    now: i64,
}

impl Fixture {
    fn new() -> Fixture {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let now = OffsetDateTime::now_utc();
        let token = realistic_token(&key, now);
        let signature = URL_SAFE_NO_PAD
            .decode(token.rsplit_once('.').unwrap().1)
            .unwrap();
        let x = URL_SAFE_NO_PAD
            .decode(key.public_jwk().x.as_ref().unwrap())
            .unwrap();
        Fixture {
            public: ParsedPublicKey::new(&ED25519, x).unwrap(),
            signature,
            keys: KeySet::from_jwks(&JwkSet {
                keys: vec![key.public_jwk().clone()],
            })
            .unwrap(),
            expect: Expectations::new(ISSUER).audience(AUD),
            now: now.unix_timestamp(),
            token,
        }
    }

    fn raw(&self) {
        let input = &self.token[..self.token.rfind('.').unwrap()];
        cg_ed25519_verify_raw(
            &self.public,
            black_box(input.as_bytes()),
            black_box(&self.signature),
        );
    }

    fn jwt(&self) {
        cg_verify_jwt(black_box(&self.token), &self.keys, &self.expect, self.now);
    }
}

/// The Callgrind mode: `iterations` of each check on the realistic token,
/// nothing else after the setup.
fn callgrind(iterations: u32) {
    let f = Fixture::new();
    for _ in 0..iterations {
        f.raw();
    }
    for _ in 0..iterations {
        f.jwt();
    }
    eprintln!(
        "callgrind mode: {iterations} x cg_ed25519_verify_raw, {iterations} x cg_verify_jwt ({} byte token)",
        f.token.len()
    );
}

/// The interleaved mode, for a loaded machine: `rounds` alternating blocks
/// of 20 raw checks and 20 `verify_jwt`, timed per block. Other processes
/// only ever make a block slower, so the fastest blocks (minimum, 10th
/// percentile) estimate the unloaded cost, and alternating exposes both
/// checks to the same conditions.
fn interleaved(rounds: usize) {
    const BLOCK: u32 = 20;
    let f = Fixture::new();
    let mut times: [Vec<f64>; 2] = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for _ in 0..rounds {
        for (which, times) in times.iter_mut().enumerate() {
            let start = std::time::Instant::now();
            for _ in 0..BLOCK {
                if which == 0 {
                    f.raw();
                } else {
                    f.jwt();
                }
            }
            times.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(BLOCK));
        }
    }
    let stats = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        [t[0], t[t.len() / 10], t[t.len() / 2]]
    };
    let [raw, jwt] = &mut times;
    let (raw, jwt) = (stats(raw), stats(jwt));
    for (name, i) in [("min", 0), ("p10", 1), ("median", 2)] {
        println!(
            "{name:>6}: ed25519_verify_raw {:.2} µs, verify_jwt_eddsa {:.2} µs, overhead {:+.1}%",
            raw[i],
            jwt[i],
            (jwt[i] / raw[i] - 1.0) * 100.0
        );
    }
}

criterion_group!(benches, jwt, local_keys, remote_keys);

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
