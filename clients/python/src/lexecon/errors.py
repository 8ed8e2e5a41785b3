"""Exceptions raised by the Lexecon client.

Every exception this package raises derives from :class:`LexeconError`. Server errors
carry the JSON error body's ``code`` (the gRPC status name in lowercase, for example
``"invalid_argument"``), its ``message``, and the HTTP ``status``; errors raised without
a server answer (a connection that failed, a token checked offline) have ``status`` None.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "LexeconError",
    "InvalidArgument",
    "PayloadTooLarge",
    "Unauthenticated",
    "PermissionDenied",
    "NotFound",
    "Conflict",
    "AlreadyExists",
    "FailedPrecondition",
    "RateLimited",
    "Unavailable",
    "DeadlineExceeded",
    "ServerError",
    "TokenInvalid",
    "NotApproved",
    "error_from_response",
]


class LexeconError(Exception):
    """Base class of every error raised by this package.

    Attributes:
        code: a stable lowercase code, e.g. ``"permission_denied"``.
        message: the human message (from the server when it sent one).
        status: the HTTP status of the answer, or None when there was no answer.
        body: the decoded JSON error body, when the server sent one.
    """

    default_code = "unknown"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        body: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.body: Dict[str, Any] = dict(body) if body else {}

    def __str__(self) -> str:
        where = f"HTTP {self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, message={self.message!r})"


class InvalidArgument(LexeconError):
    """The request was refused as invalid (HTTP 400); ``field`` names the offending field
    path (for example ``"llm.user_id"``) when the server knows it."""

    default_code = "invalid_argument"

    def __init__(self, message: str, *, field: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field = field

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base} (field {self.field})" if self.field else base


class PayloadTooLarge(InvalidArgument):
    """The request body exceeded the server's limit (HTTP 413); nothing was written."""

    default_code = "payload_too_large"


class Unauthenticated(LexeconError):
    """No token, or a token the server does not accept (HTTP 401)."""

    default_code = "unauthenticated"


class PermissionDenied(LexeconError):
    """The token's role or actor binding does not allow this call (HTTP 403)."""

    default_code = "permission_denied"


class NotFound(LexeconError):
    """The named object does not exist (HTTP 404)."""

    default_code = "not_found"


class Conflict(LexeconError):
    """The call conflicts with the current state (HTTP 409: ``aborted`` or ``already_exists``)."""

    default_code = "aborted"


class AlreadyExists(Conflict):
    """The object to create exists already (HTTP 409)."""

    default_code = "already_exists"


class FailedPrecondition(LexeconError):
    """The system is not in a state that allows the call (HTTP 412)."""

    default_code = "failed_precondition"


class RateLimited(LexeconError):
    """Too many requests (HTTP 429); ``retry_after`` is the server's hint in seconds."""

    default_code = "resource_exhausted"

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Unavailable(LexeconError):
    """The server is unavailable or could not be reached (HTTP 503, or no answer);
    ``retry_after`` is the server's hint in seconds when it sent one."""

    default_code = "unavailable"

    def __init__(self, message: str, *, retry_after: Optional[float] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class DeadlineExceeded(LexeconError):
    """The call did not finish in time (HTTP 504, or the client's own timeout)."""

    default_code = "deadline_exceeded"


class ServerError(LexeconError):
    """Any other failure the server reported (HTTP 500 and unknown statuses)."""

    default_code = "internal"


class TokenInvalid(LexeconError):
    """A capability token failed offline verification.

    ``kind`` names the failed check with the server's words: ``"malformed"``,
    ``"unknown_key"``, ``"signature"``, ``"expired"``, ``"not_yet_valid"`` or ``"scope"``.
    """

    default_code = "token_invalid"

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class NotApproved(LexeconError):
    """A helper that needs an approved decision got a denied or escalated one.

    ``decision`` is the full :class:`lexecon.Decision`; for an escalation,
    ``decision.escalation_id`` names it (see :meth:`lexecon.Client.wait_for_escalation`).
    ``code`` is the outcome (``"denied"`` or ``"escalated"``).
    """

    def __init__(self, decision: Any) -> None:
        outcome = str(getattr(decision, "outcome", "unknown"))
        reasoning = str(getattr(decision, "reasoning", ""))
        super().__init__(f"the decision was {outcome}: {reasoning}", code=outcome)
        self.decision = decision


_BY_CODE: Dict[str, Type[LexeconError]] = {
    "invalid_argument": InvalidArgument,
    "out_of_range": InvalidArgument,
    "payload_too_large": PayloadTooLarge,
    "unauthenticated": Unauthenticated,
    "permission_denied": PermissionDenied,
    "not_found": NotFound,
    "already_exists": AlreadyExists,
    "aborted": Conflict,
    "failed_precondition": FailedPrecondition,
    "resource_exhausted": RateLimited,
    "unavailable": Unavailable,
    "deadline_exceeded": DeadlineExceeded,
}

_BY_STATUS: Dict[int, Type[LexeconError]] = {
    400: InvalidArgument,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    412: FailedPrecondition,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
    504: DeadlineExceeded,
}


def error_from_response(
    status: int,
    body: Any,
    *,
    retry_after: Optional[float] = None,
    text: str = "",
) -> LexeconError:
    """The exception for an HTTP error answer.

    ``body`` is the decoded JSON body (``{"error": {"code", "message", "field"}}``) or
    None when the answer was not JSON; the class is chosen by the HTTP status first (it
    is what the contract maps), then by the code for statuses outside the mapping.
    """
    err: Mapping[str, Any] = {}
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        err = body["error"]
    code = err.get("code") if isinstance(err.get("code"), str) else None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    if not message:
        snippet = text.strip()[:500]
        message = snippet or f"the server answered HTTP {status} without an error message"
    field = err.get("field") if isinstance(err.get("field"), str) and err.get("field") else None

    cls = _BY_STATUS.get(status)
    if cls is Conflict and code == "already_exists":
        cls = AlreadyExists
    if cls is None:
        cls = _BY_CODE.get(code or "", ServerError)
    kw: Dict[str, Any] = {"code": code, "status": status, "body": body if isinstance(body, Mapping) else None}
    if issubclass(cls, InvalidArgument):
        return cls(message, field=field, **kw)
    if cls in (RateLimited, Unavailable):
        return cls(message, retry_after=retry_after, **kw)
    return cls(message, **kw)
