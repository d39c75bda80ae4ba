"""Take a task for a user, get the user's consent by push, act with a delegated token.

`POST /tasks {"user": "alice", "task": "..."}` runs the whole third sequence and answers with
the result and every step it took:

1. JWT-SVID from the Workload API, audience = the realm issuer;
2. CIBA backchannel request for the user, asking for the task's scope and for
   `delegation:client:<this agent's client id>` (the IdP pushes a consent request to the user's
   device), authenticated with the SVID, then polls until approved, denied or expired; the
   user's token then carries `may_act` naming this agent;
3. the agent's own token (client credentials, fresh SVID): the actor token;
4. token exchange (RFC 8693) with the user's token as subject_token and the agent's token as
   actor_token, for one audience and the task's scope, authenticated with a fresh SVID; the IdP
   keeps sub = the user and adds act = {sub: the agent's service account, client_id: its id};
5. the model through the gateway with the delegated token.

The protocol follows docs/identity-provider.md ("Sequence 3 step by step"); the request shapes
are the plain functions of services.common.oauth.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common import oauth
from services.common.chat import ask_model
from services.common.svid import JwtSvidSource
from services.common.web import BodyError, env, health_routes, http_client, read_json


@dataclass(frozen=True)
class AgentConfig:
    issuer: str
    """Realm issuer: the JWT-SVID audience, and where the agent reaches the IdP."""
    client_id: str
    """The agent's IdP client id: its SPIFFE ID."""
    chat_url: str
    chat_model: str
    audience: str = "chat-models"
    scope: str = "chat:invoke"
    max_polls: int = 60

    @classmethod
    def from_env(cls) -> AgentConfig:
        return cls(
            issuer=env("IDP_ISSUER"),
            client_id=env("CLIENT_ID"),
            chat_url=env("GATEWAY_URL").rstrip("/") + env("CHAT_PATH"),
            chat_model=env("CHAT_MODEL"),
            audience=env("DELEGATED_AUDIENCE", "chat-models"),
            scope=env("DELEGATED_SCOPE", "chat:invoke"),
            max_polls=int(env("CIBA_MAX_POLLS", "60")),
        )


def run_task(
    config: AgentConfig,
    svids: JwtSvidSource,
    http: httpx.Client,
    user: str,
    task: str,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The third sequence; raises OAuthError with the step's error when a step is refused."""
    post = oauth.form_poster(http)
    realm = oauth.Endpoints(config.issuer)
    steps: list[str] = []

    def svid() -> str:
        return svids.fetch(config.issuer)

    # The binding message is shown on the user's device; keep it short and unique.
    binding = f"agent task {secrets.token_hex(3)}"
    # Without the delegation scope the user's token has no may_act and the IdP will not let
    # this agent act for them.
    consent = oauth.consent_scope(config.scope, config.client_id)
    started = post(realm.ciba, oauth.ciba_request(user, consent, binding, config.client_id, svid()))
    steps.append(f"consent requested from {user} by push ({binding})")
    consented = oauth.poll_for_consent(
        post,
        realm.token,
        lambda: oauth.ciba_poll(started["auth_req_id"], config.client_id, svid()),
        interval=float(started.get("interval", 5)),
        expires_in=float(started.get("expires_in", 120)),
        max_polls=config.max_polls,
        sleep=sleep,
    )
    may_act = oauth.unverified_claims(consented["access_token"]).get("may_act")
    steps.append(f"{user} approved: may_act={may_act}")
    # The actor token is the agent's own client-credentials token; the IdP matches it against
    # the user's may_act and names it in act.
    actor = post(realm.token, oauth.client_credentials(config.client_id, svid()))
    steps.append(f"actor token: sub={oauth.unverified_claims(actor['access_token']).get('sub')}")
    delegated = post(
        realm.token,
        oauth.token_exchange(
            consented["access_token"],
            actor["access_token"],
            config.audience,
            config.scope,
            config.client_id,
            svid(),
        ),
    )
    claims = oauth.unverified_claims(delegated["access_token"])
    steps.append(
        f"token exchanged: sub={claims.get('sub')} act={claims.get('act')} aud={claims.get('aud')}"
    )
    answer = ask_model(http, config.chat_url, delegated["access_token"], config.chat_model, task)
    steps.append(f"gateway answered HTTP {answer.status}")
    return {
        "status": answer.status,
        "result": answer.content,
        "steps": steps,
        "delegated": {k: claims.get(k) for k in ("sub", "act", "aud", "scope", "azp", "exp")},
    }


def create_app(
    config: AgentConfig,
    svids: JwtSvidSource,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Starlette:
    http = client or http_client()

    async def tasks(request: Request) -> JSONResponse:
        try:
            body = await read_json(request)
            user, task = str(body["user"]), str(body["task"])
        except (BodyError, KeyError, TypeError):
            return JSONResponse(
                {"error": 'send JSON {"user": "<user name>", "task": "<text>"}'},
                status_code=400,
            )
        try:
            result = await run_in_threadpool(run_task, config, svids, http, user, task, sleep)
        except oauth.OAuthError as err:
            # A refused step is the answer, not a crash: say which and why.
            return JSONResponse(
                {"error": err.error, "description": err.description}, status_code=403
            )
        return JSONResponse(result, status_code=200 if result["status"] == 200 else 502)

    return Starlette(routes=[*health_routes(), Route("/tasks", tasks, methods=["POST"])])
