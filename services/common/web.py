"""What every lab service shares: health routes, settings from the environment, serving."""

from __future__ import annotations

import os
import ssl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class ConfigError(ValueError):
    """A required environment variable is missing."""


def env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value == "":
        raise ConfigError(f"environment variable {name} is required (set it in the chart values)")
    return value


def health_routes() -> list[Route]:
    async def alive(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return [Route("/healthz", alive), Route("/readyz", alive)]


def http_client(timeout: float = 30.0) -> httpx.Client:
    """HTTP client trusting the lab root (CA_BUNDLE) when set, the system store otherwise."""
    bundle = os.environ.get("CA_BUNDLE")
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=bundle) if bundle else True
    return httpx.Client(timeout=timeout, verify=verify)


def serve(app: Starlette) -> None:
    """Run the app; HOST defaults to loopback, the chart sets 0.0.0.0 inside the pod."""
    import uvicorn

    uvicorn.run(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8080")),
        log_level=os.environ.get("LOG_LEVEL", "info"),
        proxy_headers=False,
    )
