"""The decision service verifies every token again: forged, foreign and malformed tokens are
refused with 401 and a reason, through the HTTP API on loopback."""

from __future__ import annotations

import base64
import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.decision.tokens import KeyFileError, key_ids, load_key_files, load_public_key
from tests.decision_peer import TokenMint, running_decision_service, service_config


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def mint() -> TokenMint:
    return TokenMint()


@pytest.fixture(scope="module")
def service(tmp_path_factory, mint):
    config = service_config(tmp_path_factory.mktemp("tokens"), mint)
    with running_decision_service(config) as running:
        yield running


def ask(service, token) -> dict:
    body = {
        "action": {"name": "invoke_chat_model"},
        "resource": {"type": "model", "id": "chat"},
        "context": {"token": token},
    }
    answer = httpx.post(f"{service.url}/access/v1/evaluation", json=body, timeout=5)
    assert answer.status_code == 200
    return answer.json()


def forged(mint: TokenMint) -> dict[str, str]:
    now = int(time.time())
    claims = mint.claims()
    other = rsa.generate_private_key(65537, 2048)
    public_pem = mint.public_pem.encode()
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        # PyJWT refuses to sign HS256 with a PEM; build the classic confusion token by hand.
        "HS256 with the public key": _hs256_with(public_pem, claims),
        "signed by another key, same kid": jwt.encode(
            claims, other, algorithm="RS256", headers={"kid": mint.kid}
        ),
        "unknown kid": mint.token(headers={"kid": "not-a-known-key"}),
        "wrong issuer": mint.token(iss=mint.issuer + "/"),
        "wrong audience": mint.token(aud=["image-models"]),
        "expired": mint.token(iat=now - 400, nbf=now - 400, exp=now - 100),
        "not yet valid": mint.token(nbf=now + 300, exp=now + 400),
        "lifetime too long": mint.token(exp=now + 3600),
        "no exp": mint.token(exp=None),
        "oversized": mint.token(padding="x" * 9000),
        "malformed": "not.a.jwt",
        "a SET is not an access token": mint.token(headers={"typ": "secevent+jwt"}),
        "issuer as a list": _signed(mint, {**claims, "iss": [mint.issuer]}),
        "scope not a string": mint.token(scope=["chat:invoke"]),
        "auth_time in the future": mint.token(auth_time=now + 3600),
    }


def _signed(mint: TokenMint, claims: dict) -> str:
    """A token PyJWT's encoder would refuse to make, signed with the real key."""
    return jwt.PyJWS().encode(
        json.dumps(claims).encode(), mint.key, algorithm="RS256", headers={"kid": mint.kid}
    )


def _hs256_with(secret: bytes, claims: dict) -> str:
    import hashlib
    import hmac

    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


REASONS = {
    "alg none": "algorithm not allowed",
    "HS256 with the public key": "algorithm not allowed",
    "signed by another key, same kid": "bad signature",
    "unknown kid": "unknown key id",
    "wrong issuer": "wrong issuer",
    "wrong audience": "wrong audience",
    "expired": "token expired",
    "not yet valid": "token not yet valid",
    "lifetime too long": "token lifetime too long",
    "no exp": "missing claim exp",
    "oversized": "token too large",
    "malformed": "malformed token",
    "a SET is not an access token": "not an access token",
    "issuer as a list": "wrong issuer",
    "scope not a string": "malformed claim scope",
    "auth_time in the future": "auth_time in the future",
}


@pytest.fixture(scope="module")
def bad_tokens(mint) -> dict[str, str]:
    return forged(mint)


@pytest.mark.parametrize("case", sorted(REASONS))
def test_a_bad_token_is_refused_with_401(case, service, bad_tokens):
    got = ask(service, bad_tokens[case])
    assert got["decision"] is False
    assert got["context"]["status"] == 401
    assert got["context"]["reason"] == REASONS[case]
    assert got["context"]["policies"] == []


def test_the_good_token_of_the_same_shape_is_allowed(service, mint):
    assert ask(service, mint.token())["decision"] is True


def test_a_token_without_kid_uses_the_one_key(service, mint):
    token = jwt.encode(mint.claims(), mint.key, algorithm="RS256")
    assert ask(service, token)["decision"] is True


def test_a_missing_token_is_401(service):
    context = ask(service, None)["context"]
    assert (context["status"], context["reason"], context["policies"]) == (401, "no token", [])
    assert len(context["correlation_id"]) == 36


def test_a_body_that_is_not_authzen_is_400_and_deny(service):
    answer = httpx.post(f"{service.url}/access/v1/evaluation", content=b"[1, 2]", timeout=5)
    assert answer.status_code == 400
    assert answer.json()["decision"] is False
    assert answer.json()["context"]["reason"] == "malformed request: not a JSON object"


def test_both_key_ids_name_the_key(mint):
    thumbprint, spki_hash = key_ids(mint.key.public_key())
    # RFC 7638's own example would need its key; check the thumbprint with PyJWT's JWK instead.
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(mint.key.public_key()))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    import hashlib

    digest = hashlib.sha256(canonical.encode()).digest()
    assert thumbprint == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert spki_hash != thumbprint and mint.kid == spki_hash


def test_a_pkcs1_key_is_refused_with_the_fix(mint):
    pkcs1 = mint.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    with pytest.raises(KeyFileError, match="SPKI"):
        load_public_key(pkcs1.decode(), "realm.pem")


def test_a_certificate_pem_gives_the_same_key(mint, tmp_path):
    cert_pem = mint.cert.public_bytes(serialization.Encoding.PEM).decode()
    assert key_ids(load_public_key(cert_pem, "cert.pem")) == key_ids(mint.key.public_key())
    (tmp_path / "a.pem").write_text(cert_pem)
    assert set(load_key_files([tmp_path / "a.pem"])) == set(key_ids(mint.key.public_key()))


def test_a_small_or_non_rsa_key_is_refused():
    from cryptography.hazmat.primitives.asymmetric import ec

    small = rsa.generate_private_key(65537, 1024).public_key()  # noqa: S505 - the bad input
    curve = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    for key, message in ((small, "at least 2048"), (curve, "must be RSA")):
        pem = key.public_bytes(serialization.Encoding.PEM, spki).decode()
        with pytest.raises(KeyFileError, match=message):
            load_public_key(pem, "k.pem")


def test_a_delegated_token_is_held_to_its_own_lifetime_and_one_audience(tmp_path, mint):
    from services.decision.tokens import TokenError, TokenVerifier

    verifier = TokenVerifier(
        {mint.kid: load_public_key(mint.public_pem, "test key")},
        issuer=mint.issuer,
        leeway=30,
        max_bytes=8192,
        max_lifetime=300,
        max_delegated_lifetime=120,
    )
    now = int(time.time())
    agent = {"azp": "agent", "act": {"sub": "sa", "client_id": "agent"}}
    ok = verifier.verify(mint.token(aud=["chat-models"], **agent), "chat-models", now)
    assert ok.actor == "agent"
    # The user's own token may live 300 s and name several audiences...
    user = verifier.verify(mint.token(exp=now + 300), "chat-models", now)
    assert user.actor is None
    # ...an agent's may not.
    with pytest.raises(TokenError, match="delegated token lifetime too long"):
        verifier.verify(mint.token(exp=now + 121, aud=["chat-models"], **agent), "chat-models", now)
    with pytest.raises(TokenError, match="delegated token must name one audience"):
        verifier.verify(mint.token(**agent), "chat-models", now)
