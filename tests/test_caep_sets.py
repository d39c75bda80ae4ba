"""Security Event Tokens: what the transmitter signs and everything the receiver refuses."""

from __future__ import annotations

import datetime as dt
import json
import time

import jwt
import pytest

from services.caep import sets
from tests.signals_peers import make_pki

ISSUER = "https://caep.lab.localhost"
AUDIENCE = "spiffe://lab.local/ns/lab-system/sa/caep-receiver"
REALM = "https://idp.lab.localhost:9443/realms/lab"
SESSION_SUBJECT = {
    "format": "complex",
    "user": {"format": "iss_sub", "iss": REALM, "sub": "u1"},
    "session": {"format": "opaque", "id": "s-123"},
}


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture(scope="module")
def verifier(pki):
    return sets.SetVerifier.from_certificate(
        pki.set_cert_pem, pki.root_pem, ISSUER, AUDIENCE, REALM, max_age_seconds=300
    )


def signed(pki, **overrides):
    args = {
        "private_key_pem": pki.set_key_pem,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "event_type": sets.SESSION_REVOKED,
        "subject": SESSION_SUBJECT,
        **overrides,
    }
    return sets.build_set(**args)


def test_a_set_has_the_rfc_8417_shape(pki, verifier):
    token, jti = signed(pki, event={"initiating_entity": "admin"})
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "RS256", "typ": "secevent+jwt"}
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "iat", "jti", "aud", "sub_id", "events"}
    assert claims["jti"] == jti and claims["aud"] == AUDIENCE
    assert claims["events"][sets.SESSION_REVOKED]["initiating_entity"] == "admin"
    event = verifier.verify(token)
    assert (event.session_id, event.user_id, event.known) == ("s-123", "u1", True)


@pytest.mark.parametrize(
    "name",
    ["session-revoked", "credential-change", "token-claims-change", "assurance-level-change"],
)
def test_each_caep_event_type_round_trips(pki, verifier, name):
    token, _ = signed(pki, event_type=sets.EVENT_NAMES[name])
    assert verifier.verify(token).event_type == f"{sets.CAEP}{name}"


def test_a_set_signed_by_an_uncertified_key_is_rejected(pki, verifier):
    forged, _ = signed(pki, private_key_pem=pki.other_key_pem)
    with pytest.raises(sets.SetError, match="Signature verification failed"):
        verifier.verify(forged)


def test_a_tampered_set_is_rejected(pki, verifier):
    token, _ = signed(pki)
    head, payload, signature = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["sub_id"]["session"]["id"] = "someone-elses-session"
    body = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    with pytest.raises(sets.SetError, match="Signature verification failed"):
        verifier.verify(f"{head}.{body}.{signature}")


def test_an_old_set_is_rejected_and_a_fresh_one_accepted(pki, verifier):
    now = int(time.time())
    stale, _ = signed(pki, now=now - 400)
    with pytest.raises(sets.SetError, match="too old"):
        verifier.verify(stale)
    assert verifier.verify(signed(pki, now=now - 250)[0]).issued_at == now - 250


def test_a_set_from_the_future_is_rejected(pki, verifier):
    early, _ = signed(pki, now=int(time.time()) + 600)
    with pytest.raises(sets.SetError, match="not yet valid"):
        verifier.verify(early)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"issuer": "https://evil.example"}, "Invalid issuer"),
        ({"audience": "spiffe://lab.local/ns/x/sa/other"}, "Audience doesn't match"),
    ],
)
def test_wrong_issuer_or_audience_is_rejected(pki, verifier, override, message):
    token, _ = signed(pki, **override)
    with pytest.raises(sets.SetError, match=message):
        verifier.verify(token)


def test_a_plain_jwt_or_alg_none_is_not_a_set(pki, verifier):
    plain = jwt.encode({"iss": ISSUER}, pki.set_key_pem, algorithm="RS256")
    with pytest.raises(sets.SetError, match="typ is 'JWT'"):
        verifier.verify(plain)
    unsigned = jwt.encode({"iss": ISSUER}, None, algorithm="none", headers={"typ": sets.SET_TYPE})
    with pytest.raises(sets.SetError, match="only RS256"):
        verifier.verify(unsigned)


