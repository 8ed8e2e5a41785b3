//! Overload (contract §10) against a real server with a small bound and a rate limit:
//! one principal floods, another keeps working, health keeps answering, nothing hangs,
//! and over HTTP a rate-limited call is a 429 with `Retry-After`. Latencies are measured
//! by the benchmark, never asserted here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use lexecon_e2e::*;
use lexecon_proto::v1::{DecideRequest, DecideResponse};
use serde_json::Value;

use crate::lexecon_e2e_health::{HealthCheckRequest, HealthCheckResponse};

const DECIDE: &str = "/lexecon.v1.DecisionService/Decide";
/// No call may take longer than this: refused calls are refused at once.
const ANSWERED_WITHIN: Duration = Duration::from_secs(2);
const FLOOD: usize = 200;

/// An agent key bound to the starter policy's actor, made with the CLI.
fn agent_key(dir: &std::path::Path) -> String {
    let created = lexecon(
        dir,
        &[
            "apikey",
            "create",
            "--data-dir",
            "data",
            "--name",
            "overload-b",
            "--role",
            "agent",
            "--actor",
            "ai_agent:customer_service",
            "--json",
        ],
    );
    assert_eq!(created.code, 0, "{created:?}");
    serde_json::from_str::<Value>(&created.stdout).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn decide(
    channel: &tonic::transport::Channel,
    token: &str,
    request: DecideRequest,
) -> Result<DecideResponse, tonic::Status> {
    tokio::time::timeout(
        ANSWERED_WITHIN,
        unary::<DecideRequest, DecideResponse>(channel, DECIDE, request, Some(token)),
    )
    .await
    .unwrap_or_else(|_| panic!("a Decide was not answered within {ANSWERED_WITHIN:?}"))
}

/// One HTTP/1.1 `POST /v1/DecisionService/Decide`: status, `Retry-After`, body.
async fn http_decide(
    addr: std::net::SocketAddr,
    token: &str,
    body: &Value,
) -> (u16, Option<String>, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .method("POST")
        .uri("/v1/DecisionService/Decide")
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = tokio::time::timeout(ANSWERED_WITHIN, sender.send_request(request))
        .await
        .expect("an HTTP call was not answered within 2 s")
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(hyper::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        retry_after,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_from_one_principal_is_shed_while_another_and_health_go_on() {
    let dir = crate::init_dir();
    let token_a = admin_token(&dir.path().join("data"));
    let token_b = agent_key(dir.path());
    let server = Server::start(
        dir.path(),
        "data",
        &[
            ("LEXECON_SERVER__MAX_CONCURRENT_REQUESTS", "8"),
            ("LEXECON_SERVER__RATE_LIMIT__PER_PRINCIPAL_RPS", "5"),
            ("LEXECON_SERVER__RATE_LIMIT__BURST", "25"),
        ],
    );
    let channel_a = server.channel().await;
    let channel_b = server.channel().await;
    let channel_health = server.channel().await;

    // Health, throughout.
    let flooding = Arc::new(AtomicBool::new(true));
    let health = {
        let flooding = Arc::clone(&flooding);
        tokio::spawn(async move {
            let mut checks = 0_u32;
            while flooding.load(Ordering::Acquire) && checks < 1000 {
                let answer = tokio::time::timeout(
                    ANSWERED_WITHIN,
                    unary::<HealthCheckRequest, HealthCheckResponse>(
                        &channel_health,
                        "/grpc.health.v1.Health/Check",
                        HealthCheckRequest::default(),
                        None,
                    ),
                )
                .await
                .expect("health was not answered within 2 s")
                .expect("health failed during the flood");
                assert_eq!(answer.status, 1, "health is SERVING throughout");
                checks += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            checks
        })
    };

    // A floods: FLOOD concurrent Decides on one connection.
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| {
            let channel = channel_a.clone();
            let token = token_a.clone();
            tokio::spawn(async move { decide(&channel, &token, approved_request()).await })
        })
        .collect();
    // B meanwhile: 20 calls, one after another; none is refused.
    for i in 0..20 {
        let answer = decide(&channel_b, &token_b, approved_request()).await;
        assert!(answer.is_ok(), "B's call {i} was refused: {answer:?}");
    }
    let (mut ok_a, mut shed_a) = (0, 0);
    for call in flood {
        match call.await.unwrap() {
            Ok(_) => ok_a += 1,
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                assert!(
                    status.metadata().get("retry-after").is_some(),
                    "a refusal carries retry-after: {status:?}"
                );
                shed_a += 1;
            }
            Err(status) => panic!("A's call failed otherwise: {status:?}"),
        }
    }
    flooding.store(false, Ordering::Release);
    let checks = health.await.unwrap();
    assert!(checks >= 1, "health was checked during the flood");
    assert!(ok_a >= 1, "A got some through");
    assert!(
        shed_a >= FLOOD / 2,
        "A was shed for most of its flood: {ok_a} ok, {shed_a} refused"
    );

    // Over HTTP, A is now over its rate: 429 with Retry-After (bounded attempts).
    let body = serde_json::json!({
        "actor": "ai_agent:customer_service",
        "proposed_action": "read:customer_data",
        "tool": "database_query",
        "data_classes": ["pii"],
        "user_intent": "answer a ticket",
    });
    let mut limited = None;
    for _ in 0..60 {
        let (status, retry_after, text) = http_decide(server.grpc, &token_a, &body).await;
        if status == 429 {
            limited = Some((retry_after, text));
            break;
        }
        assert_eq!(status, 200, "{text}");
    }
    let (retry_after, text) = limited.expect("A's HTTP calls were never rate limited");
    let retry_after: u64 = retry_after
        .expect("a 429 carries Retry-After")
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let error: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["error"]["code"], "resource_exhausted", "{text}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rate limit"),
        "{text}"
    );

    // B is still served, and the refusals are counted.
    decide(&channel_b, &token_b, approved_request())
        .await
        .expect("B is served after the flood");
    let metrics = reqwest_free_get(server.metrics, "/metrics").await;
    assert!(
        metrics.contains("lexecon_requests_rate_limited_total "),
        "{metrics}"
    );
    assert!(
        !metrics.contains("lexecon_requests_rate_limited_total 0"),
        "{metrics}"
    );
    assert!(metrics.contains("lexecon_requests_shed_total"), "{metrics}");
}

/// `GET path` over HTTP/1.1; the body.
async fn reqwest_free_get(addr: std::net::SocketAddr, path: &str) -> String {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::builder()
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = tokio::time::timeout(ANSWERED_WITHIN, sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}
