"""What every lab service shares: health routes, settings from the environment, serving."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import ssl
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.common.envconfig import Env


def env(name: str, default: str | None = None) -> str:
    """A required setting (or its default); the error names it and how to set it."""
    return Env("lab-service").text(name, default)


# No lab API takes more than this in one request body; larger ones are refused unread.
MAX_BODY_BYTES = 64 * 1024
# A body that has not arrived in this time is refused (a slow sender holds no request open).
BODY_SECONDS = 10.0
# ASCII digits only: str.isdigit() also accepts '²', which int() then refuses.
_DIGITS = re.compile(r"[0-9]{1,19}")


class BodyError(ValueError):
    """A request body the service will not read: too large, or not JSON."""


async def read_body(
    request: Request, limit: int = MAX_BODY_BYTES, seconds: float = BODY_SECONDS
) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` (never read whole first),
    or when it does not arrive within `seconds`."""
    declared = request.headers.getlist("content-length")
    if declared and request.headers.get("transfer-encoding"):
        raise BodyError("both Content-Length and Transfer-Encoding")
    if len(set(declared)) > 1 or (declared and not _DIGITS.fullmatch(declared[0])):
        raise BodyError("bad Content-Length")
    if declared and int(declared[0]) > limit:
        raise BodyError("request too large")
    chunks: list[bytes] = []
    size = 0

    async def collect() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyError("request too large")
            chunks.append(chunk)

    try:
        async with asyncio.timeout(seconds):
            await collect()
    except TimeoutError:
        raise BodyError("request body too slow") from None
    except ClientDisconnect:
        raise BodyError("client went away mid-body") from None
    return b"".join(chunks)


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The body as JSON; anything Python's parser refuses (deep nesting too) is a BodyError."""
    raw = await read_body(request, limit)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are both
        raise BodyError("malformed request: not JSON") from None


def health_routes() -> list[Route]:
    async def alive(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return [Route("/healthz", alive), Route("/readyz", alive)]


def http_client(timeout: float = 30.0) -> httpx.Client:
    """HTTP client trusting the lab root (CA_BUNDLE) when set, the system store otherwise."""
    bundle = os.environ.get("CA_BUNDLE")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=bundle) if bundle else True
    return httpx.Client(timeout=timeout, verify=verify)


def serve(app: Starlette, service: str = "lab-service") -> None:
    """Run the app; HOST defaults to loopback, the chart sets 0.0.0.0 inside the pod."""
    import uvicorn

    settings = Env(service)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    uvicorn.run(
        app,
        host=settings.text("HOST", "127.0.0.1"),
        port=settings.integer("PORT", 8080, 1, 65535),
        log_level=settings.text("LOG_LEVEL", "info"),
        proxy_headers=False,
    )
