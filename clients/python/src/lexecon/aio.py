"""The asynchronous client: the same methods as :class:`lexecon.Client`, awaited."""

from __future__ import annotations

import contextlib
import functools
import time
from types import TracebackType
from typing import (
    Any,
    List,
    Union,
    AsyncIterator,
    Awaitable,
    Callable,
    Dict,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
)

import anyio
import httpx

from . import _core
from ._core import CertTypes, Op, RetryPolicy, VerifyTypes
from .errors import DeadlineExceeded, NotApproved
from .llm import AsyncLlmCall
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

__all__ = ["AsyncClient"]

T = TypeVar("T")
R = TypeVar("R")


class AsyncClient:
    """The asynchronous twin of :class:`lexecon.Client`: same arguments, same methods,
    each a coroutine. Use it as ``async with AsyncClient(...) as client:``, or await
    :meth:`aclose`."""

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
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        self._settings = _core.settings(base_url, token, timeout, retries, verify, cert, headers)
        self._http = httpx.AsyncClient(
            base_url=self._settings.base_url,
            headers=self._settings.headers,
            timeout=timeout,
            verify=self._settings.verify,
            transport=transport,
        )
        self._sleep: Callable[[float], Awaitable[None]] = anyio.sleep

    # -- lifecycle ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        await self.aclose()

    @property
    def base_url(self) -> str:
        """The server's address."""
        return self._settings.base_url

    # -- sending -----------------------------------------------------------------------

    async def _run(self, op: Op[T]) -> T:
        attempt = 0
        while True:
            try:
                response = await self._http.request(op.method, op.path, json=op.body, params=op.params)
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
            await self._sleep(delay)
            attempt += 1

    async def call(self, service: str, rpc: str, body: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Calls any RPC; see :meth:`lexecon.Client.call`."""
        return await self._run(_core.op_call(service, rpc, body))

    async def call_stream(
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
        return await self._run(_core.op_call_stream(service, rpc, body, max_events, wait_ms))

    # -- decisions ---------------------------------------------------------------------

    async def decide(
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
        """Asks for a decision; see :meth:`lexecon.Client.decide`."""
        return await self._run(
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

    async def verify_token(
        self,
        token: str,
        *,
        actor: Optional[str] = None,
        action: Optional[str] = None,
        tool: Optional[str] = None,
        audience: Optional[str] = None,
    ) -> TokenVerification:
        """Has the server check a capability token; see :meth:`lexecon.Client.verify_token`."""
        return await self._run(_core.op_verify_token(token, actor=actor, action=action, tool=tool, audience=audience))

    async def revoke_token(self, token_id: str, *, reason: str) -> TokenRevocation:
        """Revokes a token by its id."""
        return await self._run(_core.op_revoke_token(token_id, reason))

    # -- budgets -----------------------------------------------------------------------

    async def settle(self, reservation_id: str, *, input_tokens: int, output_tokens: int) -> Settlement:
        """Charges the actual usage of a reservation and releases the rest (idempotent)."""
        return await self._run(_core.op_settle(reservation_id, input_tokens, output_tokens))

    async def release(self, reservation_id: str) -> Release:
        """Cancels a reservation."""
        return await self._run(_core.op_release(reservation_id))

    async def get_usage(self, scope: Optional[str] = None) -> Usage:
        """Spend of a budget scope."""
        return await self._run(_core.op_get_usage(scope))

    @contextlib.asynccontextmanager
    async def llm_call(
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
    ) -> AsyncIterator[AsyncLlmCall]:
        """Guards one LLM call (``async with client.llm_call(...) as call: ...; await
        call.settle(...)``); see :meth:`lexecon.Client.llm_call`."""
        decision = await self.decide(
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
        call = AsyncLlmCall(self, decision, estimated_input_tokens, max_output_tokens)
        try:
            yield call
        except BaseException:
            with anyio.CancelScope(shield=True):
                await call._finish(failed=True)
            raise
        await call._finish(failed=False)

    def guard_llm(
        self,
        fn: Callable[..., Awaitable[R]],
        *,
        usage: Callable[[R], Tuple[int, int]],
        model: str,
        estimated_input_tokens: int,
        max_output_tokens: int,
        **decide: Any,
    ) -> Callable[..., Awaitable[R]]:
        """Wraps the coroutine function ``fn``; see :meth:`lexecon.Client.guard_llm`."""

        @functools.wraps(fn)
        async def guarded(*args: Any, **kwargs: Any) -> R:
            async with self.llm_call(
                model=model,
                estimated_input_tokens=estimated_input_tokens,
                max_output_tokens=max_output_tokens,
                **decide,
            ) as call:
                result = await fn(*args, **kwargs)
                input_tokens, output_tokens = usage(result)
                await call.settle(input_tokens=input_tokens, output_tokens=output_tokens)
                return result

        return guarded

    # -- oversight ---------------------------------------------------------------------

    async def get_escalation(self, escalation_id: str) -> Escalation:
        """One escalation; see :meth:`lexecon.Client.get_escalation`."""
        return await self._run(_core.op_get_escalation(escalation_id))

    async def list_escalations(
        self, *, state: Optional[str] = None, page_size: Optional[int] = None, page_token: Optional[str] = None
    ) -> EscalationPage:
        """Escalations, newest first."""
        return await self._run(_core.op_list_escalations(state, page_size, page_token))

    async def resolve_escalation(self, escalation_id: str, *, approve: bool, reason: str) -> Escalation:
        """Approves or denies a pending escalation."""
        return await self._run(_core.op_resolve_escalation(escalation_id, approve, reason))

    async def wait_for_escalation(
        self, escalation_id: str, *, timeout: float = 600.0, poll_interval: float = 2.0
    ) -> Escalation:
        """Polls until the escalation is no longer pending; see
        :meth:`lexecon.Client.wait_for_escalation`."""
        deadline = time.monotonic() + timeout
        while True:
            escalation = await self.get_escalation(escalation_id)
            if not escalation.pending:
                return escalation
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded(
                    f"escalation {escalation_id} is still pending after {timeout:g}s; wait longer or ask a compliance officer to resolve it",
                    code="deadline_exceeded",
                )
            await self._sleep(min(poll_interval, remaining))

    # -- ledger and health ---------------------------------------------------------------

    async def verify_ledger(self) -> LedgerVerification:
        """Has the server verify the whole ledger."""
        return await self._run(_core.op_verify_ledger())

    async def health(self) -> Health:
        """Liveness and readiness; see :meth:`lexecon.Client.health`."""
        answers: List[Optional[httpx.Response]] = []
        for path in ("/healthz", "/readyz"):
            try:
                answers.append(await self._http.get(path))
            except httpx.HTTPError:
                answers.append(None)
        return Health.model_validate(_core.health_from(answers[0], answers[1]))
