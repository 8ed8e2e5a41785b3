"""What the sync and async clients share: request building, response parsing, retry
decisions and transport settings. Only sending differs between the two clients."""

from __future__ import annotations

import email.utils
import json
import os
import random
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import httpx

from .errors import (
    DeadlineExceeded,
    LexeconError,
    ServerError,
    Unavailable,
    error_from_response,
)
from .models import (
    Decision,
    Escalation,
    EscalationPage,
    LedgerVerification,
    Release,
    Settlement,
    TokenRevocation,
    TokenVerification,
    Usage,
)

T = TypeVar("T")

#: ``cert=`` of the clients: a PEM file holding certificate and key, or ``(cert, key)``.
CertTypes = Union[str, "os.PathLike[str]", Tuple[str, str]]
#: ``verify=`` of the clients: True (system CAs), False, a CA bundle path, or an SSLContext.
VerifyTypes = Union[bool, str, "os.PathLike[str]", ssl.SSLContext]

USER_AGENT = "lexecon-python/0.1.0"


def new_request_id() -> str:
    """A fresh idempotency key (``py-`` + a random UUID; at most 128 bytes, no control
    characters, as the server requires)."""
    return f"py-{uuid.uuid4()}"


@dataclass(frozen=True)
class Op(Generic[T]):
    """One HTTP call: what to send and how to read the answer."""

    method: str
    path: str
    body: Optional[Dict[str, Any]]
    parse: Callable[[Any], T]
    #: True when sending it twice has the effect of sending it once, so a retry after
    #: an answer that may have been lost is safe.
    idempotent: bool
    params: Optional[Dict[str, str]] = None
    #: The answer is NDJSON (one message per line), as for server-streaming RPCs.
    ndjson: bool = False


def rpc_path(service: str, rpc: str) -> str:
    """``/v1/<Service>/<Rpc>``; ``service`` may be short (``DecisionService``) or full
    (``lexecon.v1.DecisionService``)."""
    if not service or not rpc or "/" in service or "/" in rpc:
        raise ValueError(
            f"service and rpc must be non-empty names without '/', e.g. call('DecisionService', 'Decide', {{...}}); got {service!r}, {rpc!r}"
        )
    return f"/v1/{service}/{rpc}"


