//! The Lexecon gRPC server.
//!
//! A thin adapter: converts `lexecon.v1` messages to engine types and back by hand
//! ([`convert`]), authenticates and authorizes every call ([`auth`]), and serves health,
//! reflection and Prometheus metrics ([`metrics`]). The same port answers HTTP/JSON
//! ([`http`]), transcoded to gRPC calls through the same authenticated stack. It owns
//! no decision logic; handlers delegate to the engine. [`serve`] runs it until SIGTERM
//! or SIGINT, reloading the policy on SIGHUP, and shuts down gracefully: health goes
//! NOT_SERVING, in-flight calls drain, the ledger flushes and signs a final checkpoint.

pub mod auth;
pub mod coalesce;
pub mod convert;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod services;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lexecon_engine::Engine;
use lexecon_proto::v1::auth_service_server::AuthServiceServer;
use lexecon_proto::v1::budget_service_server::BudgetServiceServer;
use lexecon_proto::v1::decision_service_server::DecisionServiceServer;
use lexecon_proto::v1::ledger_service_server::LedgerServiceServer;
use lexecon_proto::v1::oversight_service_server::OversightServiceServer;
use lexecon_proto::v1::policy_service_server::PolicyServiceServer;
use lexecon_proto::v1::risk_service_server::RiskServiceServer;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tower::Layer;

use crate::auth::{AuthLayer, Authenticator};
use crate::limits::{LimitLayer, Limits};
use crate::metrics::Metrics;
use crate::services::Shared;

/// The server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}; choose another address (--listen / server.listen)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Reflection could not be built from the descriptors.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The engine failed at shutdown.
    #[error(transparent)]
    Engine(#[from] lexecon_engine::EngineError),
    /// An IO error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A TLS file (`server.tls_*`) could not be used.
    #[error("cannot start TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// The names health reports on: the whole server ("") and each service.
const HEALTH_SERVICES: [&str; 11] = [
    "",
    "lexecon.v1.DecisionService",
    "lexecon.v1.PolicyService",
    "lexecon.v1.LedgerService",
    "lexecon.v1.RiskService",
    "lexecon.v1.BudgetService",
    "lexecon.v1.AuthService",
    "lexecon.v1.OversightService",
    "lexecon.v1.EvidenceService",
    "lexecon.v1.AuditService",
    "lexecon.v1.ComplianceService",
];

/// Where to listen.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// gRPC.
    pub grpc: SocketAddr,
    /// Prometheus metrics.
    pub metrics: SocketAddr,
}

/// What stops the server: resolves on SIGTERM or SIGINT (and, in tests, when told).
pub type Shutdown = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Resolves on SIGTERM or SIGINT.
pub fn shutdown_signal() -> Shutdown {
    Box::pin(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM: draining"),
                        _ = int.recv() => tracing::info!("SIGINT: draining"),
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    })
}

/// Reloads the configuration and the policy file on every SIGHUP until the server stops,
/// and with TLS the certificate, key and client CA files.
fn spawn_sighup_reload(
    engine: Arc<Engine>,
    tls: Option<Arc<tls::Tls>>,
    mut stop: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    if let Some(tls) = &tls {
                        match tls.reload() {
                            Ok(()) => tracing::info!("SIGHUP: TLS certificate, key and client CA reloaded; new connections use them"),
                            Err(e) => tracing::error!(error = %e, "SIGHUP: TLS files not reloaded; the previous certificate stays in use"),
                        }
                    }
                    match engine.reload().await {
                        Ok(r) => {
                            tracing::info!(
                                policy = r.policy.compiled.name(),
                                hash = %r.policy.compiled.hash_hex(),
                                risk_changed = r.risk_changed,
                                budget_changed = r.budget_changed,
                                policy_source = %r.policy_source,
                                "SIGHUP: configuration and policy reloaded"
                            );
                            if !r.needs_restart.is_empty() {
                                tracing::warn!(sections = ?r.needs_restart, "SIGHUP: these sections changed but take effect only after a restart");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "SIGHUP: reload refused; the previous configuration and policy stay active"),
                    }
                }
                _ = stop.changed() => return,
            }
        }
    });
}

