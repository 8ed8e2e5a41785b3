"""The synchronous client."""

from __future__ import annotations

import contextlib
import functools
import time
from types import TracebackType
from typing import Any, List, Union, Callable, Dict, Iterator, Mapping, Optional, Sequence, Tuple, Type, TypeVar

import httpx

from . import _core
from ._core import CertTypes, Op, RetryPolicy, VerifyTypes
from .errors import DeadlineExceeded, NotApproved
from .llm import LlmCall
from .models import (
    Decision,
    Escalation,
    EscalationPage,
    Health,
    LedgerVerification,
    Release,
    Settlement,
    TokenRevocation,
    TokenVerification,
    Usage,
)

__all__ = ["Client"]

T = TypeVar("T")
R = TypeVar("R")


class Client:
    """A client of a Lexecon server's HTTP/JSON API.

    Args:
        base_url: the server's address, e.g. ``"http://127.0.0.1:50051"`` (the gRPC
            port serves HTTP/JSON too).
        token: an API key (``lxk_...``) or session token, sent as ``Authorization:
            Bearer``; defaults to the ``LEXECON_TOKEN`` environment variable.
        timeout: seconds to wait for each answer.
        retries: how many times a call is sent again after a failed connection, a 429
            or a 503 (honouring ``Retry-After``), or, for idempotent calls, a lost
            answer; or a :class:`lexecon.RetryPolicy` to set the waits too.
            ``decide`` always sends a ``request_id``, so a retry never decides twice.
        verify: True (system CAs), False, a CA bundle file (a private CA), or an
            ``ssl.SSLContext``.
        cert: a client certificate for mTLS: ``(cert_file, key_file)`` or one PEM file.
        headers: extra headers sent with every call.
        transport: an httpx transport (tests use ``httpx.MockTransport``).

    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        *,
        timeout: float = 10.0,
        retries: Union[int, RetryPolicy] = 3,
        verify: VerifyTypes = True,
        cert: Optional[CertTypes] = None,
        headers: Optional[Mapping[str, str]] = None,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        self._settings = _core.settings(base_url, token, timeout, retries, verify, cert, headers)
        self._http = httpx.Client(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            verify=self._settings.verify,
            transport=transport,
        )
        self._sleep: Callable[[float], None] = time.sleep

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """The server's address."""
        return self._settings.base_url

    # -- sending -----------------------------------------------------------------------

    def _run(self, op: Op[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._http.request(op.method, op.path, json=op.body, params=op.params)
            except httpx.TransportError as exc:
                delay = self._settings.retry.after_exception(attempt, exc, op.idempotent)
                if delay is None:
                    raise _core.transport_error(exc) from exc
            else:
                if response.status_code < 400:
                    return _core.decode(response, op)
                retry_after = _core.parse_retry_after(response.headers.get("retry-after"))
                delay = self._settings.retry.after_status(attempt, response.status_code, retry_after)
                if delay is None:
                    raise _core.response_error(response)
            self._sleep(delay)
            attempt += 1

    def call(self, service: str, rpc: str, body: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Calls any RPC: ``POST /v1/<service>/<rpc>`` with ``body`` (proto3 JSON,
        snake_case field names) and returns the decoded JSON answer. 64-bit integers
        come back as strings, enums as short lowercase names.

        Example: ``client.call("PolicyService", "GetActivePolicy", {})``.
        """
        return self._run(_core.op_call(service, rpc, body))

    def call_stream(
        self,
        service: str,
        rpc: str,
        body: Optional[Mapping[str, Any]] = None,
        *,
        max_events: Optional[int] = None,
        wait_ms: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Calls a server-streaming RPC (``OversightService/WatchEvents``,
        ``AuditService/ExportAudit``) and returns its messages. The answer ends after
        ``max_events`` messages, after ``wait_ms`` milliseconds (server default 30,000),
        or when the stream ends. An error after the first message is raised.

        Example: ``client.call_stream("OversightService", "WatchEvents", {"from_index": 0}, max_events=10, wait_ms=1000)``.
        """
        return self._run(_core.op_call_stream(service, rpc, body, max_events, wait_ms))

    # -- decisions ---------------------------------------------------------------------

    def decide(
        self,
        *,
        actor: Optional[str] = None,
        proposed_action: str,
        tool: Optional[str] = None,
        user_intent: Optional[str] = None,
        data_classes: Optional[Sequence[str]] = None,
        risk_level: Optional[int] = None,
        policy_mode: Optional[str] = None,
        context: Optional[Mapping[str, str]] = None,
        request_id: Optional[str] = None,
        llm: Optional[Mapping[str, Any]] = None,
    ) -> Decision:
        """Asks whether ``actor`` may do ``proposed_action`` (``"verb:object"``) through
        ``tool``. A denial is not an error: check ``outcome`` (``"approved"``,
        ``"denied"`` or ``"escalated"``).

        ``request_id`` is the idempotency key; one is generated when not given (pass
        ``""`` to send none), and retries reuse it. Sending the same ``request_id``
        again returns the first decision (for an escalation: with its token once a
        person approved it). ``llm`` describes an LLM call (``model``, ``user_id``,
        ``roles``, ``estimated_input_tokens``, ``max_output_tokens``; see
        :func:`lexecon.llm_usage`); an approved one reserves budget
        (``reservation_id``) that :meth:`settle` or :meth:`release` must end.
        ``policy_mode`` is ``"permissive"``, ``"strict"`` or ``"paranoid"``; it can
        only make the decision stricter.
        """
        return self._run(
            _core.op_decide(
                actor=actor,
                proposed_action=proposed_action,
                tool=tool,
                user_intent=user_intent,
                data_classes=data_classes,
                risk_level=risk_level,
                policy_mode=policy_mode,
                context=context,
                request_id=request_id,
                llm=llm,
            )
        )

    def verify_token(
        self,
        token: str,
        *,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        tool: Optional[str] = None,
        audience: Optional[str] = None,
    ) -> TokenVerification:
        """Asks the server to check a capability token (signature, expiry, revocation,
        and each scope given). ``valid`` is False with ``error_kind`` when it fails."""
        return self._run(_core.op_verify_token(token, actor=actor, action=action, tool=tool, audience=audience))

    def revoke_token(self, token_id: str, *, reason: str) -> TokenRevocation:
        """Revokes a token by its id (``tok_...``; see :func:`lexecon.verify_token_offline`
        or :meth:`verify_token`)."""
        return self._run(_core.op_revoke_token(token_id, reason))

    # -- budgets -----------------------------------------------------------------------

    def settle(self, reservation_id: str, *, input_tokens: int, output_tokens: int) -> Settlement:
        """Charges the actual usage of a reservation and releases the rest (idempotent)."""
        return self._run(_core.op_settle(reservation_id, input_tokens, output_tokens))

    def release(self, reservation_id: str) -> Release:
        """Cancels a reservation; ``released`` is False when it had ended already."""
        return self._run(_core.op_release(reservation_id))

    def get_usage(self, scope: Optional[str] = None) -> Usage:
        """Spend of a budget scope (``"global"``, ``"user:<id>"``, ``"role:<name>"``)."""
        return self._run(_core.op_get_usage(scope))

    @contextlib.contextmanager
    def llm_call(
        self,
        *,
        model: str,
        estimated_input_tokens: int,
        max_output_tokens: int,
        actor: Optional[str] = None,
        user_id: Optional[str] = None,
        roles: Optional[Sequence[str]] = None,
        proposed_action: str = "llm:chat",
        tool: Optional[str] = None,
        user_intent: Optional[str] = None,
        data_classes: Optional[Sequence[str]] = None,
        risk_level: Optional[int] = None,
        policy_mode: Optional[str] = None,
        context: Optional[Mapping[str, str]] = None,
        request_id: Optional[str] = None,
    ) -> Iterator[LlmCall]:
        """Guards one LLM call::

            with client.llm_call(actor="ai_agent:assistant", tool="openai_api",
                                 model="gpt-4o-mini", user_id="alice",
                                 estimated_input_tokens=500, max_output_tokens=200) as call:
                reply = my_llm(prompt)
                call.settle(input_tokens=reply.usage.input, output_tokens=reply.usage.output)

        Entering decides (with the call's ``llm`` usage, reserving its worst-case cost)
        and raises :class:`lexecon.NotApproved` unless approved. An exception inside the
        block releases the reservation and propagates; a block that ends without
        ``settle`` is settled at the reserved worst case, so spend is never under-counted.
        """
        decision = self.decide(
            actor=actor,
            proposed_action=proposed_action,
            tool=tool,
            user_intent=user_intent,
            data_classes=data_classes,
            risk_level=risk_level,
            policy_mode=policy_mode,
            context=context,
            request_id=request_id,
            llm=_core.llm_usage(
                model=model,
                user_id=user_id,
                roles=roles,
                estimated_input_tokens=estimated_input_tokens,
                max_output_tokens=max_output_tokens,
            ),
        )
        if not decision.approved:
            raise NotApproved(decision)
        call = LlmCall(self, decision, estimated_input_tokens, max_output_tokens)
        try:
            yield call
        except BaseException:
            call._finish(failed=True)
            raise
        call._finish(failed=False)

    def guard_llm(
        self,
        fn: Callable[..., R],
        *,
        usage: Callable[[R], Tuple[int, int]],
        model: str,
        estimated_input_tokens: int,
        max_output_tokens: int,
        **decide: Any,
    ) -> Callable[..., R]:
        """Wraps ``fn`` (any function that calls an LLM) so that each call is decided,
        made, and settled with ``usage(result)`` = ``(input_tokens, output_tokens)``; a
        call that raises releases its reservation and re-raises. ``decide`` takes the
        other arguments of :meth:`llm_call` (``actor``, ``tool``, ``user_id``, ...)."""

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> R:
            with self.llm_call(
                model=model,
                estimated_input_tokens=estimated_input_tokens,
                max_output_tokens=max_output_tokens,
                **decide,
            ) as call:
                result = fn(*args, **kwargs)
                input_tokens, output_tokens = usage(result)
                call.settle(input_tokens=input_tokens, output_tokens=output_tokens)
                return result

        return guarded

    # -- oversight ---------------------------------------------------------------------

    def get_escalation(self, escalation_id: str) -> Escalation:
        """One escalation. The principal whose request escalated also gets its
        ``capability_token`` once approved (fetching it uses the approval's grant)."""
        return self._run(_core.op_get_escalation(escalation_id))

    def list_escalations(
        self, *, state: Optional[str] = None, page_size: Optional[int] = None, page_token: Optional[str] = None
    ) -> EscalationPage:
        """Escalations, newest first; ``state`` filters (``"pending"``, ``"approved"``, ...)."""
        return self._run(_core.op_list_escalations(state, page_size, page_token))

    def resolve_escalation(self, escalation_id: str, *, approve: bool, reason: str) -> Escalation:
        """Approves or denies a pending escalation (compliance officers and admins; never
        the principal whose request escalated)."""
        return self._run(_core.op_resolve_escalation(escalation_id, approve, reason))

    def wait_for_escalation(
        self, escalation_id: str, *, timeout: float = 600.0, poll_interval: float = 2.0
    ) -> Escalation:
        """Polls :meth:`get_escalation` until the escalation is no longer pending and
        returns it: ``state == "approved"`` with ``capability_token`` for the asking
        principal, else ``"denied"``, ``"expired"`` or ``"cancelled"``. Raises
        :class:`lexecon.DeadlineExceeded` when still pending after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            escalation = self.get_escalation(escalation_id)
            if not escalation.pending:
                return escalation
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"escalation {escalation_id} is still pending after {timeout:g}s; wait longer or ask a compliance officer to resolve it",
                    code="deadline_exceeded",
                )
            self._sleep(min(poll_interval, remaining))

    # -- ledger and health ---------------------------------------------------------------

    def verify_ledger(self) -> LedgerVerification:
        """Has the server verify the whole ledger (``LedgerService/Verify``)."""
        return self._run(_core.op_verify_ledger())

    def health(self) -> Health:
        """Liveness and readiness (``/healthz``, ``/readyz``; no token needed). A server
        that cannot be reached is reported not live, not raised."""
        answers: List[Optional[httpx.Response]] = []
        for path in ("/healthz", "/readyz"):
            try:
                answers.append(self._http.get(path))
            except httpx.HTTPError:
                answers.append(None)
        return Health.model_validate(_core.health_from(answers[0], answers[1]))
