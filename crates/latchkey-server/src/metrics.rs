//! Prometheus metrics: requests and latency per route, tokens issued,
//! API-key verifications by result, and cache hits and misses. Recording is
//! a few atomic increments (a map lookup under a read lock for the route);
//! `GET /metrics` renders the text format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latchkey_types::keys::KeyInvalidCode;
use latchkey_types::Mode;
use parking_lot::RwLock;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Results of an API-key check, as labels.
const KEY_RESULTS: [&str; 9] = [
    "valid",
    "not_found",
    "malformed",
    "revoked",
    "expired",
    "disabled",
    "rate_limited",
    "usage_exceeded",
    "wrong_mode",
];

#[derive(Debug, Default)]
struct RouteStats {
    count: AtomicU64,
    sum_micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

/// The series of one route: (method, status) → stats.
type RouteSeries = HashMap<(Method, u16), Arc<RouteStats>>;

/// Every counter of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// route template → (method, status) → stats. Looked up with borrowed
    /// keys, so counting a request allocates nothing once its series exists.
    http: RwLock<HashMap<String, RouteSeries>>,
    tokens: [AtomicU64; 2],
    key_checks: [AtomicU64; KEY_RESULTS.len()],
}

fn mode_index(mode: Mode) -> usize {
    match mode {
        Mode::Test => 0,
        Mode::Live => 1,
    }
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let key = (method.clone(), status);
        let existing = self
            .http
            .read()
            .get(route)
            .and_then(|m| m.get(&key))
            .cloned();
        let stats = match existing {
            Some(s) => s,
            None => self
                .http
                .write()
                .entry(route.to_owned())
                .or_default()
                .entry(key)
                .or_default()
                .clone(),
        };
        stats.count.fetch_add(1, Ordering::Relaxed);
        stats
            .sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                stats.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts an issued access token.
    pub fn token_issued(&self, mode: Mode) {
        self.tokens[mode_index(mode)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an API-key check by its result.
    pub fn key_checked(&self, result: Result<(), KeyInvalidCode>) {
        let label = match result {
            Ok(()) => "valid",
            Err(code) => match code {
                KeyInvalidCode::NotFound => "not_found",
                KeyInvalidCode::Malformed => "malformed",
                KeyInvalidCode::Revoked => "revoked",
                KeyInvalidCode::Expired => "expired",
                KeyInvalidCode::Disabled => "disabled",
                KeyInvalidCode::RateLimited => "rate_limited",
                KeyInvalidCode::UsageExceeded => "usage_exceeded",
                KeyInvalidCode::WrongMode => "wrong_mode",
            },
        };
        if let Some(i) = KEY_RESULTS.iter().position(|r| *r == label) {
            self.key_checks[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition; `cache` is (hits, misses).
    pub fn render(&self, cache: (u64, u64)) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP latchkey_http_requests_total Requests answered, by method, route and status.\n",
        );
        out.push_str("# TYPE latchkey_http_requests_total counter\n");
        let http = self.http.read();
        // Sorted, so the exposition is stable between scrapes.
        let mut series: Vec<(&str, &str, u16, &RouteStats)> = http
            .iter()
            .flat_map(|(route, m)| {
                m.iter().map(move |((method, status), s)| {
                    (method.as_str(), route.as_str(), *status, &**s)
                })
            })
            .collect();
        series.sort_by_key(|(method, route, status, _)| (*method, *route, *status));
        for (method, route, status, s) in &series {
            let _ = writeln!(
                out,
                "latchkey_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                get(&s.count)
            );
        }
        out.push_str(
            "# HELP latchkey_http_request_duration_seconds Request latency, by method and route.\n",
        );
        out.push_str("# TYPE latchkey_http_request_duration_seconds histogram\n");
        let mut by_route: BTreeMap<(&str, &str), (Vec<u64>, u64, u64)> = BTreeMap::new();
        for (method, route, _, s) in &series {
            let e = by_route
                .entry((*method, *route))
                .or_insert_with(|| (vec![0; BUCKETS.len()], 0, 0));
            for (i, b) in s.buckets.iter().enumerate() {
                e.0[i] += get(b);
            }
            e.1 += get(&s.count);
            e.2 += get(&s.sum_micros);
        }
        for ((method, route), (buckets, count, sum)) in by_route {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (bound, n) in BUCKETS.iter().zip(&buckets) {
                let _ = writeln!(
                    out,
                    "latchkey_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_sum{{{labels}}} {}",
                sum as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "latchkey_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        drop(http);
        out.push_str("# HELP latchkey_tokens_issued_total Access tokens issued, by mode.\n");
        out.push_str("# TYPE latchkey_tokens_issued_total counter\n");
        for mode in Mode::ALL {
            let _ = writeln!(
                out,
                "latchkey_tokens_issued_total{{mode=\"{mode}\"}} {}",
                get(&self.tokens[mode_index(mode)])
            );
        }
        out.push_str("# HELP latchkey_api_key_verifications_total API-key checks, by result.\n");
        out.push_str("# TYPE latchkey_api_key_verifications_total counter\n");
        for (label, n) in KEY_RESULTS.iter().zip(&self.key_checks) {
            let _ = writeln!(
                out,
                "latchkey_api_key_verifications_total{{result=\"{label}\"}} {}",
                get(n)
            );
        }
        out.push_str("# HELP latchkey_cache_lookups_total Cache lookups, by outcome.\n");
        out.push_str("# TYPE latchkey_cache_lookups_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_cache_lookups_total{{outcome=\"hit\"}} {}",
            cache.0
        );
        let _ = writeln!(
            out,
            "latchkey_cache_lookups_total{{outcome=\"miss\"}} {}",
            cache.1
        );
        out
    }
}

/// The middleware that times every request (by its route template, so the
/// label set stays small and ids never become labels).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // MatchedPath is a cheap clone (a shared string).
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    state
        .metrics
        .observe(&method, route, response.status().as_u16(), start.elapsed());
    response
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(state.caches.lookups()),
    )
        .into_response()
}
