"""Error mapping: HTTP status and JSON error body to typed exceptions."""

from __future__ import annotations

import httpx
import pytest
from conftest import Recorder, error_response, mock_client

import lexecon
from lexecon.errors import error_from_response

CASES = [
    (400, "invalid_argument", lexecon.InvalidArgument),
    (400, "out_of_range", lexecon.InvalidArgument),
    (401, "unauthenticated", lexecon.Unauthenticated),
    (403, "permission_denied", lexecon.PermissionDenied),
    (404, "not_found", lexecon.NotFound),
    (409, "already_exists", lexecon.AlreadyExists),
    (409, "aborted", lexecon.Conflict),
    (412, "failed_precondition", lexecon.FailedPrecondition),
    (413, "payload_too_large", lexecon.PayloadTooLarge),
    (429, "resource_exhausted", lexecon.RateLimited),
    (503, "unavailable", lexecon.Unavailable),
    (504, "deadline_exceeded", lexecon.DeadlineExceeded),
    (500, "internal", lexecon.ServerError),
    (500, "data_loss", lexecon.ServerError),
]


@pytest.mark.parametrize("status,code,cls", CASES)
def test_each_status_maps_to_its_class_with_code_message_and_status(status: int, code: str, cls: type) -> None:
    err = error_from_response(status, {"error": {"code": code, "message": f"m-{code}"}})
    assert type(err) is cls
    assert isinstance(err, lexecon.LexeconError)
    assert (err.code, err.message, err.status) == (code, f"m-{code}", status)
    assert code in str(err) and str(status) in str(err)


def test_conflict_covers_already_exists_and_413_is_an_invalid_argument() -> None:
    assert issubclass(lexecon.AlreadyExists, lexecon.Conflict)
    assert issubclass(lexecon.PayloadTooLarge, lexecon.InvalidArgument)
    for name in lexecon.__all__:
        obj = getattr(lexecon, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, lexecon.LexeconError), name


def test_invalid_argument_names_the_field() -> None:
    rec = Recorder([error_response(400, "invalid_argument", "llm.user_id must be ...", field="llm.user_id")])
    with mock_client(rec) as client, pytest.raises(lexecon.InvalidArgument) as info:
        client.decide(actor="a", proposed_action="read:x")
    assert info.value.field == "llm.user_id"
    assert info.value.status == 400
    assert "field llm.user_id" in str(info.value)
    assert len(rec.requests) == 1, "a 400 is not retried"


def test_missing_or_null_field_is_none() -> None:
    err = error_from_response(400, {"error": {"code": "invalid_argument", "message": "bad", "field": None}})
    assert isinstance(err, lexecon.InvalidArgument) and err.field is None


def test_rate_limited_carries_retry_after_from_the_header() -> None:
    rec = Recorder([error_response(429, "resource_exhausted", "slow down", headers={"Retry-After": "120"})])
    with mock_client(rec) as client, pytest.raises(lexecon.RateLimited) as info:
        client.decide(actor="a", proposed_action="read:x")
    assert info.value.retry_after == 120.0
    assert len(rec.requests) == 1, "a Retry-After beyond max_retry_after is not waited for"


def test_a_non_json_error_body_still_maps_by_status_and_keeps_the_text() -> None:
    rec = Recorder([httpx.Response(502, text="<html>bad gateway</html>")])
    with mock_client(rec) as client, pytest.raises(lexecon.ServerError) as info:
        client.call("PolicyService", "GetActivePolicy", {})
    assert info.value.status == 502
    assert "bad gateway" in info.value.message


def test_unknown_status_with_a_known_code_uses_the_code() -> None:
    err = error_from_response(418, {"error": {"code": "permission_denied", "message": "no"}})
    assert isinstance(err, lexecon.PermissionDenied)


def test_an_unreachable_server_is_unavailable_without_status() -> None:
    rec = Recorder([httpx.ConnectError("connection refused")])
    with mock_client(rec, retries=2) as client, pytest.raises(lexecon.Unavailable) as info:
        client.decide(actor="a", proposed_action="read:x")
    assert info.value.status is None
    assert "base_url" in info.value.message
    assert len(rec.requests) == 3


def test_a_success_that_is_not_json_is_a_server_error() -> None:
    rec = Recorder([httpx.Response(200, text="hello")])
    with mock_client(rec) as client, pytest.raises(lexecon.ServerError):
        client.verify_ledger()


def test_bad_arguments_fail_before_sending() -> None:
    with pytest.raises(ValueError, match="base_url"):
        lexecon.Client("localhost:50051")
    rec = Recorder([error_response(500, "internal", "unused")])
    with mock_client(rec) as client:
        with pytest.raises(TypeError, match="data_classes"):
            client.decide(actor="a", proposed_action="read:x", data_classes="pii")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="service and rpc"):
            client.call("", "Decide", {})
    assert rec.requests == []


def test_verify_and_cert_build_an_ssl_context(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`verify=CA` and `cert=(cert, key)` (mTLS) become one SSLContext for httpx."""
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from lexecon._core import ssl_context

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lexecon-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "c.pem", tmp_path / "k.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    ctx = ssl_context(str(cert_file), (str(cert_file), str(key_file)))
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert any(c.get("subject") for c in ctx.get_ca_certs())
    assert ssl_context(True, None) is True and ssl_context(False, None) is False
    with pytest.raises(ValueError, match="no such CA file"):
        ssl_context(str(tmp_path / "missing.pem"), None)
    # The clients accept them.
    lexecon.Client("https://lexecon.test", verify=str(cert_file), cert=(str(cert_file), str(key_file))).close()
