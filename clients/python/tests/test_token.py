"""Offline token verification with a key generated in the test: the good token, each
tampering, expiry, not-before, the wrong key, and scope."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from conftest import mint, pub_pem
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import lexecon


def flip(s: str, i: int) -> str:
    """``s`` with the base64url character at ``i`` changed to another one."""
    c = s[i]
    return s[:i] + ("B" if c == "A" else "A") + s[i + 1 :]


def test_a_good_token_verifies_and_gives_its_claims(node_key: Ed25519PrivateKey) -> None:
    token = mint(node_key)
    claims = lexecon.verify_token_offline(token, public_key=pub_pem(node_key))
    assert claims.actor == "ai_agent:customer_service"
    assert claims.action == "read:customer_data" and claims.tool == "database_query"
    assert claims.key_id == lexecon.key_id_of(node_key.public_key())
    assert claims.token_id.startswith("tok_") and len(claims.token_id) == 30
    assert claims.decision_id.startswith("dec_") and len(claims.decision_id) == 30
    assert claims.policy_hash == "07" * 32
    assert claims.audience is None
    assert claims.expires_at - claims.not_before == timedelta(seconds=300)


def test_ulids_are_encoded_like_the_rust_crate(node_key: Ed25519PrivateKey) -> None:
    # bytes 01..10 as a 128-bit ULID, Crockford base32 (checked with the ulid crate).
    claims = lexecon.verify_token_offline(mint(node_key), public_key=pub_pem(node_key))
    value = int.from_bytes(bytes(range(1, 17)), "big")
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    expected = "".join(alphabet[(value >> (5 * (25 - i))) & 31] for i in range(26))
    assert claims.token_id == "tok_" + expected
    assert expected[0] in "01234567"


def test_the_key_may_be_bytes_raw_or_a_list(node_key: Ed25519PrivateKey) -> None:
    token = mint(node_key)
    other = Ed25519PrivateKey.generate()
    lexecon.verify_token_offline(token, public_key=pub_pem(node_key).encode())
    lexecon.verify_token_offline(token, public_key=[pub_pem(other), pub_pem(node_key)])
    lexecon.verify_token_offline(token, public_key=node_key.public_key())


def test_a_flipped_payload_character_fails(node_key: Ed25519PrivateKey) -> None:
    token = mint(node_key)
    payload_end = token.rindex(".")
    # Flip a character inside the actor name: the payload still decodes, the signature fails.
    i = payload_end - 200
    tampered = flip(token, i)
    assert tampered != token
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(tampered, public_key=pub_pem(node_key))
    assert info.value.kind in ("signature", "malformed")
    assert isinstance(info.value, lexecon.LexeconError)


def test_every_single_payload_flip_fails(node_key: Ed25519PrivateKey) -> None:
    token = mint(node_key)
    start, end = len("lxc1."), token.rindex(".")
    for i in range(start, end):
        with pytest.raises(lexecon.TokenInvalid):
            lexecon.verify_token_offline(flip(token, i), public_key=pub_pem(node_key))


def test_a_flipped_signature_character_fails_as_signature(node_key: Ed25519PrivateKey) -> None:
    token = mint(node_key)
    tampered = flip(token, len(token) - 10)
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(tampered, public_key=pub_pem(node_key))
    assert info.value.kind == "signature"
    assert "altered" in info.value.message


def test_another_nodes_key_is_unknown(node_key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(mint(node_key), public_key=pub_pem(other))
    assert info.value.kind == "unknown_key"


def test_a_forged_key_id_does_not_help(node_key: Ed25519PrivateKey) -> None:
    victim = Ed25519PrivateKey.generate()
    forged = mint(node_key, key_id=lexecon.key_id_of(victim.public_key()))
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(forged, public_key=pub_pem(victim))
    assert info.value.kind == "signature"


def test_expiry_and_not_before_with_skew(node_key: Ed25519PrivateKey) -> None:
    pem = pub_pem(node_key)
    expired = mint(node_key, not_before=time.time() - 400, ttl=300)
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(expired, public_key=pem)
    assert info.value.kind == "expired"
    future = mint(node_key, not_before=time.time() + 60)
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(future, public_key=pem)
    assert info.value.kind == "not_yet_valid"
    # Within the 5 s skew both ways.
    lexecon.verify_token_offline(mint(node_key, not_before=time.time() + 3), public_key=pem)
    token = mint(node_key, not_before=1_000_000, ttl=10)
    at = datetime.fromtimestamp(1_000_000 + 10 + 4, tz=timezone.utc)
    lexecon.verify_token_offline(token, public_key=pem, now=at)
    with pytest.raises(lexecon.TokenInvalid):
        lexecon.verify_token_offline(token, public_key=pem, now=at + timedelta(seconds=1))


def test_scope_checks(node_key: Ed25519PrivateKey) -> None:
    pem = pub_pem(node_key)
    token = mint(node_key, tool=None, audience="billing")
    claims = lexecon.verify_token_offline(
        token, public_key=pem, actor="ai_agent:customer_service", action="read:customer_data", audience="billing"
    )
    assert claims.tool is None and claims.audience == "billing"
    for kw in ({"actor": "ai_agent:other"}, {"action": "delete:x"}, {"tool": "database_query"}, {"audience": "other"}):
        with pytest.raises(lexecon.TokenInvalid) as info:
            lexecon.verify_token_offline(token, public_key=pem, **kw)
        assert info.value.kind == "scope"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "lxc2.abc.def",
        "lxc1.",
        "lxc1.abc",
        "lxc1.a.b.c",
        "lxc1.abc." + "A" * 85,
        "lxc1." + "A" * 3000,
        "lxc1.a=b." + "A" * 86,
    ],
)
def test_malformed_tokens(node_key: Ed25519PrivateKey, bad: str) -> None:
    with pytest.raises(lexecon.TokenInvalid) as info:
        lexecon.verify_token_offline(bad, public_key=pub_pem(node_key))
    assert info.value.kind == "malformed"


def test_a_bad_public_key_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="node.ed25519.pub"):
        lexecon.verify_token_offline("lxc1.a.b", public_key="not a key")
