"""Two backends behind one interface: cedarpy on the repo's files, or Verified Permissions.

Both take the same `CedarRequest` and return a `Decision` naming the deciding policies by
their @id. A backend error never becomes an allow: errors are returned, and the service
denies whenever a decision carries any.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import cedarpy

from services.decision.policies import PolicyBundle
from services.decision.request_builder import CedarRequest


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policies: tuple[str, ...]
    """@ids of the policies that decided (permits for an allow, forbids for a deny)."""
    errors: tuple[str, ...] = ()


class Backend(Protocol):
    name: str

    def decide(self, request: CedarRequest) -> Decision: ...


class LocalBackend:
    """cedarpy with the policies and schema parsed once at start.

    Policies are validated strictly against the schema when they load. Requests come from the
    one request builder, whose every shape the tests validate against the schema
    (`validate_requests=True`); checking each request again at run time costs about a third
    of a decision, so the service does not.
    """

    name = "local"

    def __init__(self, bundle: PolicyBundle, validate_requests: bool = False):
        self.bundle = bundle
        self.validate_requests = validate_requests
        # Without the schema, the action hierarchy travels with every request's entities.
        self._actions = [] if validate_requests else bundle.action_entities

    def decide(self, request: CedarRequest) -> Decision:
        schema = self.bundle.schema if self.validate_requests else None
        try:
            entities = cedarpy.Entities.from_json_str(
                json.dumps([*request.entities, *self._actions]), schema
            )
            result = cedarpy.is_authorized(
                request.to_cedarpy(), self.bundle.policy_set, entities, schema
            )
        except ValueError as err:
            return Decision(False, (), (f"request does not fit the schema: {err}",))
        names = result.diagnostics.id_annotations_by_reason
        policies = tuple(sorted(names.get(r, r) for r in result.diagnostics.reasons))
        errors = tuple(result.diagnostics.errors)
        if result.decision == cedarpy.Decision.NoDecision and not errors:
            errors = ("cedar made no decision",)
        return Decision(result.allowed and not errors, policies, errors)


class VerifiedPermissionsBackend:
    """`IsAuthorized` against the stack's policy store, through a boto3 client."""

    name = "verified-permissions"

    def __init__(self, client: Any, policy_store_id: str, policy_ids: Mapping[str, str]):
        self.client = client
        self.policy_store_id = policy_store_id
        self.policy_ids = dict(policy_ids)
        """Verified Permissions policy id -> the policy's @id (the store assigns its own)."""

    def decide(self, request: CedarRequest) -> Decision:
        params = request.to_verified_permissions(self.policy_store_id)
        try:
            answer = self.client.is_authorized(**params)
        except Exception as err:  # any client or service failure is a deny
            return Decision(False, (), (f"verified permissions: {type(err).__name__}: {err}",))
        policies = tuple(
            sorted(
                self.policy_ids.get(p["policyId"], p["policyId"])
                for p in answer.get("determiningPolicies", [])
            )
        )
        errors = tuple(e.get("errorDescription", "error") for e in answer.get("errors", []))
        allowed = answer.get("decision") == "ALLOW" and not errors
        return Decision(allowed, policies, errors)
