"""Verify a raw access token again, with keys known at deploy time, and read its claims.

The gateway already checked the signature, but the decision service never trusts its word:
it verifies the JWS itself (RS256 only, the deploy-time key, issuer byte for byte, audience,
times with the configured skew) and derives every fact of the decision from the verified
claims. Each failure is a `TokenError` whose reason the caller returns with status 401.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

ALGORITHMS = ("RS256",)
# Typ values an access token may carry (RFC 9068 and Keycloak's); a SET or an ID token is not.
ACCESS_TOKEN_TYPES = ("jwt", "at+jwt", "application/at+jwt")
MIN_RSA_BITS = 2048


class TokenError(Exception):
    """The token is not acceptable; `reason` is short and safe to return to the caller."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class KeyFileError(ValueError):
    """A deploy-time key file cannot be used; the message names the file and the fix."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_ids(key: RSAPublicKey) -> tuple[str, str]:
    """The ids a token may name this key by: its RFC 7638 JWK thumbprint, and the SHA-256 of
    its SPKI DER (how Keycloak names an imported key). Both follow from the key alone, so no
    id has to be agreed on at deploy time."""
    numbers = key.public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    jwk = json.dumps({"e": _b64url(e), "kty": "RSA", "n": _b64url(n)}, separators=(",", ":"))
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _b64url(hashlib.sha256(jwk.encode()).digest()), _b64url(hashlib.sha256(spki).digest())


def load_public_key(pem: str, where: str) -> RSAPublicKey:
    """An RSA key from an SPKI `PUBLIC KEY` PEM or a certificate PEM."""
    if "BEGIN RSA PUBLIC KEY" in pem:
        raise KeyFileError(
            f"{where}: a PKCS#1 'RSA PUBLIC KEY' PEM; give the SPKI 'PUBLIC KEY' form "
            f"(openssl rsa -pubin -RSAPublicKey_in -in KEY -pubout)"
        )
    try:
        if "BEGIN CERTIFICATE" in pem:
            key = x509.load_pem_x509_certificate(pem.encode()).public_key()
        else:
            key = serialization.load_pem_public_key(pem.encode())
    except ValueError as err:
        raise KeyFileError(f"{where}: not a PEM public key or certificate ({err})") from None
    if not isinstance(key, RSAPublicKey):
        raise KeyFileError(f"{where}: tokens are RS256, so the key must be RSA")
    if key.key_size < MIN_RSA_BITS:
        raise KeyFileError(f"{where}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS}")
    return key


def load_key_files(paths: Iterable[Path]) -> dict[str, RSAPublicKey]:
    """Key id -> key for every PEM file given (each key under both of its ids)."""
    keys: dict[str, RSAPublicKey] = {}
    for path in paths:
        key = load_public_key(path.read_text(), str(path))
        for kid in key_ids(key):
            keys[kid] = key
    if not keys:
        raise KeyFileError("no token verification key: mount the IdP signing key's PEM")
    return keys


@dataclass(frozen=True)
class Claims:
    """What a decision may use from a verified token."""

    subject: str
    client: str | None
    """`azp`: the client the token was issued to (an agent's or service's SPIFFE ID)."""
    scopes: frozenset[str]
    groups: tuple[str, ...]
    delegates: tuple[str, ...]
    actor: str | None
    """The top-level actor's id: `act.client_id` (Keycloak's delegation names the agent's client
    there and its service-account user in `act.sub`), else `act.sub`. Nested actors are
    informational only and ignored."""
    session_id: str | None
    auth_time: int | None
    username: str | None


def _string(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TokenError(f"malformed claim {name}")
    return value


def _strings(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TokenError(f"malformed claim {name}")
    return tuple(value)


def read_claims(claims: Mapping[str, Any], now: int, leeway: int) -> Claims:
    """Type-check the claims a decision reads; anything odd is a token problem."""
    subject = _string(claims, "sub")
    if subject is None:
        raise TokenError("malformed claim sub")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise TokenError("malformed claim scope")
    act = claims.get("act")
    actor = None
    if act is not None:
        if not isinstance(act, dict):
            raise TokenError("malformed claim act")
        actor = act.get("client_id", act.get("sub"))
        if not isinstance(actor, str) or not actor:
            raise TokenError("malformed claim act")
    auth_time = claims.get("auth_time")
    if auth_time is not None and (
        isinstance(auth_time, bool) or not isinstance(auth_time, int) or not 0 <= auth_time
    ):
        raise TokenError("malformed claim auth_time")
    if auth_time is not None and auth_time > now + leeway:
        raise TokenError("auth_time in the future")
    return Claims(
        subject=subject,
        client=_string(claims, "azp"),
        scopes=frozenset(scope.split()),
        groups=_strings(claims, "groups"),
        delegates=_strings(claims, "delegates"),
        actor=actor,
        session_id=_string(claims, "sid"),
        auth_time=auth_time,
        username=_string(claims, "preferred_username"),
    )


class TokenVerifier:
    """Verifies tokens of one issuer against its deploy-time keys."""

    def __init__(
        self,
        keys: Mapping[str, RSAPublicKey],
        issuer: str,
        leeway: int,
        max_bytes: int,
        max_lifetime: int,
        max_delegated_lifetime: int | None = None,
    ):
        if not keys:
            raise KeyFileError("no token verification key")
        self.keys = dict(keys)
        self.issuer = issuer
        self.leeway = leeway
        self.max_bytes = max_bytes
        self.max_lifetime = max_lifetime
        self.max_delegated_lifetime = (
            max_lifetime if max_delegated_lifetime is None else max_delegated_lifetime
        )
        # Without a kid a token is accepted only when there is exactly one key to try.
        distinct = list({id(k): k for k in self.keys.values()}.values())
        self._single = distinct[0] if len(distinct) == 1 else None

    def _key_for(self, header: Mapping[str, Any]) -> RSAPublicKey:
        kid = header.get("kid")
        if kid is None:
            if self._single is None:
                raise TokenError("token names no key id")
            return self._single
        if not isinstance(kid, str) or kid not in self.keys:
            raise TokenError("unknown key id")
        return self.keys[kid]

    def verify(self, token: Any, audience: str, now: int) -> Claims:
        """The verified claims of `token` for `audience`, or TokenError."""
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        if len(token) > self.max_bytes:
            raise TokenError("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        # The allowlist comes first: `none` and HS256-with-the-public-key never reach a key.
        if header.get("alg") not in ALGORITHMS:
            raise TokenError("algorithm not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES):
            raise TokenError("not an access token")
        if "crit" in header:
            raise TokenError("unsupported critical header")
        key = self._key_for(header)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=list(ALGORITHMS),
                audience=audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "sub", "aud"], "strict_aud": False},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token not yet valid") from None
        except jwt.InvalidAudienceError:
            raise TokenError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("wrong issuer") from None
        except jwt.InvalidSignatureError:
            raise TokenError("bad signature") from None
        except jwt.MissingRequiredClaimError as err:
            raise TokenError(f"missing claim {err.claim}") from None
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        # Byte-equal issuer: PyJWT compares str, but a list or other type must never pass.
        if not isinstance(claims.get("iss"), str) or claims["iss"] != self.issuer:
            raise TokenError("wrong issuer")
        exp, iat = claims["exp"], claims["iat"]
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise TokenError("malformed token times")
        if exp - iat > self.max_lifetime:
            raise TokenError("token lifetime too long")
        verified = read_claims(claims, now, self.leeway)
        # A token an agent got for a user is narrowed: shorter-lived and for one audience.
        if verified.actor is not None:
            if exp - iat > self.max_delegated_lifetime:
                raise TokenError("delegated token lifetime too long")
            aud = claims["aud"]
            if not (isinstance(aud, str) or (isinstance(aud, list) and len(aud) == 1)):
                raise TokenError("delegated token must name one audience")
        return verified
