"""One request builder: an AuthZEN request plus verified claims -> the Cedar request.

The Cedar request (principal, action, resource, context, entities) is built once, in Cedar's
JSON form, and rendered two ways: for cedarpy (`to_cedarpy`) and for Verified Permissions
`IsAuthorized` (`to_verified_permissions`). `from_verified_permissions` reads the AWS form
back, so tests can show both backends answer the same question.

Every type is namespaced (IdentityLab::...): a namespaced schema with unqualified names in
requests fails validation in confusing ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.decision.policies import NAMESPACE
from services.decision.tokens import Claims

AGENTS_NAMESPACE = "lab-agents"
SERVICES_NAMESPACE = "lab-services"
MODELS = ("chat", "image")
MAX_ID_LENGTH = 512


@dataclass(frozen=True)
class ActionSpec:
    resource_type: str
    """AuthZEN resource type the action applies to."""
    audience: str
    """The token audience the action requires (lab.naming.Audience)."""


# Audiences spelled as in lab/naming.py's Audience; a test keeps them equal.
ACTIONS: dict[str, ActionSpec] = {
    "invoke_chat_model": ActionSpec("model", "chat-models"),
    "generate_image": ActionSpec("model", "image-models"),
    "call_service": ActionSpec("service", "lab-services"),
    "read_result": ActionSpec("result", "lab-services"),
}

_CEDAR_TYPES = {"model": "Model", "service": "Service", "result": "Result"}


class RequestDeniedError(Exception):
    """The request cannot be put to the policies; `reason` goes back with status 403."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def uid(type_: str, id_: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{type_}", "id": id_}


def ref(type_: str, id_: str) -> dict[str, Any]:
    """An entity reference as a Cedar JSON value."""
    return {"__entity": uid(type_, id_)}


@dataclass(frozen=True)
class Directory:
    """What the service knows beyond the token: the trust domain and declared service targets."""

    trust_domain: str
    service_targets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Caller SPIFFE ID -> the SPIFFE IDs it may call."""

    def _prefix(self, namespace: str) -> str:
        return f"spiffe://{self.trust_domain}/ns/{namespace}/sa/"

    def is_agent(self, client: str | None) -> bool:
        return client is not None and _under(client, self._prefix(AGENTS_NAMESPACE))

    def is_service(self, client: str | None) -> bool:
        return client is not None and _under(client, self._prefix(SERVICES_NAMESPACE))


def _under(spiffe_id: str, prefix: str) -> bool:
    rest = spiffe_id[len(prefix) :]
    return spiffe_id.startswith(prefix) and bool(rest) and "/" not in rest


@dataclass(frozen=True)
class AuthzenRequest:
    """The parts of an AuthZEN evaluation request the service reads."""

    action: str
    resource_type: str
    resource_id: str
    token: Any
    subject_id: str | None = None
    subject_actor: str | None = None
    resource_owner: str | None = None
    correlation_id: str | None = None

    @classmethod
    def parse(cls, body: Any) -> AuthzenRequest:
        """Read an evaluation body; RequestDeniedError names the first thing wrong with it."""
        if not isinstance(body, dict):
            raise RequestDeniedError("malformed request: not a JSON object")
        subject = _object(body, "subject", required=False)
        action = _object(body, "action")
        resource = _object(body, "resource")
        context = _object(body, "context")
        subject_props = _object(subject, "properties", required=False)
        resource_props = _object(resource, "properties", required=False)
        return cls(
            action=_text(action, "name", "action"),
            resource_type=_text(resource, "type", "resource"),
            resource_id=_text(resource, "id", "resource"),
            token=context.get("token"),
            subject_id=_text(subject, "id", "subject", required=False),
            subject_actor=_text(subject_props, "actor", "subject.properties", required=False),
            resource_owner=_text(resource_props, "owner", "resource.properties", required=False),
            correlation_id=_text(context, "correlation_id", "context", required=False),
        )


def _object(parent: Mapping[str, Any], name: str, required: bool = True) -> dict[str, Any]:
    value = parent.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise RequestDeniedError(f"malformed request: {name} must be an object")
    return value


def _text(parent: Mapping[str, Any], name: str, where: str, required: bool = True) -> str | None:
    value = parent.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise RequestDeniedError(f"malformed request: {where}.{name} must be a non-empty string")
    return value


@dataclass(frozen=True)
class Revocation:
    session: bool
    subject: bool


@dataclass(frozen=True)
class CedarRequest:
    """A Cedar authorization request in Cedar's JSON form, for either backend."""

    principal: dict[str, str]
    action: dict[str, str]
    resource: dict[str, str]
    context: dict[str, Any]
    entities: list[dict[str, Any]]

    def to_cedarpy(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "context": self.context,
        }

    def to_verified_permissions(self, policy_store_id: str) -> dict[str, Any]:
        """Keyword arguments of `verifiedpermissions.is_authorized`."""
        return {
            "policyStoreId": policy_store_id,
            "principal": _avp_uid(self.principal),
            "action": {"actionType": self.action["type"], "actionId": self.action["id"]},
            "resource": _avp_uid(self.resource),
            "context": {"contextMap": {k: _avp_value(v) for k, v in self.context.items()}},
            "entities": {
                "entityList": [
                    {
                        "identifier": _avp_uid(e["uid"]),
                        "attributes": {k: _avp_value(v) for k, v in e["attrs"].items()},
                        "parents": [_avp_uid(p) for p in e["parents"]],
                    }
                    for e in self.entities
                ]
            },
        }

    @classmethod
    def from_verified_permissions(cls, params: Mapping[str, Any]) -> CedarRequest:
        """The Cedar JSON form of `IsAuthorized` arguments: the inverse of the above."""
        return cls(
            principal=_cedar_uid(params["principal"]),
            action={"type": params["action"]["actionType"], "id": params["action"]["actionId"]},
            resource=_cedar_uid(params["resource"]),
            context={k: _cedar_value(v) for k, v in params["context"]["contextMap"].items()},
            entities=[
                {
                    "uid": _cedar_uid(e["identifier"]),
                    "attrs": {k: _cedar_value(v) for k, v in e["attributes"].items()},
                    "parents": [_cedar_uid(p) for p in e["parents"]],
                }
                for e in params["entities"]["entityList"]
            ],
        )


