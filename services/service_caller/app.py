"""Call the target service through the gateway as this workload (the first sequence).

`POST /call` (or GET): JWT-SVID for the realm issuer -> client credentials at the IdP with the
SVID as the client assertion -> the target's route on the gateway with the access token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common import oauth
from services.common.svid import JwtSvidSource
from services.common.web import env, health_routes, http_client


@dataclass(frozen=True)
class CallerConfig:
    issuer: str
    client_id: str
    """This workload's IdP client id: its SPIFFE ID."""
    target_url: str
    """The target's route on the gateway."""
    scope: str = "service:call"

    @classmethod
    def from_env(cls) -> CallerConfig:
        return cls(
            issuer=env("IDP_ISSUER"),
            client_id=env("CLIENT_ID"),
            target_url=env("GATEWAY_URL").rstrip("/") + env("TARGET_PATH"),
            scope=env("SCOPE", "service:call"),
        )


def call_target(config: CallerConfig, svids: JwtSvidSource, http: httpx.Client) -> dict[str, Any]:
    post = oauth.form_poster(http)
    svid = svids.fetch(config.issuer)
    tokens = post(
        oauth.Endpoints(config.issuer).token,
        oauth.client_credentials(config.client_id, svid, config.scope),
    )
    claims = oauth.unverified_claims(tokens["access_token"])
    response = http.post(
        config.target_url,
        json={"from": config.client_id},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    try:
        answer: Any = response.json()
    except ValueError:
        answer = response.text[:500]
    return {
        "status": response.status_code,
        "answer": answer,
        "token": {k: claims.get(k) for k in ("sub", "azp", "aud", "scope", "exp")},
    }


def create_app(
    config: CallerConfig, svids: JwtSvidSource, client: httpx.Client | None = None
) -> Starlette:
    http = client or http_client()

    async def call(request: Request) -> JSONResponse:
        try:
            result = await run_in_threadpool(call_target, config, svids, http)
        except oauth.OAuthError as err:
            return JSONResponse(
                {"error": err.error, "description": err.description}, status_code=403
            )
        return JSONResponse(result, status_code=200 if result["status"] == 200 else 502)

    return Starlette(routes=[*health_routes(), Route("/call", call, methods=["GET", "POST"])])
