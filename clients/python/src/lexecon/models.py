"""Response models.

Every model is a pydantic v2 model that keeps fields it does not declare
(``extra="allow"``), so a newer server's additions stay readable as attributes. Field
names are the proto's snake_case names. The proto3 JSON mapping writes 64-bit integers as
strings: declared integer fields are converted to ``int``. Enum values are the server's
short lowercase names (``"approved"``, ``"medium"``, ``"pending"``); timestamps become
``datetime``; ``bytes`` fields (base64 in JSON) become ``bytes``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Dict, List, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict

__all__ = [
    "LexeconModel",
    "RiskFactor",
    "RiskDimension",
    "RiskDimensions",
    "Decision",
    "TokenVerification",
    "TokenRevocation",
    "TokenClaims",
    "Settlement",
    "Release",
    "Usage",
    "Approver",
    "Resolution",
    "Escalation",
    "EscalationPage",
    "LedgerVerification",
    "Health",
]


def _b64(value: Any) -> Any:
    if isinstance(value, str):
        padded = value + "=" * (-len(value) % 4)
        try:
            if "-" in value or "_" in value:
                return base64.urlsafe_b64decode(padded)
            return base64.b64decode(padded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"expected base64 bytes, got {value[:40]!r}") from exc
    return value


B64Bytes = Annotated[bytes, BeforeValidator(_b64)]


class LexeconModel(BaseModel):
    """Base of every response model: unknown fields are kept, values are not revalidated."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class RiskFactor(LexeconModel):
    """One contribution to a risk dimension's score."""

    rule_id: str = ""
    points: int = 0
    description: str = ""


class RiskDimension(LexeconModel):
    """The score of one risk dimension (0..100) with the factors behind it."""

    score: int = 0
    factors: List[RiskFactor] = []


class RiskDimensions(LexeconModel):
    """The six risk dimensions."""

    security: Optional[RiskDimension] = None
    privacy: Optional[RiskDimension] = None
    compliance: Optional[RiskDimension] = None
    operational: Optional[RiskDimension] = None
    reputational: Optional[RiskDimension] = None
    financial: Optional[RiskDimension] = None


class Decision(LexeconModel):
    """A decision (``DecideResponse``).

    ``outcome`` is ``"approved"``, ``"denied"`` or ``"escalated"``; only an approved
    decision carries a ``capability_token``. An escalated one names its
    ``escalation_id``; an approved LLM call names its budget ``reservation_id``.
    """

    decision_id: str = ""
    request_id: str = ""
    outcome: str = "unspecified"
    reasoning: str = ""
    reasons: List[str] = []
    risk_level: str = "unspecified"
    risk_score: int = 0
    risk_dimensions: Optional[RiskDimensions] = None
    capability_token: str = ""
    token_expires_at: Optional[datetime] = None
    ledger_index: int = 0
    ledger_leaf_hash: B64Bytes = b""
    policy_version_hash: B64Bytes = b""
    decided_at: Optional[datetime] = None
    effective_mode: str = "unspecified"
    reservation_id: str = ""
    warnings: List[str] = []
    actor: str = ""
    escalation_id: str = ""
    override_id: str = ""
    escalation_state: str = "unspecified"

    @property
    def approved(self) -> bool:
        """True when the action may go ahead."""
        return self.outcome == "approved"

    @property
    def denied(self) -> bool:
        """True when the action may not go ahead."""
        return self.outcome == "denied"

    @property
    def escalated(self) -> bool:
        """True when a person must decide first (see ``escalation_id``)."""
        return self.outcome == "escalated"


class TokenVerification(LexeconModel):
    """The server's verdict on a capability token (``VerifyTokenResponse``)."""

    valid: bool = False
    error_kind: str = ""
    error: str = ""
    token_id: str = ""
    decision_id: str = ""
    actor: str = ""
    action: str = ""
    tool: str = ""
    expires_at: Optional[datetime] = None
    key_id: str = ""


class TokenRevocation(LexeconModel):
    """A revocation as recorded (``RevokeTokenResponse``)."""

    ledger_index: int = 0
    newly_revoked: bool = False


class TokenClaims(LexeconModel):
    """The claims of a capability token that verified offline."""

    token_id: str
    key_id: str
    decision_id: str
    actor: str
    action: str
    tool: Optional[str] = None
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    policy_hash: str
    audience: Optional[str] = None


class Settlement(LexeconModel):
    """A settled reservation (``SettleResponse``); amounts in micro-dollars."""

    charged_micros: int = 0
    released_micros: int = 0
    newly_settled: bool = False


class Release(LexeconModel):
    """A released reservation (``ReleaseResponse``)."""

    released: bool = False


class Usage(LexeconModel):
    """Spend and window counts of one budget scope (``GetUsageResponse``)."""

    scope: str = ""
    period: str = ""
    spent_micros: int = 0
    reserved_micros: int = 0
    requests_last_minute: int = 0
    tokens_last_minute: int = 0


class Approver(LexeconModel):
    """One approval or denial of an escalation."""

    principal: str = ""
    principal_kind: str = ""
    key_creator: str = ""
    mfa_verified: bool = False
    at: Optional[datetime] = None
    reason: str = ""
    ledger_index: int = 0
    approve: bool = False


class Resolution(LexeconModel):
    """How an escalation ended."""

    state: str = "unspecified"
    by: str = ""
    reason: str = ""
    at: Optional[datetime] = None
    ledger_index: int = 0


class Escalation(LexeconModel):
    """An escalated decision waiting for, or resolved by, people.

    ``state`` is ``"pending"``, ``"approved"``, ``"denied"``, ``"expired"`` or
    ``"cancelled"``. Once approved, the asking principal sees its ``capability_token``.
    """

    escalation_id: str = ""
    decision_id: str = ""
    priority: str = "unspecified"
    state: str = "unspecified"
    created_at: Optional[datetime] = None
    due_at: Optional[datetime] = None
    warn_at: Optional[datetime] = None
    actor: str = ""
    proposed_action: str = ""
    tool: str = ""
    asking_principal: str = ""
    approvals: List[Approver] = []
    resolution: Optional[Resolution] = None
    override_id: str = ""
    capability_token: str = ""
    token_id: str = ""
    token_expires_at: Optional[datetime] = None
    reservation_id: str = ""
    grant_expires_at: Optional[datetime] = None
    approvals_required: int = 0
    grant_decision_id: str = ""

    @property
    def pending(self) -> bool:
        """True while people may still resolve it."""
        return self.state == "pending"


class EscalationPage(LexeconModel):
    """A page of escalations, newest first (``ListEscalationsResponse``)."""

    escalations: List[Escalation] = []
    next_page_token: str = ""


class LedgerVerification(LexeconModel):
    """The server's verification of the whole ledger (``LedgerService/Verify``)."""

    valid: bool = False
    entries: int = 0
    checkpoints: int = 0
    first_bad_index: int = 0
    error: str = ""
    trusted_key_ring: bool = False
    ledger_index: int = 0


class Health(LexeconModel):
    """Liveness (``/healthz``) and readiness (``/readyz``) of a server."""

    live: bool = False
    ready: bool = False
    detail: Dict[str, Any] = {}