def _avp_uid(cedar_uid: Mapping[str, str]) -> dict[str, str]:
    return {"entityType": cedar_uid["type"], "entityId": cedar_uid["id"]}


def _cedar_uid(avp_uid: Mapping[str, str]) -> dict[str, str]:
    return {"type": avp_uid["entityType"], "id": avp_uid["entityId"]}


def _avp_value(value: Any) -> dict[str, Any]:
    # bool before int: in Python a bool is an int, in Cedar it is not.
    if isinstance(value, bool):
        return {"boolean": value}
    if isinstance(value, int):
        return {"long": value}
    if isinstance(value, str):
        return {"string": value}
    if isinstance(value, list):
        return {"set": [_avp_value(v) for v in value]}
    if isinstance(value, dict) and set(value) == {"__entity"}:
        return {"entityIdentifier": _avp_uid(value["__entity"])}
    if isinstance(value, dict):
        return {"record": {k: _avp_value(v) for k, v in value.items()}}
    raise TypeError(f"no Verified Permissions form for {type(value).__name__}")


def _cedar_value(value: Mapping[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    if kind in ("boolean", "long", "string"):
        return inner
    if kind == "set":
        return [_cedar_value(v) for v in inner]
    if kind == "entityIdentifier":
        return {"__entity": _cedar_uid(inner)}
    if kind == "record":
        return {k: _cedar_value(v) for k, v in inner.items()}
    raise ValueError(f"the lab never sends a {kind} attribute value")


def build(
    claims: Claims,
    request: AuthzenRequest,
    directory: Directory,
    revocation: Revocation,
    now: int,
    consent_max_age: int,
) -> CedarRequest:
    """The Cedar request for `request`, from verified `claims` only."""
    spec = ACTIONS.get(request.action)
    if spec is None:
        raise RequestDeniedError(f"unknown action {request.action!r}")
    if request.resource_type != spec.resource_type:
        raise RequestDeniedError(
            f"{request.action} applies to {spec.resource_type}, not {request.resource_type}"
        )
    # The body's subject and actor are the gateway's reading of the token; they must agree.
    if request.subject_id is not None and request.subject_id != claims.subject:
        raise RequestDeniedError("subject does not match the token")
    if request.subject_actor is not None and request.subject_actor != claims.actor:
        raise RequestDeniedError("actor does not match the token")

    entities: dict[tuple[str, str], dict[str, Any]] = {}
    context: dict[str, Any] = {
        "scopes": sorted(claims.scopes),
        "now": now,
        "consentMaxAgeSeconds": consent_max_age,
        "sessionRevoked": revocation.session,
        "subjectRevoked": revocation.subject,
    }
    if claims.session_id is not None:
        context["sessionId"] = claims.session_id
    if claims.auth_time is not None:
        context["authTime"] = claims.auth_time

    if claims.actor is not None:
        if not directory.is_agent(claims.actor):
            raise RequestDeniedError("actor is not an agent of this trust domain")
        if claims.client != claims.actor:
            raise RequestDeniedError("actor is not the token's client")
        context["delegation"] = {
            "actor": ref("Agent", claims.actor),
            "scopes": sorted(claims.scopes),
            "delegates": [ref("Agent", d) for d in claims.delegates],
        }
        principal = _user(claims, entities)
    elif directory.is_agent(claims.client):
        # An agent's own token with no user behind it: the policies refuse it by type.
        principal = _add(entities, uid("Agent", claims.client), {})
    elif directory.is_service(claims.client):
        principal = _service(claims.client, directory, entities)
    else:
        principal = _user(claims, entities)

    resource = _resource(request, directory, entities)
    return CedarRequest(
        principal=principal,
        action={"type": f"{NAMESPACE}::Action", "id": request.action},
        resource=resource,
        context=context,
        entities=list(entities.values()),
    )


def _add(
    entities: dict[tuple[str, str], dict[str, Any]],
    entity_uid: dict[str, str],
    attrs: dict[str, Any],
    parents: list[dict[str, str]] | None = None,
) -> dict[str, str]:
    key = (entity_uid["type"], entity_uid["id"])
    # The first description of an entity wins (a service calling itself is one entity).
    entities.setdefault(key, {"uid": entity_uid, "attrs": attrs, "parents": parents or []})
    return entity_uid


def _user(claims: Claims, entities: dict) -> dict[str, str]:
    groups = [_add(entities, uid("Group", g), {}) for g in claims.groups]
    attrs = {"username": claims.username} if claims.username is not None else {}
    return _add(entities, uid("User", claims.subject), attrs, groups)


def _service(spiffe_id: str, directory: Directory, entities: dict) -> dict[str, str]:
    targets = directory.service_targets.get(spiffe_id)
    attrs = {} if targets is None else {"targets": [ref("Service", t) for t in targets]}
    return _add(entities, uid("Service", spiffe_id), attrs)


def _resource(request: AuthzenRequest, directory: Directory, entities: dict) -> dict[str, str]:
    type_ = _CEDAR_TYPES[request.resource_type]
    if type_ == "Model":
        if request.resource_id not in MODELS:
            raise RequestDeniedError(f"unknown model {request.resource_id!r}")
        return _add(entities, uid("Model", request.resource_id), {"kind": request.resource_id})
    if type_ == "Service":
        if not request.resource_id.startswith("spiffe://"):
            raise RequestDeniedError("a service is named by its SPIFFE ID")
        return _service(request.resource_id, directory, entities)
    attrs = {}
    # TODO: a result's owner is the enforcement point's word (resource.properties.owner), the
    # one fact not taken from the verified token; it can go once results live in a store the
    # service reads itself. No lab route sends read_result yet.
    if request.resource_owner is not None:
        attrs["owner"] = ref("User", request.resource_owner)
    return _add(entities, uid("Result", request.resource_id), attrs)
