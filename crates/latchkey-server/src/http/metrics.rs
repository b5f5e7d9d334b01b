//! Prometheus metrics: requests and latency per route, tokens issued,
//! API-key verifications by result, cache hits, misses and sizes, store
//! latency per operation, and invalidations received from other nodes.
//! Recording is a few atomic increments (a map lookup under a read lock for
//! the series); `GET /metrics` renders the text format.

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
use latchkey_types::api_keys::KeyInvalidCode;
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

/// A latency histogram with the [`BUCKETS`] bounds.
#[derive(Debug, Default)]
struct Histogram {
    count: AtomicU64,
    sum_micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A snapshot of one or more histograms added together.
#[derive(Debug, Clone)]
struct Totals {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

impl Totals {
    fn new() -> Self {
        Totals {
            buckets: [0; BUCKETS.len()],
            count: 0,
            sum_micros: 0,
        }
    }

    fn add(&mut self, h: &Histogram) {
        for (i, b) in h.buckets.iter().enumerate() {
            self.buckets[i] += b.load(Ordering::Relaxed);
        }
        self.count += h.count.load(Ordering::Relaxed);
        self.sum_micros += h.sum_micros.load(Ordering::Relaxed);
    }

    /// Writes the `_bucket`, `_sum` and `_count` lines of `name`.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, n) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(
            out,
            "{name}_sum{{{labels}}} {}",
            self.sum_micros as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

/// The series of one route: (method, status) → stats.
type RouteSeries = HashMap<(Method, u16), Arc<Histogram>>;

/// Every counter of the process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// route template → (method, status) → stats. Looked up with borrowed
    /// keys, so counting a request allocates nothing once its series exists.
    http: RwLock<HashMap<String, RouteSeries>>,
    tokens: [AtomicU64; 2],
    /// Tokens whose `authorization` claim was cut to its byte budget.
    truncated: [AtomicU64; 2],
    key_checks: [AtomicU64; KEY_RESULTS.len()],
    /// Store operation → latency.
    store: RwLock<HashMap<&'static str, Arc<Histogram>>>,
    /// Invalidation kind → messages received from other nodes.
    invalidations: RwLock<BTreeMap<&'static str, u64>>,
    /// Attempts refused by the brute-force limits.
    bruteforce_refusals: AtomicU64,
    /// Connections closed at once because the cap was reached.
    connections_refused: AtomicU64,
    /// OAuth forms read and parsed (once per request).
    forms_parsed: AtomicU64,
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
        stats.observe(elapsed);
    }

    /// Times one store operation.
    pub fn store_op(&self, op: &'static str, elapsed: Duration) {
        let existing = self.store.read().get(op).cloned();
        let h = existing.unwrap_or_else(|| self.store.write().entry(op).or_default().clone());
        h.observe(elapsed);
    }

