"""Security Event Tokens (RFC 8417) carrying CAEP events: build, sign, parse and verify.

A SET is a JWS with `typ: secevent+jwt`, signed RS256 by the transmitter's key (certified under
the lab root at deploy time). Its subject is the top-level `sub_id` of the Shared Signals
Framework, and `events` holds exactly one CAEP event. The receiver trusts a SET only when the
certificate is a current end-entity certificate of the lab root, the signature, issuer and
audience match, it is fresh, and every `iss_sub` subject names the lab's IdP realm as issuer.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

SET_TYPE = "secevent+jwt"
ALGORITHM = "RS256"

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
TOKEN_CLAIMS_CHANGE = CAEP + "token-claims-change"
ASSURANCE_LEVEL_CHANGE = CAEP + "assurance-level-change"
KNOWN_EVENTS = (SESSION_REVOKED, CREDENTIAL_CHANGE, TOKEN_CLAIMS_CHANGE, ASSURANCE_LEVEL_CHANGE)

# Short names the transmitter's API accepts.
EVENT_NAMES = {uri.rsplit("/", 1)[1]: uri for uri in KNOWN_EVENTS}

# SSF subject identifier formats the lab reads (RFC 9493 plus SSF's "complex").
SUBJECT_FORMATS = ("iss_sub", "opaque", "email", "complex")


class SetError(ValueError):
    """A SET (or the message carrying it) that must not be acted on; never retried."""


@dataclass(frozen=True)
class SecurityEvent:
    """One verified CAEP event, whatever message form carried it."""

    jti: str
    issuer: str
    issued_at: int
    event_type: str
    event: dict[str, Any]
    subject: dict[str, Any]

    @property
    def known(self) -> bool:
        return self.event_type in KNOWN_EVENTS

    @property
    def session_id(self) -> str | None:
        """The session the subject names, if any (complex subject with a session member)."""
        session = self.subject.get("session") if self.subject.get("format") == "complex" else None
        if isinstance(session, Mapping):
            return session.get("id") or session.get("sub")
        return None

    @property
    def user_id(self) -> str | None:
        """The user (IdP `sub`) the subject names, if any."""
        subject = self.subject
        if subject.get("format") == "complex":
            subject = subject.get("user") or {}
        if subject.get("format") == "iss_sub":
            return subject.get("sub")
        if subject.get("format") == "opaque":
            return subject.get("id")
        return None

    @property
    def user_email(self) -> str | None:
        """The user's email when the subject names the user only by email (the IdP resolves it)."""
        subject = self.subject
        if subject.get("format") == "complex":
            subject = subject.get("user") or {}
        return subject.get("email") if subject.get("format") == "email" else None


def check_subject(subject: Any) -> dict[str, Any]:
    """Reject a subject the lab cannot act on, naming what is wrong."""
    if not isinstance(subject, Mapping) or subject.get("format") not in SUBJECT_FORMATS:
        raise SetError(f"sub_id: expected an object with format in {SUBJECT_FORMATS}")
    fmt = subject["format"]
    required = {"iss_sub": ("iss", "sub"), "opaque": ("id",), "email": ("email",)}.get(fmt, ())
    missing = [k for k in required if not isinstance(subject.get(k), str) or not subject[k]]
    if missing:
        raise SetError(f"sub_id: format {fmt} needs {', '.join(missing)}")
    if fmt == "complex":
        members = [k for k in ("user", "session") if k in subject]
        if not members:
            raise SetError("sub_id: a complex subject needs user or session")
        for member in members:
            check_subject(subject[member])
    return dict(subject)


def subject_issuers(subject: Mapping[str, Any]) -> list[str]:
    """The `iss` of every `iss_sub` identifier in a (checked) subject, complex members included."""
    parts = [subject]
    if subject.get("format") == "complex":
        parts += [subject[k] for k in ("user", "session") if isinstance(subject.get(k), Mapping)]
    return [p["iss"] for p in parts if p.get("format") == "iss_sub"]


def build_set(
    *,
    private_key_pem: str,
    issuer: str,
    audience: str,
    event_type: str,
    subject: Mapping[str, Any],
    event: Mapping[str, Any] | None = None,
    key_id: str | None = None,
    now: int | None = None,
    jti: str | None = None,
) -> tuple[str, str]:
    """A signed SET for one event; returns (compact JWS, jti)."""
    now = int(time.time()) if now is None else now
    jti = jti or uuid.uuid4().hex
    claims = {
        "iss": issuer,
        "iat": now,
        "jti": jti,
        "aud": audience,
        "sub_id": check_subject(subject),
        "events": {event_type: {"event_timestamp": now, **(event or {})}},
    }
    headers = {"typ": SET_TYPE, **({"kid": key_id} if key_id else {})}
    return jwt.encode(claims, private_key_pem, algorithm=ALGORITHM, headers=headers), jti


