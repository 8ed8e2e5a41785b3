//! Prometheus metrics: what is counted, and the `/metrics` endpoint that serves it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label: a decision outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// approved, denied or escalated.
    pub outcome: String,
}

/// Label: why something was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// A machine-readable reason.
    pub reason: String,
}

/// Label: an API key's name (never the actor it tried).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KeyLabel {
    /// The key's name.
    pub key: String,
}

/// Label: build information.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabel {
    /// The crate version.
    pub version: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Decisions by outcome.
    pub decisions: Family<OutcomeLabel, Counter>,
    /// Time to decide, seconds, from request to durable ledger entry.
    pub decision_latency: Histogram,
    /// Entries per ledger commit.
    pub ledger_batch_size: Histogram,
    /// Ledger commit latency, seconds.
    pub ledger_commit_latency: Histogram,
    /// Budget denials by reason.
    pub budget_denials: Family<ReasonLabel, Counter>,
    /// Authentication and authorization failures by reason.
    pub auth_failures: Family<ReasonLabel, Counter>,
    /// Requests refused as malformed, by field.
    pub invalid_requests: Family<ReasonLabel, Counter>,
    /// Decide or Authorize calls refused because the key may not speak for the actor.
    pub actor_refusals: Family<KeyLabel, Counter>,
    /// Calls refused at once because the server or the principal's share was full, by
    /// reason (`concurrency`, `principal_share`).
    pub requests_shed: Family<ReasonLabel, Counter>,
    /// Calls refused by a principal's rate limit.
    pub requests_rate_limited: Counter,
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lexecon");
        let decisions = Family::<OutcomeLabel, Counter>::default();
        registry.register("decisions", "Decisions by outcome", decisions.clone());
        let decision_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "decision_latency_seconds",
            "Time to decide, including the durable ledger append",
            decision_latency.clone(),
        );
        let ledger_batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "ledger_batch_size",
            "Entries per ledger commit",
            ledger_batch_size.clone(),
        );
        let ledger_commit_latency = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "ledger_commit_latency_seconds",
            "Ledger commit latency",
            ledger_commit_latency.clone(),
        );
        let budget_denials = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "budget_denials",
            "LLM budget, rate and model-access denials by reason",
            budget_denials.clone(),
        );
        let auth_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "auth_failures",
            "Authentication and authorization failures by reason",
            auth_failures.clone(),
        );
        let invalid_requests = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "invalid_requests",
            "Requests refused as malformed, by field",
            invalid_requests.clone(),
        );
        let actor_refusals = Family::<KeyLabel, Counter>::default();
        registry.register(
            "actor_refusals",
            "Calls refused because the key may not speak for the actor, by key",
            actor_refusals.clone(),
        );
        let requests_shed = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "requests_shed",
            "Calls refused at once because the server (concurrency) or the principal's share (principal_share) was full",
            requests_shed.clone(),
        );
        let requests_rate_limited = Counter::default();
        registry.register(
            "requests_rate_limited",
            "Calls refused by a principal's rate limit",
            requests_rate_limited.clone(),
        );
        let build = Family::<BuildLabel, Gauge>::default();
        build
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "Build information", build);
        Metrics {
            registry,
            decisions,
            decision_latency,
            ledger_batch_size,
            ledger_commit_latency,
            budget_denials,
            auth_failures,
            invalid_requests,
            actor_refusals,
            requests_shed,
            requests_rate_limited,
        }
    }

    /// Records one decision.
    pub fn decided(&self, outcome: &str, elapsed: Duration) {
        self.decisions
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
        self.decision_latency.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail but for a formatter error, which String never returns.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Serves `GET /metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    ready: crate::http::Ready,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    let app = crate::http::with_probes(app, ready);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener, naming the address when it is taken.
pub async fn bind_metrics(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen for metrics on {addr}: {e}; set server.metrics_listen or --metrics-listen")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let m = Metrics::new();
        m.decided("approved", Duration::from_micros(120));
        m.budget_denials
            .get_or_create(&ReasonLabel {
                reason: "rpm".into(),
            })
            .inc();
        m.auth_failures
            .get_or_create(&ReasonLabel {
                reason: "bad_token".into(),
            })
            .inc();
        m.requests_shed
            .get_or_create(&ReasonLabel {
                reason: "concurrency".into(),
            })
            .inc();
        m.requests_rate_limited.inc();
        let text = m.encode();
        for name in [
            "lexecon_requests_shed_total{reason=\"concurrency\"} 1",
            "lexecon_requests_rate_limited_total 1",
            "lexecon_decisions_total{outcome=\"approved\"} 1",
            "lexecon_decision_latency_seconds_count 1",
            "lexecon_ledger_batch_size",
            "lexecon_ledger_commit_latency_seconds",
            "lexecon_budget_denials_total{reason=\"rpm\"} 1",
            "lexecon_auth_failures_total{reason=\"bad_token\"} 1",
            "lexecon_build_info",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
