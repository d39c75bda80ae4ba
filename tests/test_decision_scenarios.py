"""The policy scenario table, through the decision service's HTTP API and both backend forms.

Each row is a real RS256 token (signed with a key certified under a test root) and an AuthZEN
request. The table runs through the service on loopback with the local backend; the Cedar
request of every row that reaches the policies is also rendered for Verified Permissions,
checked against botocore's model (client-side, no network), read back and evaluated with
cedarpy, and put through the Verified Permissions backend with a stubbed client: all must
answer as the local backend did.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import botocore.session
import cedarpy
import httpx
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator

from services.decision.backends import LocalBackend, VerifiedPermissionsBackend
from services.decision.request_builder import CedarRequest
from tests.decision_peer import (
    ADMIN_TOKEN,
    TokenMint,
    agent_id,
    running_decision_service,
    service_config,
    service_id,
)

AGENT = agent_id()
OTHER_AGENT = agent_id("other-agent")
CALLER = service_id("service-caller")
TARGET = service_id("service-target")
STORE_ID = "PSEXAMPLEabcdefg111111"


def chat(**claims) -> dict:
    return {
        "action": "invoke_chat_model",
        "resource": {"type": "model", "id": "chat"},
        "claims": claims,
    }


def image(**claims) -> dict:
    return {
        "action": "generate_image",
        "resource": {"type": "model", "id": "image"},
        "claims": claims,
    }


def result(owner: str | None = "alice-id", **claims) -> dict:
    resource: dict[str, Any] = {"type": "result", "id": "r-1"}
    if owner is not None:
        resource["properties"] = {"owner": owner}
    return {"action": "read_result", "resource": resource, "claims": claims}


def call(target: str = TARGET, **claims) -> dict:
    return {
        "action": "call_service",
        "resource": {"type": "service", "id": target},
        "claims": claims,
    }


# Token shapes of the three sequences (docs/contracts.md, "Tokens").
DESIGNER = {"sub": "bob-id", "groups": ["designers"], "preferred_username": "bob"}
DELEGATED = {"azp": AGENT, "act": {"sub": AGENT}, "aud": ["chat-models"], "scope": "chat:invoke"}
DELEGATED_IMAGE = {
    **DELEGATED,
    "sub": "bob-id",
    "groups": ["designers"],
    "aud": ["image-models"],
    "scope": "image:generate",
}
SERVICE = {
    "sub": "svc-account-id",
    "azp": CALLER,
    "aud": ["lab-services"],
    "scope": "service:call",
    "groups": None,
    "delegates": None,
    "sid": None,
    "auth_time": None,
    "preferred_username": None,
}


@dataclass(frozen=True)
class Row:
    name: str
    request: dict
    allowed: bool
    policies: tuple[str, ...]
    reason: str
    status: int = 0
    revoke: tuple[tuple[str, str], ...] = ()
    body: dict = field(default_factory=dict)
    """Extra AuthZEN body fields (a subject or actor the gateway read)."""

    @property
    def expected_status(self) -> int:
        return self.status or (200 if self.allowed else 403)


ALLOWED = "allowed"
NO_PERMIT = "no policy permits"

ROWS = [
    # Sequence 2: user -> model.
    Row("researcher chats", chat(), True, ("users-chat-by-group",), ALLOWED),
    Row("designer draws", image(**DESIGNER), True, ("users-image-by-group",), ALLOWED),
    Row("researcher may not draw: wrong group", image(), False, (), NO_PERMIT),
    Row("designer may not chat: wrong group", chat(**DESIGNER), False, (), NO_PERMIT),
    Row("user in no group", chat(groups=None), False, (), NO_PERMIT),
    Row(
        "group spelled with a path is not the group",
        chat(groups=["/researchers"]),
        False,
        (),
        NO_PERMIT,
    ),
    Row("token without the chat scope", chat(scope="image:generate"), False, (), NO_PERMIT),
    Row(
        "chat action aimed at the image model",
        {**chat(), "resource": {"type": "model", "id": "image"}},
        False,
        (),
        NO_PERMIT,
    ),
    Row(
        "user without a session id is fine", chat(sid=None), True, ("users-chat-by-group",), ALLOWED
    ),
    Row(
        "revoked session",
        chat(),
        False,
        ("forbid-revoked-session",),
        "session revoked",
        revoke=(("session", "session-1"),),
    ),
    Row(
        "another session revoked, this one is not",
        chat(sid="session-2"),
        True,
        ("users-chat-by-group",),
        ALLOWED,
        revoke=(("session", "session-1"),),
    ),
    Row(
        "revoked user",
        chat(),
        False,
        ("forbid-revoked-subject",),
        "subject revoked",
        revoke=(("subject", "alice-id"),),
    ),
    Row("user reads own result", result(), True, ("users-read-own-results",), ALLOWED),
    Row("user reads another's result", result(owner="bob-id"), False, (), NO_PERMIT),
    Row("result without an owner: deny, not error", result(owner=None), False, (), NO_PERMIT),
    Row("result read without its scope", result(scope="chat:invoke"), False, (), NO_PERMIT),
    # Sequence 3: user -> agent -> model.
    Row("agent chats for a researcher", chat(**DELEGATED), True, ("users-chat-by-group",), ALLOWED),
    Row(
        "agent draws for a designer",
        image(**DELEGATED_IMAGE),
        True,
        ("users-image-by-group",),
        ALLOWED,
    ),
    Row(
        "agent the user never delegated to",
        chat(**DELEGATED, delegates=[]),
        False,
        ("agent-not-delegated",),
        "actor not delegated by the user",
    ),
    Row(
        "user token without a delegates claim",
        chat(**DELEGATED, delegates=None),
        False,
        ("agent-not-delegated",),
        "actor not delegated by the user",
    ),
    Row(
        "user delegated to another agent",
        chat(**DELEGATED, delegates=[OTHER_AGENT]),
        False,
        ("agent-not-delegated",),
        "actor not delegated by the user",
    ),
    Row(
        "scope not delegated",
        image(**{**DELEGATED, "groups": ["designers"], "aud": ["image-models"]}),
        False,
        ("agent-delegated-scope",),
        "scope not delegated",
    ),
    Row(
        "stale consent",
        chat(**DELEGATED, auth_age=301),
        False,
        ("agent-consent-stale",),
        "consent is stale",
    ),
    Row(
        "consent at the limit is fresh",
        chat(**DELEGATED, auth_age=290),
        True,
        ("users-chat-by-group",),
        ALLOWED,
    ),
    Row(
        "no consent time at all: stale, not error",
        chat(**DELEGATED, auth_time=None),
        False,
        ("agent-consent-stale",),
        "consent is stale",
    ),
    Row(
        "stale consent does not matter for reading a result",
        result(**{**DELEGATED, "aud": ["lab-services"], "scope": "result:read"}, auth_age=3600),
        True,
        ("users-read-own-results",),
        ALLOWED,
    ),
    Row(
        "not delegated and stale: both forbids decide",
        chat(**DELEGATED, delegates=[OTHER_AGENT], auth_age=3600),
        False,
        ("agent-consent-stale", "agent-not-delegated"),
        "actor not delegated by the user",
    ),
    Row(
        "agent acting with no user",
        chat(azp=AGENT, sub="agent-account-id", groups=None, delegates=None),
        False,
        ("forbid-agent-without-user",),
        "agent acting with no user",
    ),
    Row(
        "nested act is informational only",
        chat(**{**DELEGATED, "act": {"sub": AGENT, "act": {"sub": OTHER_AGENT}}}),
        True,
        ("users-chat-by-group",),
        ALLOWED,
    ),
    Row(
        "Keycloak's act: agent in client_id, its account in sub",
        chat(**{**DELEGATED, "act": {"sub": "agent-account-id", "client_id": AGENT}}),
        True,
        ("users-chat-by-group",),
        ALLOWED,
    ),
    Row(
        "Keycloak's act naming an agent the user never delegated to",
        chat(
            **{
                **DELEGATED,
                "azp": OTHER_AGENT,
                "act": {"sub": "other-account-id", "client_id": OTHER_AGENT},
            }
        ),
        False,
        ("agent-not-delegated",),
        "actor not delegated by the user",
    ),
    Row(
        "revoked agent",
        chat(**DELEGATED),
        False,
        ("forbid-revoked-subject",),
        "subject revoked",
        revoke=(("subject", AGENT),),
    ),
    Row(
        "actor that is not the token's client",
        chat(**{**DELEGATED, "azp": OTHER_AGENT}),
        False,
        (),
        "actor is not the token's client",
    ),
    Row(
        "actor that is not an agent",
        chat(**{**DELEGATED, "azp": CALLER, "act": {"sub": CALLER}}),
        False,
        (),
        "actor is not an agent of this trust domain",
    ),
    Row(
        "gateway's actor differs from the token's",
        chat(**DELEGATED),
        False,
        (),
        "actor does not match the token",
        body={"subject": {"type": "user", "id": "alice-id", "properties": {"actor": OTHER_AGENT}}},
    ),
    # Sequence 1: service -> service.
    Row(
        "service calls its declared target",
        call(**SERVICE),
        True,
        ("services-call-with-scope",),
        ALLOWED,
    ),
    Row(
        "service calls an undeclared target",
        call(service_id("vault-admin"), **SERVICE),
        False,
        ("service-undeclared-target",),
        "target not declared",
    ),
    Row(
        "service that declared nothing: deny, not error",
        call(**{**SERVICE, "azp": service_id("report-service")}),
        False,
        ("service-undeclared-target",),
        "target not declared",
    ),
    Row(
        "service token without its scope",
        call(**{**SERVICE, "scope": "chat:invoke"}),
        False,
        (),
        NO_PERMIT,
    ),
    Row(
        "service token on a model",
        chat(**{**SERVICE, "aud": ["chat-models"], "scope": "chat:invoke"}),
        False,
        (),
        NO_PERMIT,
    ),
    Row(
        "revoked service",
        call(**SERVICE),
        False,
        ("forbid-revoked-subject",),
        "subject revoked",
        revoke=(("subject", CALLER),),
    ),
    # Token problems surface as 401 before any policy runs.
    Row(
        "token for another audience",
        chat(aud=["image-models"]),
        False,
        (),
        "wrong audience",
        status=401,
    ),
    Row(
        "gateway's subject differs from the token's",
        chat(),
        False,
        (),
        "subject does not match the token",
        body={"subject": {"type": "user", "id": "bob-id"}},
    ),
]


@pytest.fixture(scope="module")
def mint() -> TokenMint:
    return TokenMint()


@pytest.fixture(scope="module")
def service(tmp_path_factory, mint):
    with running_decision_service(
        service_config(tmp_path_factory.mktemp("decision"), mint)
    ) as running:
        yield running


def body_for(row: Row, mint: TokenMint) -> dict:
    claims = dict(row.request["claims"])
    # Consent ages are relative to the moment the token is made, not to when the table was.
    if "auth_age" in claims:
        claims["auth_time"] = int(time.time()) - claims.pop("auth_age")
    body = {
        "subject": {"type": "user", "id": claims.get("sub", "alice-id")},
        "action": {"name": row.request["action"]},
        "resource": row.request["resource"],
        "context": {"token": mint.token(**claims), "correlation_id": row.name},
    }
    body.update(row.body)
    return body


def revoke(service, row: Row) -> None:
    for kind, value in row.revoke:
        answer = httpx.post(
            f"{service.url}/admin/v1/revocations",
            json={
                "kind": kind,
                "value": value,
                "event_id": f"{row.name}:{value}",
                "reason": "test",
            },
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=5,
        )
        assert answer.status_code in (200, 201), answer.text


@pytest.fixture
def clean_deny_list(service):
    # Rows revoke different things; each row starts with an empty list.
    yield
    with service.service.deny_list._lock:
        service.service.deny_list._db.execute("DELETE FROM revocations")
        service.service.deny_list._live.clear()


def test_the_table_covers_every_sequence_and_denial():
    assert len(ROWS) >= 30
    assert len({r.name for r in ROWS}) == len(ROWS)
    decided = {p for r in ROWS for p in r.policies}
    from services.decision.policies import load_bundle
    from tests.decision_peer import POLICY_DIR

    assert decided == set(load_bundle(POLICY_DIR).policies), "every policy decides some row"


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_row_through_the_http_api(row, service, mint, clean_deny_list):
    revoke(service, row)
    answer = httpx.post(f"{service.url}/access/v1/evaluation", json=body_for(row, mint), timeout=5)
    assert answer.status_code == 200
    got = answer.json()
    assert got["decision"] is row.allowed
    assert got["context"]["status"] == row.expected_status
    assert tuple(got["context"]["policies"]) == row.policies
    assert got["context"]["reason"] == row.reason
    assert got["context"]["correlation_id"] == row.name


def _validate_lengths(value: Any, shape, where: str) -> list[str]:
    """What botocore's validator leaves to the server: max lengths and the ActionType pattern."""
    problems = []
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            if name in value:
                problems += _validate_lengths(value[name], member, f"{where}.{name}")
    elif shape.type_name == "map":
        for k, v in value.items():
            problems += _validate_lengths(v, shape.value, f"{where}.{k}")
    elif shape.type_name == "list":
        for i, v in enumerate(value):
            problems += _validate_lengths(v, shape.member, f"{where}[{i}]")
    elif shape.type_name == "string":
        if "max" in shape.metadata and len(value) > shape.metadata["max"]:
            problems.append(f"{where}: longer than {shape.metadata['max']}")
        if shape.name == "ActionType" and not value.endswith("::Action"):
            problems.append(f"{where}: not an action type")
    return problems