def verify_certificate(
    cert_pem: str, root_pem: str, now: dt.datetime | None = None
) -> x509.Certificate:
    """The transmitter's certificate, once it is checked to be a current end-entity certificate
    signed by the lab root with digitalSignature."""
    now = now or dt.datetime.now(dt.UTC)
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    root = x509.load_pem_x509_certificate(root_pem.encode())
    if cert.issuer != root.subject:
        raise SetError("the transmitter certificate was not issued by the lab root")
    public = root.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(
                cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm)
            )
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(
                cert.signature,
                cert.tbs_certificate_bytes,
                padding.PKCS1v15(),
                cert.signature_hash_algorithm or hashes.SHA256(),
            )
        else:
            raise SetError(f"unsupported root key type {type(public).__name__}")
    except InvalidSignature:
        raise SetError("the transmitter certificate's signature does not verify") from None
    if now < cert.not_valid_before_utc:
        raise SetError(
            f"the transmitter certificate is not valid before "
            f"{cert.not_valid_before_utc.isoformat()}; check the clock or reissue it"
        )
    if now > cert.not_valid_after_utc:
        raise SetError(
            f"the transmitter certificate expired on {cert.not_valid_after_utc.isoformat()}; "
            "reissue it (pulumi up) and redeploy the receiver"
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise SetError(
            "the transmitter certificate has no keyUsage; it must allow only signing"
        ) from None
    # A CA key could certify keys of its own; a SET key must be an end entity.
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca or usage.key_cert_sign:
        raise SetError("the transmitter certificate is a CA certificate; it must be an end entity")
    if not usage.digital_signature:
        raise SetError("the transmitter certificate may not sign (no digitalSignature)")
    return cert


@dataclass(frozen=True)
class SetVerifier:
    """Everything a receiver checks a SET against; all of it known at deploy time."""

    public_key: Any
    issuer: str
    audience: str
    subject_issuer: str
    """The IdP realm issuer: an `iss_sub` subject from any other issuer names nobody here."""
    max_age_seconds: int = 300
    clock_skew_seconds: int = 30
    not_after: float | None = None
    """When the transmitter certificate expires (epoch seconds); no SET is trusted after it."""

    @classmethod
    def from_certificate(
        cls,
        cert_pem: str,
        root_pem: str,
        issuer: str,
        audience: str,
        subject_issuer: str,
        **limits: int,
    ) -> SetVerifier:
        cert = verify_certificate(cert_pem, root_pem)
        expires = cert.not_valid_after_utc.timestamp()
        return cls(cert.public_key(), issuer, audience, subject_issuer, not_after=expires, **limits)

    def verify(self, token: str, now: int | None = None) -> SecurityEvent:
        now = int(time.time()) if now is None else now
        if self.not_after is not None and now > self.not_after:
            raise SetError("the transmitter certificate has expired; reissue it and redeploy")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise SetError(f"not a JWS: {err}") from None
        if header.get("typ") != SET_TYPE:
            raise SetError(f"typ is {header.get('typ')!r}, expected {SET_TYPE!r}")
        if header.get("alg") != ALGORITHM:
            raise SetError(f"alg is {header.get('alg')!r}, only {ALGORITHM} is accepted")
        try:
            # exp is not a SET claim (RFC 8417 section 2.2); age is checked from iat below.
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["iss", "iat", "jti", "aud"], "verify_exp": False},
                leeway=self.clock_skew_seconds,
            )
        except jwt.PyJWTError as err:
            raise SetError(f"rejected SET: {err}") from None
        iat = claims["iat"]
        if not isinstance(iat, int) or now - iat > self.max_age_seconds + self.clock_skew_seconds:
            raise SetError(f"the SET is too old (iat {iat}, max age {self.max_age_seconds} s)")
        events = claims.get("events")
        if not isinstance(events, Mapping) or len(events) != 1:
            raise SetError("events: expected exactly one event")
        ((event_type, event),) = events.items()
        if not isinstance(event, Mapping):
            raise SetError(f"events[{event_type}]: expected an object")
        subject = check_subject(claims.get("sub_id"))
        for iss in subject_issuers(subject):
            # A `sub` is unique only within its issuer: another issuer's `sub` may be anyone here.
            if iss != self.subject_issuer:
                raise SetError(
                    f"sub_id: iss_sub issuer {iss!r} is not the IdP realm issuer "
                    f"{self.subject_issuer!r}; the receiver cannot tell whom it names"
                )
        return SecurityEvent(
            jti=str(claims["jti"]),
            issuer=claims["iss"],
            issued_at=iat,
            event_type=event_type,
            event=dict(event),
            subject=subject,
        )


def unwrap_message(body: str) -> str:
    """The SET inside an SQS message body: raw delivery, or an SNS notification envelope."""
    text = body.strip()
    if not text.startswith("{"):
        return text
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError as err:
        raise SetError(f"message body is neither a SET nor JSON: {err}") from None
    if not isinstance(envelope, Mapping) or envelope.get("Type") != "Notification":
        raise SetError("JSON message body is not an SNS notification envelope")
    message = envelope.get("Message")
    if not isinstance(message, str) or not message.strip():
        raise SetError("SNS envelope without a Message")
    return message.strip()
