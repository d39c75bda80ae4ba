"""The HTTP API: AuthZEN evaluation, the deny-list admin API, health.

    POST /access/v1/evaluation   the gateway asks; answers {"decision", "context"}
    POST /admin/v1/revocations   the CAEP receiver adds a session or subject (bearer token)
    GET  /admin/v1/revocations   live entries
    GET  /healthz, /readyz

Every evaluation answers HTTP 200 with `decision` and `context.status` (200 allow, 401 token
problem, 403 policy deny or any other error); a body that is not an AuthZEN request answers
400 with a deny. One JSON log line per decision.
"""

from __future__ import annotations

import hmac
import json
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.web import MAX_BODY_BYTES, BodyError, read_json
from services.decision.backends import Backend, Decision, LocalBackend, VerifiedPermissionsBackend
from services.decision.config import Config
from services.decision.deny_list import KINDS, ConflictError, DenyList
from services.decision.policies import PolicyBundle, load_bundle
from services.decision.request_builder import (
    ACTIONS,
    AuthzenRequest,
    CedarRequest,
    Directory,
    RequestDeniedError,
    Revocation,
    build,
)
from services.decision.tokens import Claims, TokenError, TokenVerifier, load_key_files

LOG = logging.getLogger("services.decision")

# Why a forbid denied, by policy id; a test keeps this in step with the forbid policies.
DENY_REASONS = {
    "forbid-revoked-session": "session revoked",
    "forbid-revoked-subject": "subject revoked",
    "forbid-agent-without-user": "agent acting with no user",
    "agent-not-delegated": "actor not delegated by the user",
    "agent-delegated-scope": "scope not delegated",
    "agent-consent-stale": "consent is stale",
    "service-undeclared-target": "target not declared",
}


@dataclass
class Outcome:
    status: int
    reason: str
    policies: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.status == 200


@dataclass
class Prepared:
    parsed: AuthzenRequest
    claims: Claims | None = None
    request: CedarRequest | None = None
    outcome: Outcome | None = None


def deny_reason(policies: tuple[str, ...]) -> str:
    for policy, reason in DENY_REASONS.items():
        if policy in policies:
            return reason
    return "no policy permits"


class DecisionService:
    """Token verification, request building, a backend and the deny list, wired together."""

    def __init__(
        self,
        config: Config,
        backend: Backend,
        verifier: TokenVerifier,
        deny_list: DenyList,
        clock=time.time,
    ):
        self.config = config
        self.backend = backend
        self.verifier = verifier
        self.deny_list = deny_list
        self.clock = clock
        self.directory = Directory(config.trust_domain, config.service_targets)

    def prepare(self, body: Any) -> Prepared:
        """Everything before the backend: parse, verify the token, consult the deny list,
        build the Cedar request. `outcome` is set when the request is refused on the way."""
        parsed = AuthzenRequest.parse(body)
        spec = ACTIONS.get(parsed.action)
        if spec is None:
            return Prepared(parsed, outcome=Outcome(403, f"unknown action {parsed.action!r}"))
        now = int(self.clock())
        try:
            claims = self.verifier.verify(parsed.token, spec.audience, now)
        except TokenError as err:
            return Prepared(parsed, outcome=Outcome(401, err.reason))
        revocation = Revocation(
            session=self.deny_list.is_revoked("session", claims.session_id),
            subject=any(
                self.deny_list.is_revoked("subject", v)
                for v in (claims.subject, claims.actor, claims.client)
            ),
        )
        try:
            request = build(
                claims, parsed, self.directory, revocation, now, self.config.consent_max_age
            )
        except RequestDeniedError as err:
            return Prepared(parsed, claims, outcome=Outcome(403, err.reason))
        return Prepared(parsed, claims, request)

    async def evaluate(self, body: Any) -> Prepared:
        """The prepared request with its outcome, from the backend when it got that far."""
        prepared = self.prepare(body)
        if prepared.outcome is not None:
            return prepared
        if isinstance(self.backend, LocalBackend):
            decision = self.backend.decide(prepared.request)
        else:
            # A network call: keep the event loop free for other requests meanwhile.
            decision = await run_in_threadpool(self.backend.decide, prepared.request)
        prepared.outcome = _outcome(decision)
        return prepared


def _outcome(decision: Decision) -> Outcome:
    if decision.errors:
        return Outcome(403, f"policy evaluation error: {decision.errors[0]}", decision.policies)
    if decision.allowed:
        return Outcome(200, "allowed", decision.policies)
    return Outcome(403, deny_reason(decision.policies), decision.policies)


def _answer(outcome: Outcome, correlation_id: str, http_status: int = 200) -> JSONResponse:
    return JSONResponse(
        {
            "decision": outcome.allowed,
            "context": {
                "status": outcome.status,
                "reason": outcome.reason,
                "policies": list(outcome.policies),
                "correlation_id": correlation_id,
            },
        },
        status_code=http_status,
    )


