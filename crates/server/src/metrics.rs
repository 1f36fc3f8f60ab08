//! `GET /metrics`: what the server did since it started, in the OpenMetrics text format that
//! Prometheus scrapes (with the Prometheus project's own client, `prometheus-client`).
//!
//! - `sshield_server_http_requests_total{method, route, status}`: every answer, by the route
//!   template (`/v1/verify`; `unmatched` for any path the server does not serve, so a scanner
//!   cannot grow the label set);
//! - `sshield_server_http_request_duration_seconds{method, route}`: a histogram, 0.5 ms to 4 s;
//! - `sshield_server_verifications_total{outcome, reason}`: decisions, `reason="none"` when
//!   allowed;
//! - `sshield_server_database_errors_total`: database failures (each a 503 to a host, or a
//!   failed background pruning).
//!
//! No label holds a user or host name, a code or an address.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::api::App;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Database failures in this process: counted where a storage error becomes an answer, which
/// knows no `App`.
static DATABASE_ERRORS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Counts one database failure.
pub fn database_error() {
    DATABASE_ERRORS.inc();
}

/// The server's metrics and the registry that writes them out.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    durations: Histograms,
    verifications: Family<Labels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms, 1 ms, 2 ms ... 4.096 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl Metrics {
    /// Every metric at zero, registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sshield_server");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        let durations: Histograms = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its answer, by method and route template",
            durations.clone(),
        );
        let verifications = Family::<Labels, Counter>::default();
        registry.register(
            "verifications",
            "Verification decisions, by outcome and reason",
            verifications.clone(),
        );
        registry.register(
            "database_errors",
            "Database failures (each a 503 to a host, or a failed pruning)",
            DATABASE_ERRORS.clone(),
        );
        Self {
            registry,
            requests,
            durations,
            verifications,
        }
    }

    /// Counts one decision of `/v1/verify`.
    pub fn verification(&self, outcome: &str, reason: Option<&str>) {
        self.verifications
            .get_or_create(&vec![
                ("outcome", outcome.to_owned()),
                ("reason", reason.unwrap_or("none").to_owned()),
            ])
            .inc();
    }

    /// The text a scrape gets.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// The middleware around every route: counts and times each answer, and logs it at debug.
pub async fn track(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let elapsed = start.elapsed();
    let status = response.status().as_u16();
    let labels = vec![("method", method), ("route", route)];
    app.metrics
        .durations
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
    let mut labels = labels;
    labels.push(("status", status.to_string()));
    app.metrics.requests.get_or_create(&labels).inc();
    tracing::debug!(
        method = %labels[0].1,
        route = %labels[1].1,
        status,
        micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

/// `GET /metrics`.
pub async fn handler(State(app): State<Arc<App>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], app.metrics.render())
}