@pytest.fixture(scope="module")
def is_authorized_shape():
    model = botocore.session.get_session().get_service_model("verifiedpermissions")
    return model.operation_model("IsAuthorized").input_shape


def aws_rows(mint, service):
    """(row, prepared Cedar request) for each row that reaches the policies."""
    out = []
    for row in ROWS:
        prepared = service.service.prepare(body_for(row, mint))
        if prepared.request is not None:
            out.append((row, prepared.request))
    return out


def test_the_aws_form_of_every_row_validates_and_answers_the_same(
    service, mint, is_authorized_shape, clean_deny_list
):
    # Every built request also passes cedarpy's check against the schema here, which the
    # service skips at run time.
    local = LocalBackend(service.service.backend.bundle, validate_requests=True)
    checked = 0
    for row, request in aws_rows(mint, service):
        revoke(service, row)
        # Prepare again after revoking, so the deny-list flags are in this row's request.
        request = service.service.prepare(body_for(row, mint)).request
        params = request.to_verified_permissions(STORE_ID)
        report = ParamValidator().validate(params, is_authorized_shape)
        assert not report.has_errors(), f"{row.name}: {report.generate_report()}"
        assert _validate_lengths(params, is_authorized_shape, "IsAuthorized") == []
        back = CedarRequest.from_verified_permissions(params)
        assert back == request, row.name
        decision = local.decide(back)
        assert (decision.allowed, decision.policies, decision.errors) == (
            row.allowed,
            row.policies,
            (),
        ), row.name
        with service.service.deny_list._lock:
            service.service.deny_list._db.execute("DELETE FROM revocations")
            service.service.deny_list._live.clear()
        checked += 1
    assert checked >= 30


