"""The target service: says who called it, as the gateway let the call through.

Its NetworkPolicy admits the gateway only, and the gateway has verified the token and asked the
decision service before forwarding, so the claims read here are for the answer, not a check.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.oauth import unverified_claims
from services.common.web import health_routes


def create_app() -> Starlette:
    async def hello(request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return JSONResponse({"error": "no bearer token: call me through the gateway"}, 401)
        try:
            claims = unverified_claims(header.split(" ", 1)[1])
        except ValueError as err:
            return JSONResponse({"error": str(err)}, 401)
        return JSONResponse(
            {"served": "service-target", "caller": claims.get("azp"), "sub": claims.get("sub")}
        )

    return Starlette(
        routes=[*health_routes(), Route("/{path:path}", hello, methods=["GET", "POST"])]
    )
