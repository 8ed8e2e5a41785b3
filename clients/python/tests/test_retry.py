"""Retries: which failures are retried, how long the client waits, and that a retried
decide carries the same request_id, so it can never decide twice."""

from __future__ import annotations

import re

import httpx
import pytest
from conftest import DECISION_JSON, Recorder, error_response, json_response, mock_async_client, mock_client

import lexecon


def test_a_generated_request_id_is_reused_by_every_retry() -> None:
    rec = Recorder(
        [
            httpx.ConnectError("refused"),
            error_response(
                503, "unavailable", "another call is deciding this request_id; retry", headers={"Retry-After": "1"}
            ),
            error_response(429, "resource_exhausted", "rate limit", headers={"Retry-After": "0.5"}),
            json_response(200, DECISION_JSON),
        ]
    )
    with mock_client(rec) as client:
        decision = client.decide(actor="ai_agent:customer_service", proposed_action="read:customer_data")
    assert decision.outcome == "approved"
    ids = [b["request_id"] for b in rec.bodies()]
    assert len(ids) == 4 and len(set(ids)) == 1, ids
    rid = ids[0]
    assert len(rid.encode()) <= 128 and not re.search(r"[\x00-\x1f\x7f]", rid)
    # Retry-After honoured: 1 s and 0.5 s; the connection failure backed off briefly.
    assert client.slept[1:] == [1.0, 0.5]  # type: ignore[attr-defined]
    assert 0 < client.slept[0] <= 0.2  # type: ignore[attr-defined]
    assert all(r.headers["authorization"] == "Bearer lxk_test" for r in rec.requests)


def test_each_decide_gets_its_own_request_id_and_a_given_one_is_kept() -> None:
    rec = Recorder([json_response(200, DECISION_JSON)])
    with mock_client(rec) as client:
        client.decide(proposed_action="read:x")
        client.decide(proposed_action="read:x")
        client.decide(proposed_action="read:x", request_id="ticket-4711")
    ids = [b["request_id"] for b in rec.bodies()]
    assert ids[0] != ids[1] and ids[2] == "ticket-4711"


def test_a_lost_answer_is_retried_for_decide_with_the_same_request_id() -> None:
    rec = Recorder(
        [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("closed"), json_response(200, DECISION_JSON)]
    )
    with mock_client(rec) as client:
        client.decide(proposed_action="read:x", request_id="ticket-1")
    assert [b["request_id"] for b in rec.bodies()] == ["ticket-1"] * 3


def test_a_lost_answer_is_not_retried_when_a_repeat_could_act_twice() -> None:
    # An explicit empty request_id asks for no idempotency: a lost answer is not retried.
    rec = Recorder([httpx.ReadTimeout("timed out"), json_response(200, DECISION_JSON)])
    with mock_client(rec) as client, pytest.raises(lexecon.DeadlineExceeded):
        client.decide(proposed_action="read:x", request_id="")
    assert len(rec.requests) == 1
    rec = Recorder([httpx.ReadError("reset"), json_response(200, {"escalation": {"state": "approved"}})])
    with mock_client(rec) as client, pytest.raises(lexecon.Unavailable):
        client.resolve_escalation("esc_X", approve=True, reason="ok")
    assert len(rec.requests) == 1


def test_retries_are_bounded() -> None:
    rec = Recorder([error_response(503, "unavailable", "draining", headers={"Retry-After": "0"})])
    with mock_client(rec, retries=2) as client, pytest.raises(lexecon.Unavailable) as info:
        client.decide(proposed_action="read:x")
    assert len(rec.requests) == 3
    assert info.value.retry_after == 0.0 and info.value.status == 503
    rec = Recorder([error_response(503, "unavailable", "draining")])
    with mock_client(rec, retries=0) as client, pytest.raises(lexecon.Unavailable):
        client.decide(proposed_action="read:x")
    assert len(rec.requests) == 1


def test_other_errors_are_not_retried() -> None:
    for status, code in [
        (400, "invalid_argument"),
        (401, "unauthenticated"),
        (500, "internal"),
        (504, "deadline_exceeded"),
    ]:
        rec = Recorder([error_response(status, code, "no")])
        with mock_client(rec) as client, pytest.raises(lexecon.LexeconError):
            client.decide(proposed_action="read:x")
        assert len(rec.requests) == 1, status


def test_an_http_date_retry_after_is_understood() -> None:
    from lexecon._core import parse_retry_after

    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_call_generates_a_request_id_for_decide_and_retries_it_unchanged() -> None:
    rec = Recorder([httpx.ConnectError("refused"), json_response(200, {"outcome": "approved", "ledger_index": "7"})])
    with mock_client(rec) as client:
        out = client.call("lexecon.v1.DecisionService", "Decide", {"actor": "a", "proposed_action": "read:x"})
    assert out["ledger_index"] == "7", "call() returns the JSON as sent"
    ids = [b["request_id"] for b in rec.bodies()]
    assert ids[0] == ids[1] and ids[0]
    assert rec.requests[0].url.path == "/v1/lexecon.v1.DecisionService/Decide"


@pytest.mark.anyio
async def test_the_async_client_retries_with_the_same_request_id() -> None:
    rec = Recorder(
        [
            httpx.ConnectError("refused"),
            error_response(429, "resource_exhausted", "rate limit", headers={"Retry-After": "2"}),
            json_response(200, DECISION_JSON),
        ]
    )
    async with mock_async_client(rec) as client:
        decision = await client.decide(proposed_action="read:customer_data")
    assert decision.ledger_index == 12345678901234
    ids = [b["request_id"] for b in rec.bodies()]
    assert len(ids) == 3 and len(set(ids)) == 1
    assert client.slept[1] == 2.0  # type: ignore[attr-defined]


def test_a_retry_policy_sets_the_waits() -> None:
    rec = Recorder([httpx.ConnectError("refused"), httpx.ConnectError("refused"), json_response(200, DECISION_JSON)])
    policy = lexecon.RetryPolicy(retries=5, backoff=1.0, max_backoff=1.5)
    with mock_client(rec, retries=policy) as client:
        client.decide(proposed_action="read:x")
    assert len(client.slept) == 2 and 0.5 <= client.slept[0] <= 1.0 and 0.75 <= client.slept[1] <= 1.5  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="retries"):
        lexecon.Client("http://x", retries=-1)
