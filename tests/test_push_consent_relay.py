"""The push-consent relay between Keycloak's CIBA channel and the approver, on loopback peers:
moto's SNS and SQS, a realm-signed channel token, and a fake IdP recording the callback."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.push_consent_relay.approver import Approver
from services.push_consent_relay.relay import CALLBACK_PATH, Relay, action_hash, create_app
from tests.signals_peers import aws_client, fake_idp, moto_server, serve_app

ISSUER = "https://idp.lab.localhost:9443/realms/lab"
AGENT = "spiffe://lab.local/ns/lab-agents/sa/agent"
APPROVER_TOKEN = "approver-token"


@pytest.fixture(scope="module")
def realm_key():
    return rsa.generate_private_key(65537, 2048)


def channel_token(key, **overrides) -> str:
    """What Keycloak's HTTP authentication channel sends as its bearer token."""
    now = int(time.time())
    claims = {
        "typ": "Bearer",
        "iss": ISSUER,
        "aud": ISSUER,
        "jti": uuid.uuid4().hex,
        "azp": AGENT,
        "sub": "user-1",
        "exp": now + 120,
        **overrides,
    }
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode(claims, pem, algorithm="RS256")


CIBA_BODY = {
    "scope": "openid chat:invoke",
    "binding_message": "summarise-Q3",
    "login_hint": "alice",
    "is_consent_required": True,
    "acr_values": "",
}


@pytest.fixture(scope="module")
def lab(realm_key):
    """moto with a push topic delivering raw to an approvals queue, a fake IdP, the relay."""
    with moto_server() as endpoint, fake_idp() as idp:
        sns, sqs = aws_client("sns", endpoint), aws_client("sqs", endpoint)
        topic = sns.create_topic(Name="push-consent")["TopicArn"]
        inbox = sqs.create_queue(QueueName="push-approvals")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=arn["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        relay = Relay(
            sns=sns,
            topic_arn=topic,
            idp_issuer=ISSUER,
            idp_public_key=realm_key.public_key(),
            idp_realm_url=f"{idp.url}/realms/lab",
        )
        with serve_app(create_app(relay, APPROVER_TOKEN)) as url:
            relay.answer_url = url
            yield {"url": url, "sqs": sqs, "inbox": inbox, "idp": idp, "relay": relay}


def push(lab, token: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(
        f"{lab['url']}/ciba",
        json=CIBA_BODY if body is None else body,
        headers={"Authorization": f"Bearer {token}"},
    )


def approver(lab, **extra) -> Approver:
    rules = {"agents": [AGENT], "scopes": ["openid", "chat:invoke"], **extra}
    return Approver(lab["sqs"], lab["inbox"], APPROVER_TOKEN, **rules)


def callbacks(lab) -> list[dict]:
    return [c for c in lab["idp"].calls if c["path"].endswith(CALLBACK_PATH)]


def test_a_ciba_request_is_pushed_approved_and_called_back(lab, realm_key):
    token = channel_token(realm_key)
    assert push(lab, token).status_code == 201

    ((message, decision, status),) = approver(lab).answer_once(wait_seconds=2)
    assert (decision, status) == ("approve", 200)
    assert {k: message[k] for k in ("user", "agent", "scopes", "binding_message")} == {
        "user": "alice",
        "agent": AGENT,
        "scopes": ["openid", "chat:invoke"],
        "binding_message": "summarise-Q3",
    }
    assert message["action_hash"] == action_hash(
        AGENT, "alice", ["chat:invoke", "openid"], "summarise-Q3", ""
    )
    (call,) = [c for c in callbacks(lab) if c["authorization"] == f"Bearer {token}"]
    assert call["path"] == f"/realms/lab{CALLBACK_PATH}"
    assert json.loads(call["body"]) == {"status": "SUCCEED"}


def test_a_scope_the_approver_never_allows_is_denied(lab, realm_key):
    token = channel_token(realm_key)
    assert push(lab, token, {**CIBA_BODY, "scope": "image:generate"}).status_code == 201
    ((_, decision, status),) = approver(lab).answer_once(wait_seconds=2)
    assert (decision, status) == ("deny", 200)
    (call,) = [c for c in callbacks(lab) if c["authorization"] == f"Bearer {token}"]
    assert json.loads(call["body"]) == {"status": "UNAUTHORIZED"}


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example/realms/lab"},
        {"aud": "someone-else"},
        {"exp": int(time.time()) - 60},
    ],
)
def test_a_channel_token_not_from_the_realm_is_refused(lab, realm_key, claims):
    answer = push(lab, channel_token(realm_key, **claims))
    assert answer.status_code == 401 and "channel token rejected" in answer.json()["error"]


def test_a_channel_token_signed_by_another_key_is_refused(lab):
    forged = channel_token(rsa.generate_private_key(65537, 2048))
    assert push(lab, forged).status_code == 401
    assert httpx.post(f"{lab['url']}/ciba", json=CIBA_BODY).status_code == 401


def test_an_answer_must_echo_the_pushed_hash_and_carry_the_approver_token(lab, realm_key):
    token = channel_token(realm_key)
    request_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert push(lab, token).status_code == 201
    url = f"{lab['url']}/ciba/answers/{request_id}"
    auth = {"Authorization": f"Bearer {APPROVER_TOKEN}"}
    wrong = httpx.post(url, json={"decision": "approve", "action_hash": "sha256:00"}, headers=auth)
    assert wrong.status_code == 409
    anonymous = httpx.post(url, json={"decision": "approve", "action_hash": "x"})
    assert anonymous.status_code == 401
    assert not [c for c in callbacks(lab) if c["authorization"] == f"Bearer {token}"]
    # The real approver still answers it, once; a second answer finds nothing waiting.
    ((_, _, status),) = approver(lab).answer_once(wait_seconds=2)
    assert status == 200
    again = httpx.post(url, json={"decision": "deny", "action_hash": "x"}, headers=auth)
    assert again.status_code == 404