/// Serves every service until `shutdown` resolves, then drains and flushes.
///
/// `on_ready` is called once the listeners are bound and health says SERVING, with
/// the bound gRPC address (useful when listening on port 0).
pub async fn serve(
    engine: Arc<Engine>,
    listen: Listen,
    shutdown: Shutdown,
    on_ready: impl FnOnce(SocketAddr, SocketAddr) + Send,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    {
        let metrics = Arc::clone(&metrics);
        engine.on_ledger_commit(move |entries, took| {
            metrics.ledger_batch_size.observe(entries as f64);
            metrics.ledger_commit_latency.observe(took.as_secs_f64());
        });
    }
    {
        let metrics = Arc::clone(&metrics);
        engine.on_actor_refused(move |key| {
            metrics
                .actor_refusals
                .get_or_create(&crate::metrics::KeyLabel {
                    key: key.to_owned(),
                })
                .inc();
        });
    }
    let detached = Arc::new(tokio::sync::RwLock::new(()));
    let shared = Shared {
        engine: Arc::clone(&engine),
        metrics: Arc::clone(&metrics),
        detached: Arc::clone(&detached),
    };
    let authenticator = Arc::new(Authenticator::new(
        Arc::clone(&engine),
        Arc::clone(&metrics),
    ));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lexecon_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(lexecon_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let max = engine.config().server.max_request_bytes;
    // Read and check the TLS files before binding: a bad file stops the start.
    let tls = tls::Tls::from_config(&engine.config().server)?;
    let grpc_listener = tokio::net::TcpListener::bind(listen.grpc)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen.grpc,
            source,
        })?;
    let grpc_addr = grpc_listener.local_addr()?;
    let metrics_listener = metrics::bind_metrics(listen.metrics)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen.metrics,
            source,
        })?;
    let metrics_addr = metrics_listener.local_addr()?;

    let ready = http::Ready::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let metrics_task = {
        let mut stop = stop_rx.clone();
        tokio::spawn(metrics::serve_metrics(
            metrics_listener,
            Arc::clone(&metrics),
            ready.clone(),
            async move {
                let _ = stop.changed().await;
            },
        ))
    };
    spawn_sighup_reload(Arc::clone(&engine), tls.clone(), stop_rx.clone());

    // One gRPC stack for both doors: the auth layer over every service. gRPC requests
    // reach it directly; JSON requests are transcoded and sent through it (`http`).
    let mut routes = tonic::service::Routes::builder();
    routes
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            DecisionServiceServer::new(services::decision::DecisionSvc(shared.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            PolicyServiceServer::new(services::policy::PolicySvc(shared.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            LedgerServiceServer::new(services::ledger::LedgerSvc(shared.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            RiskServiceServer::new(services::risk::RiskSvc(shared.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            BudgetServiceServer::new(services::budget::BudgetSvc(shared.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            AuthServiceServer::new(services::auth::AuthSvc(shared.clone()))
                .max_decoding_message_size(max),
        )
        .add_service(
            OversightServiceServer::new(services::oversight::OversightSvc(shared.clone()))
                .max_decoding_message_size(max),
        )
        // Evidence has its own limits: artifacts up to evidence.max_bytes, whatever
        // server.max_request_bytes says, plus room for the other fields.
        .add_service(services::evidence::server(shared.clone()))
        .add_service(services::audit::server(shared.clone()))
        .add_service(services::compliance::server(shared.clone()));
    // Overload limits inside auth (they count per authenticated principal) and over every
    // service; health and reflection pass through them unlimited (`limits`).
    let limit_layer = LimitLayer::new(
        Limits::from_config(&engine.config().server),
        Arc::clone(&metrics),
    );
    let grpc_stack =
        AuthLayer::new(authenticator).layer(limit_layer.layer(routes.routes().prepare()));
    let json_routes = http::router(
        grpc_stack.clone(),
        lexecon_json::Api::lexecon(),
        http::Limits {
            max_request_bytes: max,
            evidence_max_bytes: engine.config().evidence.max_bytes,
        },
        ready.clone(),
    );
    let front = http::Front::new(grpc_stack, json_routes);

    // Health: SERVING only now that the database, the ledger writer and the policy are up.
    for name in HEALTH_SERVICES {
        health_reporter
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    ready.set(true);
    on_ready(grpc_addr, metrics_addr);
    tracing::info!(
        grpc = %grpc_addr,
        metrics = %metrics_addr,
        tls = tls.is_some(),
        client_certificates = tls.as_ref().is_some_and(|t| t.mutual()),
        "serving"
    );

    let draining = {
        let health = health_reporter.clone();
        let engine = Arc::clone(&engine);
        let ready = ready.clone();
        async move {
            shutdown.await;
            ready.set(false);
            // Open WatchEvents streams would hold the drain open forever: end them,
            // telling each client the index to resume from.
            engine.stop_watchers();
            for name in HEALTH_SERVICES {
                health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
        }
    };
    let grace = Duration::from_secs(engine.config().server.shutdown_grace_secs);
    // HTTP/1.1 for JSON clients beside HTTP/2 for gRPC (and JSON) on the one listener.
    let builder = tonic::transport::Server::builder()
        .accept_http1(true)
        .tcp_nodelay(true);
    let result = match tls {
        None => {
            // Our own listener bypasses the builder's tcp_nodelay, so set it on each
            // connection: without it Nagle and delayed ACKs add ~40 ms to every unary
            // call. The coalescing stream then gathers the responses that are ready
            // together into one write.
            let incoming = tokio_stream::StreamExt::map(
                tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
                |conn| {
                    conn.map(|stream| {
                        let _ = stream.set_nodelay(true);
                        coalesce::CoalescingStream::new(stream)
                    })
                },
            );
            builder
                .serve_with_incoming_shutdown(front, incoming, draining)
                .await
        }
        // TLS only: every connection must complete a handshake before it is served.
        Some(tls) => {
            builder
                .serve_with_incoming_shutdown(front, tls::incoming(grpc_listener, tls), draining)
                .await
        }
    };
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(grace, metrics_task).await;
    // Decisions whose callers went away run on in tasks of their own: let them finish.
    if tokio::time::timeout(grace, detached.write()).await.is_err() {
        tracing::warn!("decisions still running after the shutdown grace; stopping anyway");
    }
    // The router has drained in-flight calls; flush the ledger and sign the last checkpoint.
    engine.shutdown().await?;
    tracing::info!("stopped");
    result.map_err(ServeError::from)
}
