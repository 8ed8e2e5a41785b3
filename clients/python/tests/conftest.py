"""Shared test helpers: a token minter that follows the Rust encoding (for unit tests of
offline verification), canned server answers, and the integration settings."""

from __future__ import annotations

import base64
import json
import os
import struct
import time
from typing import Any, Callable, Dict, List, Optional

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import lexecon

DOMAIN = b"lexecon/capability-token/v1"


def _bytes(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _opt(s: Optional[str]) -> bytes:
    return b"\x00" if s is None else b"\x01" + _bytes(s.encode())


def mint(
    key: Ed25519PrivateKey,
    *,
    actor: str = "ai_agent:customer_service",
    action: str = "read:customer_data",
    tool: Optional[str] = "database_query",
    audience: Optional[str] = None,
    not_before: Optional[float] = None,
    ttl: float = 300,
    key_id: Optional[str] = None,
) -> str:
    """A capability token signed by ``key``, encoded as crates/lexecon-capability does."""
    nb = time.time() if not_before is None else not_before
    nb_us = int(nb * 1_000_000)
    kid = key_id or lexecon.key_id_of(key.public_key())
    payload = b"".join(
        [
            _bytes(DOMAIN),
            _bytes(bytes(range(1, 17))),  # token id
            _bytes(kid.encode()),
            _bytes(bytes(range(17, 33))),  # decision id
            _bytes(actor.encode()),
            _bytes(action.encode()),
            _opt(tool),
            struct.pack(">q", nb_us),
            struct.pack(">q", nb_us),
            struct.pack(">q", nb_us + int(ttl * 1_000_000)),
            _bytes(b"\x07" * 32),
            _opt(audience),
        ]
    )
    sig = key.sign(payload)
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"lxc1.{enc(payload)}.{enc(sig)}"


def pub_pem(key: Ed25519PrivateKey) -> str:
    """The public key as `lexecon init` writes it (SPKI PEM)."""
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def node_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


DECISION_JSON: Dict[str, Any] = {
    "decision_id": "dec_01JD5Z8Q6M6B2W7V6S8C4X2N0P",
    "request_id": "r-1",
    "outcome": "approved",
    "reasoning": "permitted by rel-read",
    "reasons": ["rel-read"],
    "risk_level": "medium",
    "risk_score": 42,
    "risk_dimensions": {
        "privacy": {"score": 60, "factors": [{"rule_id": "data_class.pii", "points": "60", "description": "pii"}]}
    },
    "capability_token": "lxc1.x.y",
    "token_expires_at": "2026-12-05T04:00:00Z",
    "ledger_index": "12345678901234",
    "ledger_leaf_hash": base64.b64encode(b"\x01" * 32).decode(),
    "policy_version_hash": base64.b64encode(b"\x02" * 32).decode(),
    "decided_at": "2026-12-05T03:55:00.123456Z",
    "effective_mode": "strict",
    "reservation_id": "",
    "warnings": [],
    "actor": "ai_agent:customer_service",
    "escalation_id": "",
    "override_id": "",
    "escalation_state": "unspecified",
    "a_field_from_a_newer_server": "kept",
}


class Recorder:
    """An httpx MockTransport handler that answers from a script and records requests."""

    def __init__(self, answers: List[Any]) -> None:
        self.answers = list(answers)
        self.requests: List[httpx.Request] = []

    def bodies(self) -> List[Dict[str, Any]]:
        return [json.loads(r.content) if r.content else {} for r in self.requests]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


def json_response(status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def error_response(
    status: int, code: str, message: str, field: Optional[str] = None, headers: Optional[Dict[str, str]] = None
) -> httpx.Response:
    err: Dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        err["field"] = field
    return httpx.Response(status, json={"error": err}, headers=headers)


def mock_client(recorder: Recorder, **kw: Any) -> "lexecon.Client":
    client = lexecon.Client("http://lexecon.test", token="lxk_test", transport=httpx.MockTransport(recorder), **kw)
    client.slept = []  # type: ignore[attr-defined]
    client._sleep = client.slept.append  # type: ignore[attr-defined,assignment]
    return client


def mock_async_client(recorder: Recorder, **kw: Any) -> "lexecon.AsyncClient":
    client = lexecon.AsyncClient("http://lexecon.test", token="lxk_test", transport=httpx.MockTransport(recorder), **kw)
    slept: List[float] = []

    async def sleep(d: float) -> None:
        slept.append(d)

    client.slept = slept  # type: ignore[attr-defined]
    client._sleep = sleep  # type: ignore[assignment]
    return client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---- integration settings -------------------------------------------------------------

INTEGRATION_ENV = (
    "LEXECON_URL",
    "LEXECON_TOKEN",
    "LEXECON_PUBLIC_KEY_FILE",
    "LEXECON_OFFICER_TOKEN",
    "LEXECON_AGENT_TOKEN",
)


def integration_settings() -> Optional[Dict[str, str]]:
    values = {k: os.environ.get(k, "") for k in INTEGRATION_ENV}
    return values if all(values.values()) else None


Factory = Callable[..., Any]
