"""Offline verification of capability tokens.

A token is ``lxc1.`` + base64url(payload) + ``.`` + base64url(signature), unpadded. The
payload is Lexecon's canonical encoding: the domain tag
``lexecon/capability-token/v1`` and then token id (16-byte ULID), key id, decision id
(16-byte ULID), actor, action, optional tool, issued-at, not-before and expires-at (unix
microseconds, signed 64-bit big-endian), the 32-byte policy hash, and an optional
audience. Byte strings and strings are a 32-bit big-endian length and the bytes; an
optional string is ``0x00``, or ``0x01`` and the string. The signature is Ed25519 over
the payload, by the node key whose key id (the first 8 bytes of SHA-256 over the 32-byte
public key, in hex) the payload names.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

from .errors import TokenInvalid
from .models import TokenClaims

__all__ = ["verify_token_offline", "key_id_of", "PublicKeyLike"]

TOKEN_PREFIX = "lxc1."
PAYLOAD_DOMAIN = b"lexecon/capability-token/v1"
MAX_TOKEN_LEN = 2048
_SIGNATURE_B64_LEN = 86
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

#: What ``public_key=`` takes: the text (or bytes) of a ``.pub`` file (SPKI PEM, as
#: ``lexecon init`` writes ``keys/node.ed25519.pub``), 32 raw key bytes, an
#: ``Ed25519PublicKey``, or a list of those (current and retired keys).
PublicKeyLike = Union[str, bytes, Ed25519PublicKey]


def key_id_of(key: Ed25519PublicKey) -> str:
    """The key id Lexecon gives a public key: the first 8 bytes of SHA-256 over its 32
    raw bytes, as 16 lowercase hex digits."""
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _load_key(key: PublicKeyLike) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes) and len(key) == 32:
        return Ed25519PublicKey.from_public_bytes(key)
    data = key.encode() if isinstance(key, str) else key
    if not isinstance(data, bytes) or b"-----BEGIN PUBLIC KEY-----" not in data:
        raise ValueError(
            "public_key must be the contents of the node's .pub file (an SPKI PEM starting "
            "'-----BEGIN PUBLIC KEY-----', e.g. open('data/keys/node.ed25519.pub').read()), "
            "32 raw Ed25519 key bytes, or an Ed25519PublicKey"
        )
    try:
        loaded = load_pem_public_key(data)
    except ValueError as exc:
        raise ValueError(f"public_key is not a readable PEM public key: {exc}") from exc
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError(
            f"public_key is a {type(loaded).__name__}, not an Ed25519 key; pass the Lexecon node's .pub file"
        )
    return loaded


def _keys(public_key: Union[PublicKeyLike, Iterable[PublicKeyLike]]) -> List[Ed25519PublicKey]:
    if isinstance(public_key, (str, bytes, Ed25519PublicKey)):
        return [_load_key(public_key)]
    keys = [_load_key(k) for k in public_key]
    if not keys:
        raise ValueError("public_key is an empty list; pass at least the node's current .pub file")
    return keys


def _b64url(part: str, what: str) -> bytes:
    if not part or any(c in part for c in "=+/ \n"):
        raise TokenInvalid(
            f"token is malformed: the {what} is not unpadded base64url; pass the whole lxc1. string exactly as issued",
            kind="malformed",
        )
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenInvalid(f"token is malformed: the {what} is not unpadded base64url", kind="malformed") from exc
    # Canonical only: re-encoding must give the same text (no stray trailing bits).
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != part:
        raise TokenInvalid(f"token is malformed: the {what} is not canonical base64url", kind="malformed")
    return raw


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise TokenInvalid(
                f"token is malformed: the payload is truncated at byte {self.pos} ({what})", kind="malformed"
            )
        out = self.buf[self.pos : end]
        self.pos = end
        return out

    def bytes_(self, what: str) -> bytes:
        (n,) = struct.unpack(">I", self.take(4, what))
        return self.take(n, what)

    def str_(self, what: str) -> str:
        try:
            return self.bytes_(what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TokenInvalid(f"token is malformed: the {what} is not UTF-8", kind="malformed") from exc

    def opt_str(self, what: str) -> Optional[str]:
        tag = self.take(1, what)[0]
        if tag == 0:
            return None
        if tag == 1:
            return self.str_(what)
        raise TokenInvalid(f"token is malformed: bad option tag {tag} for the {what}", kind="malformed")

    def i64(self, what: str) -> int:
        (v,) = struct.unpack(">q", self.take(8, what))
        return int(v)


def _ulid(raw: bytes, prefix: str, what: str) -> str:
    if len(raw) != 16:
        raise TokenInvalid(f"token is malformed: the {what} is not 16 bytes", kind="malformed")
    v = int.from_bytes(raw, "big")
    return prefix + "".join(_CROCKFORD[(v >> (125 - 5 * i)) & 31] for i in range(26))


def _time(micros: int, what: str) -> datetime:
    try:
        return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise TokenInvalid(f"token is malformed: the {what} time is out of range", kind="malformed") from exc


def _decode(token: str) -> Tuple[Dict[str, Any], bytes, bytes]:
    if not isinstance(token, str):
        raise TokenInvalid(f"token must be a string, not {type(token).__name__}", kind="malformed")
    if len(token) > MAX_TOKEN_LEN:
        raise TokenInvalid(
            f"token is malformed: it is {len(token)} characters long; at most {MAX_TOKEN_LEN} are accepted",
            kind="malformed",
        )
    if not token.startswith(TOKEN_PREFIX):
        raise TokenInvalid(
            f"token is malformed: it does not start with {TOKEN_PREFIX!r}; pass the capability_token exactly as issued",
            kind="malformed",
        )
    parts = token[len(TOKEN_PREFIX) :].split(".")
    if len(parts) != 2:
        raise TokenInvalid("token is malformed: expected lxc1.<payload>.<signature>", kind="malformed")
    payload_b64, sig_b64 = parts
    if len(sig_b64) != _SIGNATURE_B64_LEN:
        raise TokenInvalid("token is malformed: the signature is not 64 bytes", kind="malformed")
    payload = _b64url(payload_b64, "payload")
    signature = _b64url(sig_b64, "signature")

    r = _Reader(payload)
    if r.bytes_("domain tag") != PAYLOAD_DOMAIN:
        raise TokenInvalid("token is malformed: the payload is not a version 1 capability token", kind="malformed")
    token_id = _ulid(r.bytes_("token id"), "tok_", "token id")
    key_id = r.str_("key id")
    if len(key_id) != 16 or any(c not in "0123456789abcdef" for c in key_id):
        raise TokenInvalid("token is malformed: the key id is not 16 lowercase hex digits", kind="malformed")
    decision_id = _ulid(r.bytes_("decision id"), "dec_", "decision id")
    actor = r.str_("actor")
    action = r.str_("action")
    tool = r.opt_str("tool")
    issued_at, not_before, expires_at = r.i64("issued at"), r.i64("not before"), r.i64("expires at")
    policy_hash = r.bytes_("policy hash")
    if len(policy_hash) != 32:
        raise TokenInvalid("token is malformed: the policy hash is not 32 bytes", kind="malformed")
    audience = r.opt_str("audience")
    if r.pos != len(payload):
        raise TokenInvalid(f"token is malformed: {len(payload) - r.pos} bytes follow the payload", kind="malformed")
    if expires_at <= not_before or issued_at > not_before:
        raise TokenInvalid("token is malformed: its validity window is empty or reversed", kind="malformed")
    fields: Dict[str, Any] = {
        "token_id": token_id,
        "key_id": key_id,
        "decision_id": decision_id,
        "actor": actor,
        "action": action,
        "tool": tool,
        "issued_at": issued_at,
        "not_before": not_before,
        "expires_at": expires_at,
        "policy_hash": policy_hash.hex(),
        "audience": audience,
    }
    return fields, payload, signature


def verify_token_offline(
    token: str,
    public_key: Union[PublicKeyLike, Iterable[PublicKeyLike]],
    *,
    actor: Optional[str] = None,
    action: Optional[str] = None,
    tool: Optional[str] = None,
    audience: Optional[str] = None,
    now: Optional[datetime] = None,
    clock_skew_secs: int = 5,
) -> TokenClaims:
    """Verifies a capability token with the node's public key alone (no server, no
    network) and returns its claims.

    Checks, as the server does: the token decodes strictly; its key id names one of
    ``public_key``; the Ed25519 signature verifies; ``not_before - skew <= now <
    expires_at + skew``; and each of ``actor``, ``action``, ``tool``, ``audience`` that
    is given equals the token's. Raises :class:`lexecon.TokenInvalid` (``kind`` =
    ``"malformed"``, ``"unknown_key"``, ``"signature"``, ``"expired"``,
    ``"not_yet_valid"`` or ``"scope"``) otherwise. Revocation cannot be checked offline:
    ask :meth:`lexecon.Client.verify_token` for that.

    ``public_key`` is the contents of the ``.pub`` file ``lexecon init`` writes
    (``DATA_DIR/keys/node.ed25519.pub``, an SPKI PEM), or a list of such keys (current
    and retired).
    """
    keys = _keys(public_key)
    fields, payload, signature = _decode(token)
    key_id = str(fields["key_id"])
    key = next((k for k in keys if key_id_of(k) == key_id), None)
    if key is None:
        known = ", ".join(key_id_of(k) for k in keys)
        raise TokenInvalid(
            f"token was signed by key {key_id}, which is not among the keys given ({known}); pass the issuing node's current and retired .pub files",
            kind="unknown_key",
        )
    try:
        key.verify(signature, payload)
    except InvalidSignature:
        raise TokenInvalid(
            f"token signature does not verify with key {key_id}; the token was altered or not issued by that key",
            kind="signature",
        ) from None
    not_before, expires_at = int(fields["not_before"]), int(fields["expires_at"])
    claims = TokenClaims.model_validate(
        {**fields, **{k: _time(int(fields[k]), k.replace("_", " ")) for k in ("issued_at", "not_before", "expires_at")}}
    )
    at = now or datetime.now(timezone.utc)
    if at.tzinfo is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(timezone.utc)")
    now_us = int(at.timestamp() * 1_000_000)
    skew_us = int(clock_skew_secs) * 1_000_000
    if now_us < not_before - skew_us:
        raise TokenInvalid(
            f"token is not valid before {claims.not_before.isoformat()} (now {at.isoformat()}, {clock_skew_secs}s clock skew allowed); check this machine's clock",
            kind="not_yet_valid",
        )
    if now_us >= expires_at + skew_us:
        raise TokenInvalid(
            f"token expired at {claims.expires_at.isoformat()} (now {at.isoformat()}, {clock_skew_secs}s clock skew allowed); ask for a new decision",
            kind="expired",
        )
    for name, want, granted in (
        ("actor", actor, claims.actor),
        ("action", action, claims.action),
        ("tool", tool, claims.tool),
        ("audience", audience, claims.audience),
    ):
        if want is not None and want != granted:
            shown = "not set" if granted is None else repr(granted)
            raise TokenInvalid(
                f"token scope does not match: its {name} is {shown}, not {want!r}; use a token issued for this {name}",
                kind="scope",
            )
    return claims