def create_app(service: DecisionService) -> Starlette:
    async def evaluation(request: Request) -> JSONResponse:
        started = time.perf_counter()
        correlation_id = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        parsed = claims = None
        http_status = 200
        try:
            try:
                body = await read_json(request, MAX_BODY_BYTES)
            except BodyError as err:
                raise RequestDeniedError(str(err)) from None
            prepared = await service.evaluate(body)
            outcome, parsed, claims = prepared.outcome, prepared.parsed, prepared.claims
            correlation_id = parsed.correlation_id or correlation_id
        except RequestDeniedError as err:
            outcome, http_status = Outcome(403, err.reason), 400
        except Exception as err:  # never an allow, whatever went wrong
            LOG.exception("evaluation failed")
            outcome = Outcome(403, f"decision service error: {type(err).__name__}")
        _log_decision(service, outcome, parsed, claims, correlation_id, started)
        return _answer(outcome, correlation_id, http_status)

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            token.encode(), service.config.admin_token.encode()
        )

    def unauthorized() -> JSONResponse:
        return JSONResponse(
            {"error": "admin bearer token required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def add_revocation(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        try:
            body = await read_json(request, MAX_BODY_BYTES)
        except BodyError as err:
            return JSONResponse({"error": f"body must be JSON: {err}"}, status_code=400)
        problem = _revocation_problem(body)
        if problem:
            return JSONResponse({"error": problem}, status_code=400)
        try:
            entry, new = service.deny_list.add(
                body["kind"], body["value"], body["event_id"], body.get("reason", "")
            )
        except ConflictError as err:
            return JSONResponse({"error": str(err)}, status_code=409)
        LOG.info(json.dumps({"event": "revocation", "new": new, **entry.to_json()}, sort_keys=True))
        return JSONResponse(entry.to_json(), status_code=201 if new else 200)

    async def list_revocations(request: Request) -> JSONResponse:
        if not authorized(request):
            return unauthorized()
        return JSONResponse({"entries": [e.to_json() for e in service.deny_list.entries()]})

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        ready = service.deny_list.ready()
        return JSONResponse(
            {
                "status": "ready" if ready else "deny list unavailable",
                "backend": service.backend.name,
            },
            status_code=200 if ready else 503,
        )

    return Starlette(
        routes=[
            Route("/access/v1/evaluation", evaluation, methods=["POST"]),
            Route("/admin/v1/revocations", add_revocation, methods=["POST"]),
            Route("/admin/v1/revocations", list_revocations, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ]
    )


def _revocation_problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if body.get("kind") not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}"
    for name, limit in (("value", 2048), ("event_id", 256)):
        value = body.get(name)
        if not isinstance(value, str) or not value or len(value) > limit:
            return f"{name} must be a non-empty string of at most {limit} characters"
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 256:
        return "reason must be a string of at most 256 characters"
    return None


def _log_decision(service, outcome, parsed, claims, correlation_id, started) -> None:
    if not LOG.isEnabledFor(logging.INFO):
        return
    LOG.info(
        json.dumps(
            {
                "event": "decision",
                "correlation_id": correlation_id,
                "subject": claims.subject if claims else None,
                "actor": claims.actor if claims else None,
                "client": claims.client if claims else None,
                "action": parsed.action if parsed else None,
                "resource": f"{parsed.resource_type}:{parsed.resource_id}" if parsed else None,
                "decision": "allow" if outcome.allowed else "deny",
                "status": outcome.status,
                "reason": outcome.reason,
                "policies": list(outcome.policies),
                "backend": service.backend.name,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            },
            sort_keys=True,
        )
    )


def make_backend(config: Config, bundle: PolicyBundle) -> Backend:
    if config.backend == "local":
        return LocalBackend(bundle)
    import boto3
    from botocore.config import Config as BotoConfig

    client = boto3.client(
        "verifiedpermissions",
        region_name=config.aws_region,
        # Short timeouts and no retries: the gateway waits on this answer, and a slow
        # answer is a deny there anyway.
        config=BotoConfig(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1}),
    )
    return VerifiedPermissionsBackend(client, config.policy_store_id or "", config.policy_ids)


def service_from_config(config: Config) -> DecisionService:
    """Everything the service needs, loaded and checked; raises on any bad file."""
    bundle = load_bundle(config.policy_dir)
    keys = load_key_files(sorted(config.keys_dir.glob("*.pem")))
    verifier = TokenVerifier(
        keys,
        issuer=config.issuer,
        leeway=config.clock_skew,
        max_bytes=config.max_token_bytes,
        max_lifetime=config.max_token_lifetime,
        max_delegated_lifetime=config.max_delegated_token_lifetime,
    )
    deny_list = DenyList(config.deny_list_path, config.deny_list_retention)
    return DecisionService(config, make_backend(config, bundle), verifier, deny_list)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    LOG.handlers[:] = [handler]
    LOG.setLevel(level)
    LOG.propagate = False
