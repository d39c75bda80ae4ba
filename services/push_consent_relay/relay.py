"""The relay between the IdP's CIBA authentication channel and the approver's device.

    IdP  --POST /ciba (Bearer <channel token>)-->  relay  --SNS publish-->  approver
    approver  --POST /ciba/answers/<id> (Bearer <approver token>)-->  relay
    relay  --POST <realm>/protocol/openid-connect/ext/ciba/auth/callback (same Bearer)-->  IdP

Keycloak signs the channel token with the realm key; the relay checks it against the
deploy-time key, issuer and expiry before it pushes anything. The push names who asks (the
client, i.e. the agent), for whom, which scopes, the binding message and a hash of the whole
request; an answer counts only if it echoes that hash, so an approval cannot be replayed onto
a different request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.envconfig import Env
from services.common.web import BodyError, read_json

log = logging.getLogger("push_consent_relay")

CALLBACK_PATH = "/protocol/openid-connect/ext/ciba/auth/callback"
# Keycloak's AuthenticationChannelResponse statuses.
APPROVED, DENIED = "SUCCEED", "UNAUTHORIZED"
MAX_PENDING = 1000


def action_hash(agent: str, user: str, scopes: list[str], binding_message: str, acr: str) -> str:
    """SHA-256 over the canonical JSON of everything the approver is shown."""
    canonical = json.dumps(
        {
            "agent": agent,
            "user": user,
            "scopes": sorted(scopes),
            "binding_message": binding_message,
            "acr_values": acr,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Pending:
    channel_token: str = field(repr=False)
    action_hash: str
    expires_at: int


@dataclass
class Relay:
    sns: Any
    topic_arn: str
    idp_issuer: str
    """The realm issuer: `iss` and `aud` of the channel token."""
    idp_public_key: Any = field(repr=False)
    idp_realm_url: str = ""
    """Where the relay reaches the realm (in-cluster); the callback path is appended."""
    answer_url: str = ""
    """Base URL approvers answer at (the relay's own address as they see it)."""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))
    # TODO: waiting requests live in memory, so a relay restart drops them (the IdP then
    # times them out); keep them on a volume once the relay runs more than one replica.
    pending: dict[str, Pending] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify_channel_token(self, token: str) -> dict[str, Any]:
        return jwt.decode(
            token,
            self.idp_public_key,
            algorithms=["RS256"],
            issuer=self.idp_issuer,
            audience=self.idp_issuer,
            options={"require": ["iss", "aud", "exp", "jti", "sub", "azp"]},
        )

    def request(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        """Push one CIBA request to the approver; returns the published message."""
        claims = self.verify_channel_token(token)
        scopes = str(body.get("scope") or "").split()
        user = str(body.get("login_hint") or claims["sub"])
        binding = str(body.get("binding_message") or "")
        acr = str(body.get("acr_values") or "")
        digest = action_hash(claims["azp"], user, scopes, binding, acr)
        request_id = claims["jti"]
        message = {
            "type": "ciba-consent-request",
            "request_id": request_id,
            "user": user,
            "subject": claims["sub"],
            "agent": claims["azp"],
            "scopes": scopes,
            "binding_message": binding,
            "acr_values": acr,
            "consent_required": bool(body.get("is_consent_required", True)),
            "action_hash": digest,
            "expires_at": claims["exp"],
            "answer_url": f"{self.answer_url.rstrip('/')}/ciba/answers/{request_id}",
        }
        with self.lock:
            now = time.time()
            self.pending = {k: p for k, p in self.pending.items() if p.expires_at > now}
            if len(self.pending) >= MAX_PENDING:
                raise OverflowError("too many consent requests waiting for an answer")
            self.pending[request_id] = Pending(token, digest, int(claims["exp"]))
        try:
            self.sns.publish(
                TopicArn=self.topic_arn,
                Message=json.dumps(message, sort_keys=True),
                MessageAttributes={"agent": {"DataType": "String", "StringValue": claims["azp"]}},
            )
        except Exception:
            with self.lock:
                self.pending.pop(request_id, None)
            raise
        log.info("pushed consent request %s from %s for %s", request_id, claims["azp"], user)
        return message

    def answer(self, request_id: str, approve: bool, echoed_hash: str) -> tuple[int, str]:
        """Relay the approver's answer to the IdP; (HTTP status for the approver, detail)."""
        with self.lock:
            waiting = self.pending.get(request_id)
        if waiting is None or waiting.expires_at <= time.time():
            return 404, "no such consent request waiting (answered, expired or unknown)"
        if not hmac.compare_digest(waiting.action_hash, echoed_hash):
            return 409, "action_hash does not match the request that was pushed"
        status = APPROVED if approve else DENIED
        try:
            response = self.http.post(
                f"{self.idp_realm_url.rstrip('/')}{CALLBACK_PATH}",
                json={"status": status},
                headers={"Authorization": f"Bearer {waiting.channel_token}"},
            )
        except httpx.HTTPError as err:
            return 502, f"the IdP callback failed: {err}"
        if response.status_code >= 300:
            return 502, f"the IdP answered {response.status_code} to the callback"
        with self.lock:
            self.pending.pop(request_id, None)
        log.info("consent request %s answered %s", request_id, status)
        return 200, status


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def create_app(relay: Relay, approver_token: str) -> Starlette:
    async def ciba(request: Request) -> JSONResponse:
        token = _bearer(request)
        if token is None:
            return JSONResponse({"error": "bearer token required"}, status_code=401)
        try:
            body = await read_json(request)
        except BodyError as err:
            return JSONResponse({"error": f"body must be JSON: {err}"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        try:
            relay.request(token, body)
        except jwt.PyJWTError as err:
            return JSONResponse({"error": f"channel token rejected: {err}"}, status_code=401)
        except OverflowError as err:
            return JSONResponse({"error": str(err)}, status_code=503)
        except Exception as err:
            log.exception("publishing the push failed")
            return JSONResponse({"error": f"push not sent: {type(err).__name__}"}, status_code=503)
        # 201 is the only answer Keycloak takes as "the device was notified".
        return JSONResponse({}, status_code=201)

    # TODO: one approver token answers for every user, and the scopes and binding message come
    # from the IdP's body, outside the channel token's signature; goes once an approval is
    # bound to the user (a per-user device key signing the action hash).
    async def answers(request: Request) -> JSONResponse:
        given = _bearer(request) or ""
        if not hmac.compare_digest(given.encode(), approver_token.encode()):
            return JSONResponse({"error": "approver token required"}, status_code=401)
        try:
            body = await read_json(request)
            decision = body["decision"]
            echoed = str(body["action_hash"])
        except (BodyError, KeyError, TypeError):
            return JSONResponse(
                {"error": 'body must be {"decision": "approve"|"deny", "action_hash": ...}'},
                status_code=400,
            )
        if decision not in ("approve", "deny"):
            return JSONResponse({"error": "decision is approve or deny"}, status_code=400)
        status, detail = relay.answer(
            request.path_params["request_id"], decision == "approve", echoed
        )
        key = "status" if status == 200 else "error"
        return JSONResponse({key: detail}, status_code=status)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/ciba", ciba, methods=["POST"]),
            Route("/ciba/answers/{request_id}", answers, methods=["POST"]),
            Route("/healthz", health),
            Route("/readyz", health),
        ]
    )


def load_verification_key(pem: str) -> Any:
    """The realm's public key from its SPKI PEM or from its certificate's PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if "BEGIN CERTIFICATE" in pem:
        return x509.load_pem_x509_certificate(pem.encode()).public_key()
    return load_pem_public_key(pem.encode())


def from_env(env: Env | None = None) -> tuple[Relay, str]:
    import boto3

    from services.common.web import http_client

    env = env or Env("push-consent-relay")
    relay = Relay(
        sns=boto3.client("sns", region_name=env.text("AWS_REGION")),
        topic_arn=env.text("PUSH_TOPIC_ARN"),
        idp_issuer=env.text("IDP_ISSUER"),
        idp_public_key=load_verification_key(env.text("IDP_REALM_KEY_PEM")),
        idp_realm_url=env.text("IDP_REALM_URL"),
        answer_url=env.text("ANSWER_URL"),
        # The IdP's public URL is TLS under the lab root (CA_BUNDLE).
        http=http_client(10.0),
    )
    return relay, env.text("APPROVER_TOKEN")


def main() -> None:
    from services.common.web import serve

    relay, token = from_env(Env("push-consent-relay"))
    serve(create_app(relay, token), "push-consent-relay")


if __name__ == "__main__":
    main()