def test_a_certificate_not_issued_by_the_root_is_refused(pki):
    other = make_pki()  # a root with the same name but another key: only the signature tells
    with pytest.raises(sets.SetError, match="signature does not verify"):
        sets.verify_certificate(pki.set_cert_pem, other.root_pem)
    no_signing = make_pki(signing_uses_digital_signature=False)
    with pytest.raises(sets.SetError, match="may not sign"):
        sets.verify_certificate(no_signing.set_cert_pem, no_signing.root_pem)


def test_raw_and_sns_envelope_forms_parse_to_the_same_event(pki, verifier):
    token, _ = signed(pki)
    envelope = json.dumps(
        {
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:caep",
            "Message": token,
            "Timestamp": "2026-01-01T00:00:00.000Z",
        }
    )
    assert sets.unwrap_message(envelope) == sets.unwrap_message(f"  {token}\n") == token
    assert verifier.verify(sets.unwrap_message(envelope)) == verifier.verify(token)
    with pytest.raises(sets.SetError, match="not an SNS notification"):
        sets.unwrap_message(json.dumps({"Type": "SubscriptionConfirmation"}))


def test_subjects_the_lab_cannot_act_on_are_named():
    with pytest.raises(sets.SetError, match="format iss_sub needs sub"):
        sets.check_subject({"format": "iss_sub", "iss": "x"})
    with pytest.raises(sets.SetError, match="needs user or session"):
        sets.check_subject({"format": "complex"})
    with pytest.raises(sets.SetError, match="format in"):
        sets.check_subject({"format": "phone_number", "phone_number": "+1"})


@pytest.mark.parametrize(
    "subject",
    [
        {"format": "iss_sub", "iss": "https://other.example/realms/lab", "sub": "u1"},
        {**SESSION_SUBJECT, "user": {"format": "iss_sub", "iss": REALM + "x", "sub": "u1"}},
        {
            "format": "complex",
            "session": {"format": "iss_sub", "iss": "https://other.example", "sub": "s1"},
        },
    ],
)
def test_an_iss_sub_subject_must_come_from_the_idp_realm(pki, verifier, subject):
    token, _ = signed(pki, subject=subject)
    with pytest.raises(sets.SetError, match="is not the IdP realm issuer"):
        verifier.verify(token)
    own = {"format": "iss_sub", "iss": REALM, "sub": "u1"}
    assert verifier.verify(signed(pki, subject=own)[0]).user_id == "u1"


def test_an_email_subject_is_read_as_an_email_not_a_user_id(pki, verifier):
    event = verifier.verify(signed(pki, subject={"format": "email", "email": "a@lab.local"})[0])
    assert (event.user_id, event.user_email, event.session_id) == (None, "a@lab.local", None)


@pytest.mark.parametrize(
    ("dates", "message"),
    [
        ({"valid_from": dt.timedelta(days=-3), "valid_for": dt.timedelta(days=1)}, "expired on"),
        ({"valid_from": dt.timedelta(days=1)}, "is not valid before"),
    ],
)
def test_a_transmitter_certificate_outside_its_dates_is_refused(dates, message):
    outside = make_pki(**dates)
    with pytest.raises(sets.SetError, match=message):
        sets.verify_certificate(outside.set_cert_pem, outside.root_pem)


def test_a_ca_certificate_is_refused_as_the_transmitters(pki):
    ca = make_pki(signing_is_ca=True)
    with pytest.raises(sets.SetError, match="is a CA certificate"):
        sets.verify_certificate(ca.set_cert_pem, ca.root_pem)
    assert sets.verify_certificate(pki.set_cert_pem, pki.root_pem).subject.rfc4514_string() == (
        "CN=caep-transmitter"
    )


def test_no_set_is_trusted_once_the_certificate_has_expired(pki, verifier):
    token, _ = signed(pki)
    assert verifier.not_after is not None
    later = int(verifier.not_after) + 1
    fresh, _ = signed(pki, now=later)
    with pytest.raises(sets.SetError, match="certificate has expired"):
        verifier.verify(fresh, now=later)
    assert verifier.verify(token).jti