def _drop_none(d: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _as_dict(value: Any, name: str) -> Optional[Dict[str, Any]]:
    if value is None:
        return None
    if hasattr(value, "model_dump"):
        return _drop_none(value.model_dump())
    if isinstance(value, Mapping):
        return _drop_none(value)
    raise TypeError(
        f"{name} must be a mapping, e.g. {{'model': 'gpt-4o-mini', 'estimated_input_tokens': 500}}; got {type(value).__name__}"
    )


def llm_usage(
    *,
    model: str,
    user_id: Optional[str] = None,
    roles: Optional[Sequence[str]] = None,
    estimated_input_tokens: int = 0,
    max_output_tokens: int = 0,
) -> Dict[str, Any]:
    """The ``llm`` field of a decision request (proto ``LlmUsage``)."""
    return _drop_none(
        {
            "model": model,
            "user_id": user_id,
            "roles": list(roles) if roles is not None else None,
            "estimated_input_tokens": int(estimated_input_tokens),
            "max_output_tokens": int(max_output_tokens),
        }
    )


# ---------------------------------------------------------------------------------------
# Operations


def parse_dict(data: Any) -> Dict[str, Any]:
    if not isinstance(data, dict):
        raise ServerError(f"expected a JSON object from the server, got {type(data).__name__}")
    return data


def op_decide(
    *,
    actor: Optional[str],
    proposed_action: str,
    tool: Optional[str],
    user_intent: Optional[str],
    data_classes: Optional[Sequence[str]],
    risk_level: Optional[int],
    policy_mode: Optional[str],
    context: Optional[Mapping[str, str]],
    request_id: Optional[str],
    llm: Any,
) -> Op[Decision]:
    if isinstance(data_classes, str):
        raise TypeError(f"data_classes must be a list of names such as ['pii'], not the string {data_classes!r}")
    body = _drop_none(
        {
            "actor": actor,
            "proposed_action": proposed_action,
            "tool": tool,
            "user_intent": user_intent,
            "data_classes": list(data_classes) if data_classes is not None else None,
            "risk_level": risk_level,
            "policy_mode": policy_mode,
            "context": dict(context) if context is not None else None,
            "request_id": new_request_id() if request_id is None else request_id,
            "llm": _as_dict(llm, "llm"),
        }
    )
    # With a request_id the server answers a repeat with the first decision, so a
    # retry after a lost answer never decides twice.
    return Op(
        "POST",
        rpc_path("DecisionService", "Decide"),
        body,
        Decision.model_validate,
        idempotent=bool(body["request_id"]),
    )


def op_verify_token(
    token: str, *, actor: Optional[str], action: Optional[str], tool: Optional[str], audience: Optional[str]
) -> Op[TokenVerification]:
    body = _drop_none({"token": token, "actor": actor, "action": action, "tool": tool, "audience": audience})
    return Op(
        "POST", rpc_path("DecisionService", "VerifyToken"), body, TokenVerification.model_validate, idempotent=True
    )


def op_revoke_token(token_id: str, reason: str) -> Op[TokenRevocation]:
    body = {"token_id": token_id, "reason": reason}
    return Op("POST", rpc_path("DecisionService", "RevokeToken"), body, TokenRevocation.model_validate, idempotent=True)


def op_settle(reservation_id: str, input_tokens: int, output_tokens: int) -> Op[Settlement]:
    body = {"reservation_id": reservation_id, "input_tokens": int(input_tokens), "output_tokens": int(output_tokens)}
    return Op("POST", rpc_path("BudgetService", "Settle"), body, Settlement.model_validate, idempotent=True)


def op_release(reservation_id: str) -> Op[Release]:
    return Op(
        "POST",
        rpc_path("BudgetService", "Release"),
        {"reservation_id": reservation_id},
        Release.model_validate,
        idempotent=True,
    )


def op_get_usage(scope: Optional[str]) -> Op[Usage]:
    return Op(
        "POST",
        rpc_path("BudgetService", "GetUsage"),
        _drop_none({"scope": scope}),
        Usage.model_validate,
        idempotent=True,
    )


def _escalation(data: Any) -> Escalation:
    return Escalation.model_validate(parse_dict(data).get("escalation") or {})


def op_get_escalation(escalation_id: str) -> Op[Escalation]:
    return Op(
        "POST",
        rpc_path("OversightService", "GetEscalation"),
        {"escalation_id": escalation_id},
        _escalation,
        idempotent=True,
    )


def op_list_escalations(
    state: Optional[str], page_size: Optional[int], page_token: Optional[str]
) -> Op[EscalationPage]:
    body = _drop_none({"state": state, "page_size": page_size, "page_token": page_token})
    return Op(
        "POST", rpc_path("OversightService", "ListEscalations"), body, EscalationPage.model_validate, idempotent=True
    )


def op_resolve_escalation(escalation_id: str, approve: bool, reason: str) -> Op[Escalation]:
    body = {"escalation_id": escalation_id, "approve": bool(approve), "reason": reason}
    # Not retried after a lost answer: a second answer by the same person is refused.
    return Op("POST", rpc_path("OversightService", "ResolveEscalation"), body, _escalation, idempotent=False)


def op_verify_ledger() -> Op[LedgerVerification]:
    return Op("POST", rpc_path("LedgerService", "Verify"), {}, LedgerVerification.model_validate, idempotent=True)


#: RPCs that only read, or whose repeat is answered with the first result; ``call()``
#: retries these after a lost answer too.
IDEMPOTENT_RPCS = frozenset(
    {
        "Decide",  # idempotent only with a request_id; see op_call
        "VerifyToken",
        "RevokeToken",
        "RecordCompletion",
        "CheckTools",
        "Settle",
        "Release",
        "GetUsage",
        "GetLimits",
        "ListEscalations",
        "GetEscalation",
        "ListOverrides",
        "GetHaltStatus",
        "GetAccountability",
        "GetEntries",
        "GetEntry",
        "GetCheckpoint",
        "GetInclusionProof",
        "GetConsistencyProof",
        "GetActivePolicy",
        "ValidatePolicy",
        "ListPolicyVersions",
        "Explain",
        "Assess",
        "QueryDecisions",
        "ListAuditExports",
        "GetEvidence",
        "ListEvidence",
        "VerifyEvidence",
        "RegisterEvidence",
        "ListFrameworks",
        "GetComplianceStatus",
        "GetGaps",
        "GetTechnicalDocumentation",
        "GetRecordKeepingStatus",
        "ListLegalHolds",
        "GetComplianceReport",
        "WhoAmI",
        "ListOidcProviders",
    }
)


def op_call(service: str, rpc: str, body: Optional[Mapping[str, Any]]) -> Op[Dict[str, Any]]:
    payload = dict(body or {})
    idempotent = rpc in IDEMPOTENT_RPCS
    if rpc == "Decide" and service.endswith("DecisionService"):
        payload.setdefault("request_id", new_request_id())
        idempotent = bool(payload["request_id"])
    return Op("POST", rpc_path(service, rpc), payload, parse_dict, idempotent=idempotent)


def parse_messages(data: Any) -> List[Dict[str, Any]]:
    return [parse_dict(m) for m in data]


def op_call_stream(
    service: str, rpc: str, body: Optional[Mapping[str, Any]], max_events: Optional[int], wait_ms: Optional[int]
) -> Op[List[Dict[str, Any]]]:
    params = {}
    if max_events is not None:
        params["max_events"] = str(int(max_events))
    if wait_ms is not None:
        params["wait_ms"] = str(int(wait_ms))
    return Op(
        "POST",
        rpc_path(service, rpc),
        dict(body or {}),
        parse_messages,
        idempotent=True,
        params=params or None,
        ndjson=True,
    )


def ndjson_messages(text: str) -> List[Any]:
    """The messages of an NDJSON answer; a last line ``{"error": ...}`` (the stream
    failed after its first message) is raised."""
    out: List[Any] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ServerError(f"a line of the server's NDJSON answer is not JSON: {line[:200]!r}") from exc
        if isinstance(msg, dict) and set(msg) == {"error"}:
            err = error_from_response(0, msg)
            err.status = None
            err.body["messages_before_error"] = len(out)
            raise err
        out.append(msg)
    return out


# ---------------------------------------------------------------------------------------
# Retries


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a call again.

    A call is sent again, at most ``retries`` times, when the connection could not be
    made (nothing was sent), when the server answered 429 or 503 (nothing was done), and,
    for idempotent calls only, when the answer was lost (timeout or broken connection).
    The wait is the server's ``Retry-After`` when it gave one (a call whose hint is
    longer than ``max_retry_after`` is not retried: the error carries the hint), else an
    exponential backoff with jitter from ``backoff`` up to ``max_backoff`` seconds.
    """

    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0
    max_retry_after: float = 30.0

    def _backoff(self, attempt: int) -> float:
        base = min(self.max_backoff, self.backoff * float(2**attempt))
        return base * (0.5 + random.random() / 2)

    def after_exception(self, attempt: int, exc: Exception, idempotent: bool) -> Optional[float]:
        if attempt >= self.retries:
            return None
        not_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        lost_answer = isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))
        if not_sent or (idempotent and lost_answer):
            return self._backoff(attempt)
        return None

    def after_status(self, attempt: int, status: int, retry_after: Optional[float]) -> Optional[float]:
        if attempt >= self.retries or status not in (429, 503):
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        return self._backoff(attempt)


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def transport_error(exc: Exception) -> LexeconError:
    """The package error for an httpx transport failure."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return Unavailable(
            f"could not reach the Lexecon server: {exc!s} (is it running, and is base_url right?)", code="unavailable"
        )
    if isinstance(exc, httpx.TimeoutException):
        return DeadlineExceeded(
            f"no answer within the client's timeout: {exc!s}; raise timeout= or retry", code="deadline_exceeded"
        )
    return Unavailable(f"the connection to the Lexecon server failed: {exc!s}", code="unavailable")