    /// Counts a connection refused at the connection cap.
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an attempt refused by the brute-force limits.
    pub fn bruteforce_refused(&self) {
        self.bruteforce_refusals.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a change received from another node (or `resync` after a
    /// reconnect).
    pub fn invalidation_received(&self, kind: &'static str) {
        *self.invalidations.write().entry(kind).or_default() += 1;
    }

    /// Counts an issued access token.
    pub fn token_issued(&self, mode: Mode) {
        self.tokens[mode_index(mode)].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an OAuth form read and parsed.
    pub fn form_parsed(&self) {
        self.forms_parsed.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a token whose `authorization` claim was cut to its budget.
    pub fn authorization_truncated(&self, mode: Mode) {
        self.truncated[mode_index(mode)].fetch_add(1, Ordering::Relaxed);
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

    /// The Prometheus text exposition; `cache` is (hits, misses) and
    /// `entries` the cached (principals, API keys).
    pub fn render(
        &self,
        cache: (u64, u64),
        entries: (usize, usize),
        audit: &crate::admin::audit::AuditLog,
    ) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str(
            "# HELP latchkey_http_requests_total Requests answered, by method, route and status.\n",
        );
        out.push_str("# TYPE latchkey_http_requests_total counter\n");
        let http = self.http.read();
        // Sorted, so the exposition is stable between scrapes.
        let mut series: Vec<(&str, &str, u16, &Histogram)> = http
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
        let mut by_route: BTreeMap<(&str, &str), Totals> = BTreeMap::new();
        for (method, route, _, s) in &series {
            by_route
                .entry((*method, *route))
                .or_insert_with(Totals::new)
                .add(s);
        }
        for ((method, route), totals) in by_route {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            totals.write(&mut out, "latchkey_http_request_duration_seconds", &labels);
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
        out.push_str(
            "# HELP latchkey_oauth_forms_parsed_total Forms of the OAuth endpoints read and \
             parsed (once per request).\n",
        );
        out.push_str("# TYPE latchkey_oauth_forms_parsed_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_oauth_forms_parsed_total {}",
            get(&self.forms_parsed)
        );
        out.push_str(
            "# HELP latchkey_tokens_authorization_truncated_total Access tokens whose \
             authorization claim left descendants out for its byte budget, by mode.\n",
        );
        out.push_str("# TYPE latchkey_tokens_authorization_truncated_total counter\n");
        for mode in Mode::ALL {
            let _ = writeln!(
                out,
                "latchkey_tokens_authorization_truncated_total{{mode=\"{mode}\"}} {}",
                get(&self.truncated[mode_index(mode)])
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
        out.push_str(
            "# HELP latchkey_bruteforce_refusals_total Attempts refused after too many failures.\n",
        );
        out.push_str("# TYPE latchkey_bruteforce_refusals_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_bruteforce_refusals_total {}",
            get(&self.bruteforce_refusals)
        );
        out.push_str(
            "# HELP latchkey_connections_refused_total Connections closed at once at the connection cap.\n",
        );
        out.push_str("# TYPE latchkey_connections_refused_total counter\n");
        let _ = writeln!(
            out,
            "latchkey_connections_refused_total {}",
            get(&self.connections_refused)
        );
        out.push_str("# HELP latchkey_cache_entries Entries held by the bounded caches.\n");
        out.push_str("# TYPE latchkey_cache_entries gauge\n");
        let _ = writeln!(
            out,
            "latchkey_cache_entries{{cache=\"principals\"}} {}",
            entries.0
        );
        let _ = writeln!(
            out,
            "latchkey_cache_entries{{cache=\"api_keys\"}} {}",
            entries.1
        );
        let counters = audit.counters();
        for (name, kind, help, value) in [
            (
                "latchkey_audit_events_written_total",
                "counter",
                "Audit events written to the store.",
                get(&counters.written),
            ),
            (
                "latchkey_audit_events_shed_total",
                "counter",
                "Audit events dropped: the queue stayed full, or the store refused the event.",
                get(&counters.shed),
            ),
            (
                "latchkey_audit_write_failures_total",
                "counter",
                "Audit batch writes that failed and were retried.",
                get(&counters.write_failures),
            ),
            (
                "latchkey_audit_queue_depth",
                "gauge",
                "Audit events waiting to be written.",
                audit.queued() as u64,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out.push_str(
            "# HELP latchkey_store_operation_duration_seconds Store latency, by operation.\n",
        );
        out.push_str("# TYPE latchkey_store_operation_duration_seconds histogram\n");
        let store: BTreeMap<&str, Arc<Histogram>> = self
            .store
            .read()
            .iter()
            .map(|(k, v)| (*k, Arc::clone(v)))
            .collect();
        for (op, h) in store {
            let mut totals = Totals::new();
            totals.add(&h);
            totals.write(
                &mut out,
                "latchkey_store_operation_duration_seconds",
                &format!("op=\"{op}\""),
            );
        }
        out.push_str(
            "# HELP latchkey_invalidations_received_total Cache changes received from other nodes, by kind.\n",
        );
        out.push_str("# TYPE latchkey_invalidations_received_total counter\n");
        for (kind, n) in self.invalidations.read().iter() {
            let _ = writeln!(
                out,
                "latchkey_invalidations_received_total{{kind=\"{kind}\"}} {n}"
            );
        }
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
        state
            .metrics
            .render(state.caches.lookups(), state.caches.sizes(), &state.audit),
    )
        .into_response()
}
