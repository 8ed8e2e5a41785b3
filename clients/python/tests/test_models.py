"""Response models: proto3 JSON (64-bit ints as strings, base64 bytes, RFC 3339 times,
short enum names) into typed attributes, unknown fields kept."""

from __future__ import annotations

from datetime import datetime, timezone

from conftest import DECISION_JSON, Recorder, json_response, mock_client

import lexecon


def test_a_decision_parses_with_ints_bytes_times_and_extra_fields() -> None:
    d = lexecon.Decision.model_validate(DECISION_JSON)
    assert d.ledger_index == 12345678901234 and isinstance(d.ledger_index, int)
    assert d.ledger_leaf_hash == b"\x01" * 32
    assert d.decided_at == datetime(2026, 12, 5, 3, 55, 0, 123456, tzinfo=timezone.utc)
    assert d.outcome == "approved" and d.approved and not d.denied and not d.escalated
    assert d.risk_level == "medium" and d.risk_score == 42
    assert d.risk_dimensions is not None and d.risk_dimensions.privacy is not None
    assert d.risk_dimensions.privacy.factors[0].points == 60
    assert d.a_field_from_a_newer_server == "kept"  # type: ignore[attr-defined]


def test_defaults_fill_fields_the_server_left_out() -> None:
    d = lexecon.Decision.model_validate({"decision_id": "dec_X", "outcome": "denied"})
    assert d.denied and d.capability_token == "" and d.ledger_index == 0 and d.reasons == []


def test_escalations_usage_and_settlements_convert_64_bit_strings() -> None:
    e = lexecon.Escalation.model_validate(
        {
            "escalation_id": "esc_X",
            "state": "approved",
            "priority": "high",
            "approvals": [{"principal": "key:officer", "ledger_index": "9", "approve": True}],
            "approvals_required": 1,
            "resolution": {"state": "approved", "ledger_index": "10"},
        }
    )
    assert (
        not e.pending
        and e.approvals[0].ledger_index == 9
        and e.resolution is not None
        and e.resolution.ledger_index == 10
    )
    u = lexecon.Usage.model_validate({"scope": "user:alice", "spent_micros": "18446744073709551615"})
    assert u.spent_micros == 2**64 - 1
    s = lexecon.Settlement.model_validate({"charged_micros": "150", "released_micros": "50", "newly_settled": True})
    assert (s.charged_micros, s.released_micros, s.newly_settled) == (150, 50, True)


def test_decide_sends_the_seed_fields_and_returns_a_model() -> None:
    rec = Recorder([json_response(200, DECISION_JSON)])
    with mock_client(rec) as client:
        d = client.decide(
            actor="ai_agent:customer_service",
            proposed_action="read:customer_data",
            tool="database_query",
            user_intent="answer a ticket",
            data_classes=["pii", "financial"],
            risk_level=2,
            policy_mode="strict",
            context={"region": "eu"},
            llm=lexecon.llm_usage(
                model="gpt-4o-mini", user_id="alice", estimated_input_tokens=10, max_output_tokens=20
            ),
        )
    assert isinstance(d, lexecon.Decision)
    (body,) = rec.bodies()
    req = rec.requests[0]
    assert req.method == "POST" and req.url.path == "/v1/DecisionService/Decide"
    assert body["risk_level"] == 2 and body["policy_mode"] == "strict" and body["data_classes"] == ["pii", "financial"]
    assert body["llm"] == {
        "model": "gpt-4o-mini",
        "user_id": "alice",
        "estimated_input_tokens": 10,
        "max_output_tokens": 20,
    }
    assert "roles" not in body["llm"]


def test_health_reports_live_and_ready_without_raising() -> None:
    def answer(request):  # type: ignore[no-untyped-def]
        if request.url.path == "/healthz":
            return json_response(200, {"status": "serving"})
        return json_response(503, {"status": "draining"})

    rec = Recorder([answer])
    with mock_client(rec) as client:
        h = client.health()
    assert h.live and not h.ready
    assert h.detail["readyz"] == {"status": "draining"}


def test_the_package_under_test_is_the_installed_one() -> None:
    """The e2e test sets LEXECON_EXPECT_INSTALLED_IN to the fresh virtual environment it
    pip-installed the package into: the tests must import that copy, not the source."""
    import os

    venv = os.environ.get("LEXECON_EXPECT_INSTALLED_IN")
    if venv:
        assert os.path.realpath(lexecon.__file__).startswith(os.path.realpath(venv)), lexecon.__file__
    assert os.path.dirname(lexecon.__file__) and os.path.isfile(
        os.path.join(os.path.dirname(lexecon.__file__), "py.typed")
    )


def test_call_stream_reads_ndjson_and_raises_a_late_error() -> None:
    import httpx

    lines = '{"event":{"ledger_index":"1","kind":"policy_loaded"}}\n{"event":{"ledger_index":"2","kind":"note"}}\n'
    rec = Recorder([httpx.Response(200, text=lines, headers={"content-type": "application/x-ndjson"})])
    with mock_client(rec) as client:
        msgs = client.call_stream("OversightService", "WatchEvents", {"from_index": 0}, max_events=2, wait_ms=500)
    assert [m["event"]["kind"] for m in msgs] == ["policy_loaded", "note"]
    assert dict(rec.requests[0].url.params) == {"max_events": "2", "wait_ms": "500"}
    failing = lines + '{"error":{"code":"unavailable","message":"the server is shutting down"}}\n'
    rec = Recorder([httpx.Response(200, text=failing, headers={"content-type": "application/x-ndjson"})])
    with mock_client(rec, retries=0) as client:
        try:
            client.call_stream("OversightService", "WatchEvents", {})
        except lexecon.Unavailable as err:
            assert err.status is None and err.body["messages_before_error"] == 2
        else:
            raise AssertionError("a late error line must be raised")
