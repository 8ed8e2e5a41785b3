"""The LLM-call guard (the seed-000 use case): authorize an LLM call with its estimated
tokens, make it, settle the budget with the real usage, release the reservation when the
call fails.

Use it through :meth:`lexecon.Client.llm_call` / :meth:`lexecon.Client.guard_llm` (and
their async twins on :class:`lexecon.AsyncClient`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from .errors import FailedPrecondition, LexeconError
from .models import Decision, Release, Settlement

if TYPE_CHECKING:  # pragma: no cover
    from .aio import AsyncClient
    from .client import Client

__all__ = ["LlmCall", "AsyncLlmCall"]

log = logging.getLogger("lexecon")


class _LlmCallState:
    def __init__(self, decision: Decision, estimated_input_tokens: int, max_output_tokens: int) -> None:
        #: The approved decision (its ``capability_token`` lets the call through).
        self.decision = decision
        self.estimated_input_tokens = int(estimated_input_tokens)
        self.max_output_tokens = int(max_output_tokens)
        #: The settlement once :meth:`settle` ran.
        self.settlement: Optional[Settlement] = None
        #: True once the reservation was released.
        self.released = False

    @property
    def reservation_id(self) -> str:
        """The budget reservation this call holds."""
        return self.decision.reservation_id

    @property
    def capability_token(self) -> str:
        """The capability token of the approved decision."""
        return self.decision.capability_token

    @property
    def done(self) -> bool:
        """True once the reservation was settled or released."""
        return self.settlement is not None or self.released

    def _check(self, input_tokens: int, output_tokens: int) -> None:
        if not self.reservation_id:
            raise FailedPrecondition(
                f"decision {self.decision.decision_id} carries no budget reservation to settle; "
                "send the call's llm usage (model, estimated_input_tokens, max_output_tokens) with the decision",
                code="failed_precondition",
            )
        if self.released:
            raise FailedPrecondition(
                f"reservation {self.reservation_id} was released already; it can no longer be settled",
                code="failed_precondition",
            )
        if input_tokens < 0 or output_tokens < 0:
            raise ValueError(
                f"token counts must be 0 or more; got input_tokens={input_tokens}, output_tokens={output_tokens}"
            )


class LlmCall(_LlmCallState):
    """An authorized LLM call; settle it with the real usage once the model answered."""

    def __init__(
        self, client: "Client", decision: Decision, estimated_input_tokens: int, max_output_tokens: int
    ) -> None:
        super().__init__(decision, estimated_input_tokens, max_output_tokens)
        self._client = client

    def settle(self, input_tokens: int, output_tokens: int) -> Settlement:
        """Charges the actual usage and gives back the rest of the reservation. Settling
        again returns the first settlement (the server keeps it)."""
        self._check(input_tokens, output_tokens)
        self.settlement = self._client.settle(
            self.reservation_id, input_tokens=input_tokens, output_tokens=output_tokens
        )
        return self.settlement

    def release(self) -> Release:
        """Cancels the reservation (nothing is charged)."""
        result = self._client.release(self.reservation_id)
        self.released = True
        return result

    def _finish(self, failed: bool) -> None:
        if not self.reservation_id or self.done:
            return
        if failed:
            try:
                self.release()
            except LexeconError as exc:
                # The caller's own exception is what matters; the reservation expires.
                log.warning("could not release reservation %s after a failed LLM call: %s", self.reservation_id, exc)
        else:
            # Ended without settle(): charge the reserved worst case, never less.
            self.settle(self.estimated_input_tokens, self.max_output_tokens)


class AsyncLlmCall(_LlmCallState):
    """The async twin of :class:`LlmCall`."""

    def __init__(
        self, client: "AsyncClient", decision: Decision, estimated_input_tokens: int, max_output_tokens: int
    ) -> None:
        super().__init__(decision, estimated_input_tokens, max_output_tokens)
        self._client = client

    async def settle(self, input_tokens: int, output_tokens: int) -> Settlement:
        """Charges the actual usage and gives back the rest of the reservation."""
        self._check(input_tokens, output_tokens)
        self.settlement = await self._client.settle(
            self.reservation_id, input_tokens=input_tokens, output_tokens=output_tokens
        )
        return self.settlement

    async def release(self) -> Release:
        """Cancels the reservation (nothing is charged)."""
        result = await self._client.release(self.reservation_id)
        self.released = True
        return result

    async def _finish(self, failed: bool) -> None:
        if not self.reservation_id or self.done:
            return
        if failed:
            try:
                await self.release()
            except LexeconError as exc:
                log.warning("could not release reservation %s after a failed LLM call: %s", self.reservation_id, exc)
        else:
            await self.settle(self.estimated_input_tokens, self.max_output_tokens)