def decode(response: httpx.Response, op: Op[T]) -> T:
    """The parsed body of a successful answer, or the error for a failed one."""
    if response.status_code >= 400:
        raise response_error(response)
    if op.ndjson:
        return op.parse(ndjson_messages(response.text))
    try:
        data = response.json() if response.content else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ServerError(
            f"the server answered {op.method} {op.path} with HTTP {response.status_code} but the body is not JSON: {response.text[:200]!r}",
            status=response.status_code,
        ) from exc
    return op.parse(data)


def response_error(response: httpx.Response) -> LexeconError:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    return error_from_response(
        response.status_code,
        body,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        text=response.text if body is None else "",
    )


# ---------------------------------------------------------------------------------------
# Transport settings


@dataclass
class Settings:
    """The constructor arguments both clients share, turned into httpx arguments."""

    base_url: str
    token: Optional[str]
    timeout: float
    retry: RetryPolicy
    verify: Union[bool, ssl.SSLContext]
    headers: Dict[str, str] = field(default_factory=dict)


def settings(
    base_url: str,
    token: Optional[str],
    timeout: float,
    retries: Union[int, "RetryPolicy"],
    verify: VerifyTypes,
    cert: Optional[CertTypes],
    headers: Optional[Mapping[str, str]],
) -> Settings:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise ValueError(
            f"base_url must start with http:// or https://, e.g. 'http://127.0.0.1:50051'; got {base_url!r}"
        )
    if token is None:
        token = os.environ.get("LEXECON_TOKEN") or None
    if isinstance(retries, RetryPolicy):
        policy = retries
    elif isinstance(retries, int) and retries >= 0:
        policy = RetryPolicy(retries=retries)
    else:
        raise ValueError(f"retries must be a count (0 or more) or a lexecon.RetryPolicy; got {retries!r}")
    hdrs = {"user-agent": USER_AGENT, "accept": "application/json"}
    if token:
        hdrs["authorization"] = f"Bearer {token}"
    hdrs.update(headers or {})
    return Settings(
        base_url=base_url.rstrip("/"),
        token=token,
        timeout=timeout,
        retry=policy,
        verify=ssl_context(verify, cert),
        headers=hdrs,
    )


