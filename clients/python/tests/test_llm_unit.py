"""The LLM guard against a scripted server: decide with the usage, settle the real
usage, release on an exception, refuse to run an unapproved call."""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import httpx
import pytest
from conftest import DECISION_JSON, Recorder, json_response, mock_async_client, mock_client

import lexecon


class Budget:
    """A fake server for Decide/Settle/Release that remembers what it was asked."""

    def __init__(self, outcome: str = "approved") -> None:
        self.outcome = outcome
        self.calls: List[Tuple[str, Dict[str, Any]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        import json

        rpc = request.url.path.rsplit("/", 1)[-1]
        body = json.loads(request.content)
        self.calls.append((rpc, body))
        if rpc == "Decide":
            approved = self.outcome == "approved"
            return json_response(
                200,
                {
                    **DECISION_JSON,
                    "outcome": self.outcome,
                    "reservation_id": "res_1" if approved else "",
                    "capability_token": "lxc1.t.s" if approved else "",
                    "escalation_id": "esc_1" if self.outcome == "escalated" else "",
                },
            )
        if rpc == "Settle":
            return json_response(200, {"charged_micros": "150", "released_micros": "50", "newly_settled": True})
        if rpc == "Release":
            return json_response(200, {"released": True})
        return json_response(404, {"error": {"code": "not_found", "message": rpc}})

    def rpcs(self) -> List[str]:
        return [rpc for rpc, _ in self.calls]


LLM = dict(
    actor="ai_agent:assistant",
    tool="openai_api",
    model="gpt-4o-mini",
    user_id="alice",
    estimated_input_tokens=500,
    max_output_tokens=200,
)


def test_a_guarded_call_decides_with_the_usage_and_settles_the_real_usage() -> None:
    budget = Budget()
    with mock_client(Recorder([budget])) as client:
        with client.llm_call(**LLM) as call:
            assert call.capability_token == "lxc1.t.s" and call.reservation_id == "res_1"
            settled = call.settle(input_tokens=321, output_tokens=45)
    assert settled.charged_micros == 150
    assert budget.rpcs() == ["Decide", "Settle"]
    decide, settle = budget.calls[0][1], budget.calls[1][1]
    assert decide["proposed_action"] == "llm:chat" and decide["tool"] == "openai_api"
    assert decide["llm"] == {
        "model": "gpt-4o-mini",
        "user_id": "alice",
        "estimated_input_tokens": 500,
        "max_output_tokens": 200,
    }
    assert settle == {"reservation_id": "res_1", "input_tokens": 321, "output_tokens": 45}


def test_an_exception_releases_and_propagates() -> None:
    budget = Budget()
    with mock_client(Recorder([budget])) as client:
        with pytest.raises(RuntimeError, match="model down"):
            with client.llm_call(**LLM):
                raise RuntimeError("model down")
    assert budget.rpcs() == ["Decide", "Release"]
    assert budget.calls[1][1] == {"reservation_id": "res_1"}


def test_a_block_left_without_settle_is_charged_the_worst_case() -> None:
    budget = Budget()
    with mock_client(Recorder([budget])) as client:
        with client.llm_call(**LLM) as call:
            pass
    assert budget.rpcs() == ["Decide", "Settle"]
    assert budget.calls[1][1] == {"reservation_id": "res_1", "input_tokens": 500, "output_tokens": 200}
    assert call.settlement is not None


@pytest.mark.parametrize("outcome", ["denied", "escalated"])
def test_an_unapproved_call_never_runs(outcome: str) -> None:
    budget = Budget(outcome)
    ran = []
    with mock_client(Recorder([budget])) as client:
        with pytest.raises(lexecon.NotApproved) as info:
            with client.llm_call(**LLM):
                ran.append(1)
    assert ran == [] and budget.rpcs() == ["Decide"]
    assert info.value.code == outcome and info.value.decision.outcome == outcome
    if outcome == "escalated":
        assert info.value.decision.escalation_id == "esc_1"


def test_guard_llm_wraps_a_function() -> None:
    budget = Budget()

    def my_llm(prompt: str) -> Dict[str, Any]:
        return {"text": prompt.upper(), "usage": {"in": 7, "out": 3}}

    with mock_client(Recorder([budget])) as client:
        guarded = client.guard_llm(my_llm, usage=lambda r: (r["usage"]["in"], r["usage"]["out"]), **LLM)
        assert guarded("hi")["text"] == "HI"
        assert guarded.__name__ == "my_llm"

        def broken(prompt: str) -> Dict[str, Any]:
            raise TimeoutError(prompt)

        with pytest.raises(TimeoutError):
            client.guard_llm(broken, usage=lambda r: (0, 0), **LLM)("x")
    assert budget.rpcs() == ["Decide", "Settle", "Decide", "Release"]
    assert budget.calls[1][1]["input_tokens"] == 7 and budget.calls[1][1]["output_tokens"] == 3


def test_a_failed_release_does_not_hide_the_callers_exception() -> None:
    budget = Budget()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Release"):
            return json_response(500, {"error": {"code": "internal", "message": "store down"}})
        return budget(request)

    with mock_client(Recorder([answer])) as client:
        with pytest.raises(KeyError):
            with client.llm_call(**LLM):
                raise KeyError("mine")


@pytest.mark.anyio
async def test_the_async_guard_settles_and_releases() -> None:
    budget = Budget()
    async with mock_async_client(Recorder([budget])) as client:
        async with client.llm_call(**LLM) as call:
            await call.settle(input_tokens=11, output_tokens=22)
        with pytest.raises(ValueError):
            async with client.llm_call(**LLM):
                raise ValueError("bad prompt")

        async def my_llm(prompt: str) -> Tuple[int, int]:
            return (len(prompt), 1)

        assert await client.guard_llm(my_llm, usage=lambda r: r, **LLM)("abcd") == (4, 1)
    assert budget.rpcs() == ["Decide", "Settle", "Decide", "Release", "Decide", "Settle"]
    assert budget.calls[5][1]["input_tokens"] == 4


def test_wait_for_escalation_polls_until_resolved() -> None:
    states = iter(["pending", "pending", "approved"])

    def answer(request: httpx.Request) -> httpx.Response:
        state = next(states)
        esc = {"escalation_id": "esc_1", "state": state, "capability_token": "lxc1.a.b" if state == "approved" else ""}
        return json_response(200, {"escalation": esc})

    with mock_client(Recorder([answer])) as client:
        esc = client.wait_for_escalation("esc_1", timeout=60, poll_interval=1.5)
    assert esc.state == "approved" and esc.capability_token == "lxc1.a.b"
    assert client.slept == [1.5, 1.5]  # type: ignore[attr-defined]


def test_wait_for_escalation_times_out() -> None:
    rec = Recorder([json_response(200, {"escalation": {"escalation_id": "esc_1", "state": "pending"}})])
    with mock_client(rec) as client:
        client._sleep = lambda d: None  # type: ignore[assignment]
        with pytest.raises(lexecon.DeadlineExceeded, match="still pending"):
            client.wait_for_escalation("esc_1", timeout=0.0)
