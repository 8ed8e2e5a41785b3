//! Deadlines and callers who go away (contract §10): a `Decide` whose gRPC deadline
//! passes, or whose caller hangs up, is abandoned only before it claimed anything;
//! otherwise it completes. Either way the retry with the same `request_id` is answered
//! at once (never held off by a half-done claim) and the ledger holds one decision per
//! request.

use std::time::{Duration, Instant};

use lexecon_e2e::*;

/// A retry is answered within this; an orphaned claim would hold it for 2 s and then
/// answer UNAVAILABLE until its 30 s lease ran out.
const RETRY_WITHIN: Duration = Duration::from_millis(1500);
const CALLS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decide_past_its_deadline_leaves_nothing_half_done() {
    let dir = crate::init_dir();
    let token = admin_token(&dir.path().join("data"));
    let server = Server::start(dir.path(), "data", &[]);
    let mut client = decision_client(&server).await;
    let before = crate::entries_of_kind(&server, &token, "decision")
        .await
        .len();
    let (mut ok, mut cut) = (0, 0);
    for i in 0..CALLS {
        let mut request = if i % 2 == 0 {
            approved_request()
        } else {
            llm_request("deadline-user", 100, 50)
        };
        request.request_id = format!("deadline-{i}");
        // Deadlines from 0.1 ms to 4 ms: some pass before the call starts, some during.
        let mut call = authed(request.clone(), &token);
        call.set_timeout(Duration::from_micros(100 + 100 * (i % 40)));
        match client.decide(call).await {
            Ok(_) => ok += 1,
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
                    ),
                    "call {i}: {status:?}"
                );
                cut += 1;
            }
        }
        // The retry, with no deadline, is answered at once, and answers the same again.
        let started = Instant::now();
        let first = client
            .decide(authed(request.clone(), &token))
            .await
            .unwrap_or_else(|s| panic!("retry {i}: {s:?}"))
            .into_inner();
        assert!(
            started.elapsed() < RETRY_WITHIN,
            "retry {i} took {:?}: a claim was left behind",
            started.elapsed()
        );
        let second = client
            .decide(authed(request, &token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(first.decision_id, second.decision_id, "call {i}");
    }
    let after = crate::entries_of_kind(&server, &token, "decision")
        .await
        .len();
    assert_eq!(
        after - before,
        usize::try_from(CALLS).unwrap(),
        "one decision per request ({ok} answered in time, {cut} cut short)"
    );
    eprintln!("{ok} answered within their deadline, {cut} cut short");
    assert!(
        cut > 0,
        "no deadline cut a call short: the test proved nothing"
    );
}