def ssl_context(verify: VerifyTypes, cert: Optional[CertTypes]) -> Union[bool, ssl.SSLContext]:
    """``verify`` as httpx takes it: an SSLContext built from a CA file and a client
    certificate when given (mTLS), else the boolean."""
    if isinstance(verify, ssl.SSLContext):
        if cert is not None:
            _load_cert(verify, cert)
        return verify
    if verify is False:
        if cert is None:
            return False
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _load_cert(ctx, cert)
        return ctx
    if verify is True and cert is None:
        return True
    cafile = None if verify is True else os.fspath(verify)
    if cafile is not None and not os.path.isfile(cafile):
        raise ValueError(
            f"verify={cafile!r}: no such CA file; pass the PEM file of the CA that signed the server's certificate"
        )
    ctx = ssl.create_default_context(cafile=cafile)
    if cert is not None:
        _load_cert(ctx, cert)
    return ctx


def _load_cert(ctx: ssl.SSLContext, cert: CertTypes) -> None:
    if isinstance(cert, tuple):
        certfile, keyfile = cert
        ctx.load_cert_chain(os.fspath(certfile), os.fspath(keyfile))
    else:
        ctx.load_cert_chain(os.fspath(cert))


def health_from(live: Optional[httpx.Response], ready: Optional[httpx.Response]) -> Dict[str, Any]:
    def body(r: Optional[httpx.Response]) -> Any:
        if r is None:
            return None
        try:
            return r.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return r.text.strip()

    return {
        "live": live is not None and live.status_code == 200,
        "ready": ready is not None and ready.status_code == 200,
        "detail": {"healthz": body(live), "readyz": body(ready)},
    }


__all__: List[str] = []
