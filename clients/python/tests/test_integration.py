"""Against a real server (the Rust e2e test `python_client` starts one and sets the
environment): decisions, offline verification of a real token, an escalation round trip,
the LLM guard settling exact usage and releasing on an exception, the async client.

Needs LEXECON_URL, LEXECON_TOKEN (admin), LEXECON_PUBLIC_KEY_FILE (the node's .pub),
LEXECON_OFFICER_TOKEN (a compliance_officer key) and LEXECON_AGENT_TOKEN (an agent key
bound to ai_agent:customer_service and ai_agent:assistant), and the server's starter
policy. Skipped without them, unless LEXECON_REQUIRE_INTEGRATION=1 (then it fails).
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Dict, Iterator, List

import httpx
import pytest
from conftest import INTEGRATION_ENV, integration_settings

import lexecon

ENV = integration_settings()
if ENV is None and os.environ.get("LEXECON_REQUIRE_INTEGRATION") == "1":
    raise RuntimeError(f"LEXECON_REQUIRE_INTEGRATION=1 but one of {', '.join(INTEGRATION_ENV)} is not set")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(ENV is None, reason=f"set {', '.join(INTEGRATION_ENV)} to run against a server"),
]

BOT = "ai_agent:customer_service"
READ = dict(
    actor=BOT,
    proposed_action="read:customer_data",
    tool="database_query",
    data_classes=["pii"],
    user_intent="answer a ticket",
)
LLM = dict(actor="ai_agent:assistant", tool="openai_api", model="gpt-4o-mini")


def _env(name: str) -> str:
    assert ENV is not None
    return ENV[name]


@pytest.fixture(scope="module")
def public_key() -> str:
    with open(_env("LEXECON_PUBLIC_KEY_FILE")) as f:
        return f.read()


@pytest.fixture
def admin() -> Iterator[lexecon.Client]:
    with lexecon.Client(_env("LEXECON_URL"), token=_env("LEXECON_TOKEN")) as c:
        yield c


@pytest.fixture
def agent() -> Iterator[lexecon.Client]:
    with lexecon.Client(_env("LEXECON_URL"), token=_env("LEXECON_AGENT_TOKEN")) as c:
        yield c


@pytest.fixture
def officer() -> Iterator[lexecon.Client]:
    with lexecon.Client(_env("LEXECON_URL"), token=_env("LEXECON_OFFICER_TOKEN")) as c:
        yield c


def flip(s: str, i: int) -> str:
    return s[:i] + ("B" if s[i] == "A" else "A") + s[i + 1 :]


def budget_events(admin: lexecon.Client, reservation_id: str) -> List[Dict[str, Any]]:
    """The payloads of every budget_event ledger entry about ``reservation_id``."""
    import json

    out: List[Dict[str, Any]] = []
    start = 0
    while True:
        page = admin.call("LedgerService", "GetEntries", {"from": start, "limit": 1000, "kind": "budget_event"})
        for entry in page.get("entries", []):
            payload = json.loads(entry["payload_json"])
            if payload.get("reservation_id") == reservation_id:
                out.append(payload)
        nxt = int(page.get("next", 0))
        if not page.get("entries") or nxt <= start:
            return out
        start = nxt


def test_health_needs_no_token() -> None:
    with lexecon.Client(_env("LEXECON_URL"), token="") as anonymous:
        h = anonymous.health()
    assert h.live and h.ready, h


def test_an_approved_decision_carries_a_token_that_verifies_offline(agent: lexecon.Client, public_key: str) -> None:
    d = agent.decide(**READ)
    assert d.outcome == "approved", d
    assert d.decision_id.startswith("dec_") and d.reasoning
    assert d.capability_token.startswith("lxc1.")
    assert isinstance(d.ledger_index, int) and d.ledger_index > 0
    assert isinstance(d.risk_score, int) and d.risk_level in ("low", "medium", "high", "critical")
    claims = lexecon.verify_token_offline(
        d.capability_token, public_key=public_key, actor=BOT, action="read:customer_data", tool="database_query"
    )
    assert claims.decision_id == d.decision_id
    assert claims.actor == BOT and claims.action == "read:customer_data" and claims.tool == "database_query"
    assert d.token_expires_at is not None and claims.expires_at == d.token_expires_at
    # The server agrees, and names the same token id.
    online = agent.verify_token(d.capability_token, actor=BOT)
    assert online.valid and online.token_id == claims.token_id and online.key_id == claims.key_id


def test_a_tampered_real_token_fails_offline_and_online(agent: lexecon.Client, public_key: str) -> None:
    token = agent.decide(**READ).capability_token
    dot = token.rindex(".")
    in_payload = flip(token, dot - 30)
    in_signature = flip(token, len(token) - 5)
    for tampered in (in_payload, in_signature):
        with pytest.raises(lexecon.TokenInvalid) as info:
            lexecon.verify_token_offline(tampered, public_key=public_key)
        assert info.value.kind in ("signature", "malformed")
        assert not agent.verify_token(tampered).valid
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(in_signature, public_key=public_key)
    assert info.value.kind == "signature"
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(token, public_key=public_key, actor="ai_agent:someone_else")
    assert info.value.kind == "scope"


def test_a_revoked_token_still_verifies_offline_but_not_online(
    agent: lexecon.Client, admin: lexecon.Client, public_key: str
) -> None:
    token = agent.decide(**READ).capability_token
    claims = lexecon.verify_token_offline(token, public_key=public_key)
    revoked = admin.revoke_token(claims.token_id, reason="python client test: leaked in a log")
    assert revoked.newly_revoked and revoked.ledger_index > 0
    check = agent.verify_token(token)
    assert not check.valid and check.error_kind == "revoked"


def test_a_denied_decision_has_no_token(agent: lexecon.Client) -> None:
    d = agent.decide(actor=BOT, proposed_action="delete:customer_records", tool="database_query")
    assert d.outcome == "denied" and d.denied
    assert d.capability_token == "" and d.reasoning


def test_the_same_request_id_gets_the_same_decision(agent: lexecon.Client) -> None:
    rid = f"py-test-{uuid.uuid4()}"
    first = agent.decide(request_id=rid, **READ)
    again = agent.decide(request_id=rid, **READ)
    assert (again.decision_id, again.ledger_index, again.capability_token) == (
        first.decision_id,
        first.ledger_index,
        first.capability_token,
    )
    assert again.request_id == rid


class LoseFirstAnswer(httpx.BaseTransport):
    """Sends each request to the real server, but loses the first answer (as a network
    failure after the server acted would), keeping it for the test to compare."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost: List[Dict[str, Any]] = []
        self.sent: List[Dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        import json

        self.sent.append(json.loads(request.read()))
        response = self.inner.handle_request(request)
        if not self.lost:
            response.read()
            self.lost.append(json.loads(response.content))
            response.close()
            raise httpx.ReadTimeout("the answer was lost", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_retry_after_a_lost_answer_never_decides_twice() -> None:
    transport = LoseFirstAnswer()
    with lexecon.Client(_env("LEXECON_URL"), token=_env("LEXECON_AGENT_TOKEN"), transport=transport) as agent:
        d = agent.decide(**READ)
    first = transport.lost[0]
    assert first["outcome"] == "approved"
    assert len(transport.sent) == 2 and transport.sent[0]["request_id"] == transport.sent[1]["request_id"] != ""
    # The server decided once: the retry got the first decision back, token and all.
    assert d.decision_id == first["decision_id"] and d.ledger_index == int(first["ledger_index"])
    assert d.capability_token == first["capability_token"]


def test_errors_are_typed(agent: lexecon.Client) -> None:
    with pytest.raises(lexecon.InvalidArgument) as info:
        agent.decide(actor=BOT, proposed_action="please read the customer's data", tool="database_query")
    assert info.value.status == 400 and info.value.field == "proposed_action", info.value
    with pytest.raises(lexecon.InvalidArgument) as info:
        agent.decide(actor=BOT, proposed_action="read:customer_data", risk_level=9)
    assert info.value.field == "risk_level"
    with pytest.raises(lexecon.PermissionDenied):
        agent.decide(actor="ai_agent:not_mine", proposed_action="read:customer_data")
    with pytest.raises(lexecon.PermissionDenied):
        agent.verify_ledger()
    with lexecon.Client(_env("LEXECON_URL"), token="") as anonymous, pytest.raises(lexecon.Unauthenticated) as info:
        anonymous.decide(**READ)
    assert info.value.status == 401
    with pytest.raises(lexecon.NotFound):
        agent.get_escalation("esc_01JD5Z8Q6M6B2W7V6S8C4X2N0P")


def test_an_escalation_round_trip(agent: lexecon.Client, officer: lexecon.Client, public_key: str) -> None:
    rid = f"py-esc-{uuid.uuid4()}"
    # Risk level 4 in paranoid mode escalates with priority high: one approver.
    first = agent.decide(request_id=rid, risk_level=4, policy_mode="paranoid", **READ)
    assert first.outcome == "escalated", first
    assert first.escalation_id.startswith("esc_") and first.escalation_state == "pending"
    assert first.capability_token == ""
    esc = agent.get_escalation(first.escalation_id)
    assert esc.pending and esc.decision_id == first.decision_id and esc.approvals_required == 1
    with pytest.raises(lexecon.PermissionDenied):
        agent.resolve_escalation(first.escalation_id, approve=True, reason="approving my own request")
    pending = officer.list_escalations(state="pending")
    assert first.escalation_id in [e.escalation_id for e in pending.escalations]
    resolved = officer.resolve_escalation(first.escalation_id, approve=True, reason="ticket 4711: the customer asked")
    assert resolved.state == "approved"
    assert resolved.capability_token == "", "officers never see the agent's token"

    # The agent learns the outcome and gets its token.
    done = agent.wait_for_escalation(first.escalation_id, timeout=30, poll_interval=0.2)
    assert done.state == "approved" and done.capability_token.startswith("lxc1.")
    claims = lexecon.verify_token_offline(
        done.capability_token, public_key=public_key, actor=BOT, action="read:customer_data"
    )
    assert claims.decision_id == first.decision_id and claims.token_id == done.token_id
    # Retrying the decision with its request_id gives the same decision and the same token.
    retried = agent.decide(request_id=rid, risk_level=4, policy_mode="paranoid", **READ)
    assert retried.decision_id == first.decision_id and retried.ledger_index == first.ledger_index
    assert retried.escalation_state == "approved" and retried.capability_token == done.capability_token


def test_the_llm_guard_settles_exact_usage(agent: lexecon.Client, admin: lexecon.Client) -> None:
    user = f"py-{uuid.uuid4().hex[:12]}"
    before = admin.get_usage(f"user:{user}")
    with agent.llm_call(user_id=user, estimated_input_tokens=2000, max_output_tokens=1000, **LLM) as call:
        assert call.capability_token.startswith("lxc1.") and call.reservation_id.startswith("res_")
        during = admin.get_usage(f"user:{user}")
        assert during.reserved_micros > before.reserved_micros
        settled = call.settle(input_tokens=1000, output_tokens=500)
    # gpt-4o-mini: $0.15 in and $0.60 out per million tokens.
    assert settled.charged_micros == 1000 * 150_000 // 1_000_000 + 500 * 600_000 // 1_000_000 == 450
    after = admin.get_usage(f"user:{user}")
    assert after.spent_micros - before.spent_micros == 450
    assert after.reserved_micros == before.reserved_micros
    events = budget_events(admin, call.reservation_id)
    settled_events = [e for e in events if e.get("event") == "settled"]
    assert len(settled_events) == 1, events
    assert (
        settled_events[0]["input_tokens"],
        settled_events[0]["output_tokens"],
        settled_events[0]["charged_micros"],
    ) == (1000, 500, 450)


def test_the_llm_guard_releases_on_an_exception(agent: lexecon.Client, admin: lexecon.Client) -> None:
    user = f"py-{uuid.uuid4().hex[:12]}"

    def failing_llm(prompt: str) -> Any:
        raise ConnectionError("the model provider is down")

    guarded = agent.guard_llm(
        failing_llm, usage=lambda r: (0, 0), user_id=user, estimated_input_tokens=300, max_output_tokens=100, **LLM
    )
    seen: List[str] = []
    with pytest.raises(ConnectionError):
        with agent.llm_call(user_id=user, estimated_input_tokens=300, max_output_tokens=100, **LLM) as call:
            seen.append(call.reservation_id)
            failing_llm("hello")
    with pytest.raises(ConnectionError):
        guarded("hello")
    usage = admin.get_usage(f"user:{user}")
    assert usage.spent_micros == 0 and usage.reserved_micros == 0, usage
    events = budget_events(admin, seen[0])
    assert [e["event"] for e in events if e.get("event") in ("released", "settled")] == ["released"], events
    assert not agent.release(seen[0]).released, "released once already"


def test_the_llm_guard_refuses_a_model_or_action_the_policy_denies(agent: lexecon.Client) -> None:
    with pytest.raises(lexecon.NotApproved) as info:
        with agent.llm_call(
            actor=BOT,
            proposed_action="delete:customer_records",
            tool="database_query",
            model="gpt-4o-mini",
            estimated_input_tokens=10,
            max_output_tokens=10,
        ):
            raise AssertionError("an unapproved call must not run")
    assert info.value.decision.outcome == "denied"


def test_generic_call_stream_and_ledger_verification(admin: lexecon.Client) -> None:
    policy = admin.call("PolicyService", "GetActivePolicy", {})
    assert isinstance(policy, dict) and policy
    events = admin.call_stream("OversightService", "WatchEvents", {"from_index": 0}, max_events=2, wait_ms=5000)
    assert len(events) == 2 and [int(e["event"]["ledger_index"]) for e in events] == sorted(
        int(e["event"]["ledger_index"]) for e in events
    )
    v = admin.verify_ledger()
    assert v.valid and v.entries > 0, v


@pytest.mark.anyio
async def test_the_async_client(public_key: str) -> None:
    async with lexecon.AsyncClient(_env("LEXECON_URL"), token=_env("LEXECON_AGENT_TOKEN")) as agent:
        h = await agent.health()
        assert h.live
        d = await agent.decide(**READ)
        assert d.approved
        lexecon.verify_token_offline(d.capability_token, public_key=public_key, actor=BOT)
        async with agent.llm_call(
            user_id=f"py-{uuid.uuid4().hex[:12]}", estimated_input_tokens=100, max_output_tokens=100, **LLM
        ) as call:
            s = await call.settle(input_tokens=10, output_tokens=10)
        assert s.newly_settled and s.charged_micros == 8  # ceil((10*0.15 + 10*0.60) micro-dollars)
        with pytest.raises(lexecon.PermissionDenied):
            await agent.verify_ledger()