def test_the_validator_catches_a_wrong_aws_form(is_authorized_shape, service, mint):
    _row, request = aws_rows(mint, service)[0]
    params = request.to_verified_permissions(STORE_ID)
    params["context"]["contextMap"]["now"] = {"long": "soon"}
    del params["action"]["actionType"]
    report = ParamValidator().validate(params, is_authorized_shape).generate_report()
    assert "actionType" in report and "now" in report


def test_the_verified_permissions_backend_sends_each_row_and_maps_policy_ids(service, mint):
    """What the backend sends (checked by the real client's parameter validation and the
    stub's expected parameters) and how it maps the store's policy ids back to @ids.

    The stub's answers are computed by cedarpy, so this says nothing about how Verified
    Permissions itself evaluates; only a live aws stack shows that."""
    local = LocalBackend(service.service.backend.bundle)
    names = list(service.service.backend.bundle.policies)
    vp_ids = {f"vp-{i:04d}": name for i, name in enumerate(names)}
    by_name = {v: k for k, v in vp_ids.items()}
    client = boto3.client(
        "verifiedpermissions",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    backend = VerifiedPermissionsBackend(client, STORE_ID, vp_ids)
    rows = aws_rows(mint, service)
    with Stubber(client) as stub:
        for _row, request in rows:
            params = request.to_verified_permissions(STORE_ID)
            answer = local.decide(CedarRequest.from_verified_permissions(params))
            stub.add_response(
                "is_authorized",
                {
                    "decision": "ALLOW" if answer.allowed else "DENY",
                    "determiningPolicies": [{"policyId": by_name[p]} for p in answer.policies],
                    "errors": [],
                },
                expected_params=params,
            )
        # No revocations here, so compare with the local answer to the same request.
        answers = []
        for row, request in rows:
            decision, expected = backend.decide(request), local.decide(request)
            assert (decision.allowed, decision.policies) == (expected.allowed, expected.policies)
            assert decision.errors == (), row.name
            answers.append(decision.allowed)
        stub.assert_no_pending_responses()
    assert True in answers and False in answers


def test_a_verified_permissions_failure_is_a_deny(service, mint):
    client = boto3.client(
        "verifiedpermissions",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    backend = VerifiedPermissionsBackend(client, STORE_ID, {})
    _row, request = aws_rows(mint, service)[0]
    with Stubber(client) as stub:
        stub.add_client_error("is_authorized", "AccessDeniedException", "no", 403)
        stub.add_response(
            "is_authorized",
            {
                "decision": "ALLOW",
                "determiningPolicies": [],
                "errors": [{"errorDescription": "boom"}],
            },
        )
        refused = backend.decide(request)
        errored = backend.decide(request)
    assert not refused.allowed and "AccessDeniedException" in refused.errors[0]
    assert not errored.allowed and errored.errors == ("boom",)


def test_cedarpy_and_the_builder_agree_on_namespaced_types(service, mint):
    _row, request = aws_rows(mint, service)[0]
    types = {request.principal["type"], request.resource["type"], request.action["type"]}
    types |= {e["uid"]["type"] for e in request.entities}
    assert all(t.startswith("IdentityLab::") for t in types)
    bad = {**request.to_cedarpy(), "principal": {"type": "User", "id": "alice-id"}}
    bundle = service.service.backend.bundle
    answer = cedarpy.is_authorized(bad, bundle.policy_set, [], bundle.schema)
    assert not answer.allowed and answer.diagnostics.errors
