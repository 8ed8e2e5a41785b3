"""Python client of Lexecon, the governance server for AI agents.

::

    import lexecon

    with lexecon.Client("http://127.0.0.1:50051", token="lxk_...") as client:
        d = client.decide(actor="ai_agent:customer_service", proposed_action="read:customer_data",
                          tool="database_query", data_classes=["pii"])
        if d.outcome == "approved":
            claims = lexecon.verify_token_offline(d.capability_token, public_key=open("node.ed25519.pub").read())

Every error this package raises derives from :class:`LexeconError`.
"""

from ._core import RetryPolicy, llm_usage, new_request_id
from .aio import AsyncClient
from .client import Client
from .errors import (
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LexeconError,
    NotApproved,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    TokenInvalid,
    Unauthenticated,
    Unavailable,
)
from .llm import AsyncLlmCall, LlmCall
from .models import (
    Approver,
    Decision,
    Escalation,
    EscalationPage,
    Health,
    LedgerVerification,
    Release,
    Resolution,
    RiskDimension,
    RiskDimensions,
    RiskFactor,
    Settlement,
    TokenClaims,
    TokenRevocation,
    TokenVerification,
    Usage,
)
from .token import key_id_of, verify_token_offline

__version__ = "0.1.0"

__all__ = [
    "Client",
    "AsyncClient",
    "verify_token_offline",
    "key_id_of",
    "llm_usage",
    "new_request_id",
    "RetryPolicy",
    "LlmCall",
    "AsyncLlmCall",
    # errors
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
    # models
    "Decision",
    "TokenVerification",
    "TokenRevocation",
    "TokenClaims",
    "Settlement",
    "Release",
    "Usage",
    "Escalation",
    "EscalationPage",
    "Approver",
    "Resolution",
    "LedgerVerification",
    "Health",
    "RiskFactor",
    "RiskDimension",
    "RiskDimensions",
]
