"""Log in at the IdP (authorization code + PKCE), ask a model through the gateway, show the
answer and the claims of the token the gateway was shown.

Sessions live in memory (one replica, a demo): a random cookie names the PKCE verifier, state
and nonce of a login in progress, and the tokens after it. The claims are decoded for display
only; the gateway and the decision service verify the token.
"""

from __future__ import annotations

import html
import json
import os
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from services.common import oauth
from services.common.chat import ask_model
from services.common.web import BodyError, env, health_routes, http_client, read_body

COOKIE = "lab_session"


@dataclass(frozen=True)
class DemoConfig:
    issuer: str
    """The realm issuer the browser is sent to (public URL)."""
    backchannel_issuer: str
    """Where the app itself reaches the realm (the same realm, maybe an in-cluster URL)."""
    client_id: str
    public_url: str
    """The app's own public URL; the redirect URI is <public_url>/callback."""
    chat_url: str
    """The gateway's chat route."""
    chat_model: str
    scope: str = "openid chat:invoke"
    client_secret: str | None = None
    """The demo-app client is confidential at the IdP: PKCE and its secret, both."""

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/callback"

    @classmethod
    def from_env(cls) -> DemoConfig:
        issuer = env("IDP_ISSUER")
        return cls(
            issuer=issuer,
            backchannel_issuer=env("IDP_BACKCHANNEL_ISSUER", issuer),
            client_id=env("CLIENT_ID", "demo-app"),
            public_url=env("PUBLIC_URL").rstrip("/"),
            chat_url=env("GATEWAY_URL").rstrip("/") + env("CHAT_PATH"),
            chat_model=env("CHAT_MODEL"),
            scope=env("SCOPE", "openid chat:invoke"),
            client_secret=os.environ.get("CLIENT_SECRET") or None,
        )


def _page(body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'><title>Identity lab demo</title>"
        f"</head><body>{body}</body></html>"
    )


def _claims_table(claims: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(json.dumps(v))}</code></td></tr>"
        for k, v in sorted(claims.items())
    )
    return f"<table id='claims'>{rows}</table>"


def create_app(config: DemoConfig, client: httpx.Client | None = None) -> Starlette:
    http = client or http_client()
    post = oauth.form_poster(http)
    browser = oauth.Endpoints(config.issuer)
    backchannel = oauth.Endpoints(config.backchannel_issuer)
    sessions: dict[str, dict[str, Any]] = {}
    secure = config.public_url.startswith("https://")

    def session_of(request: Request) -> dict[str, Any] | None:
        return sessions.get(request.cookies.get(COOKIE, ""))

    async def home(request: Request) -> Response:
        session = session_of(request)
        if not session or "access_token" not in session:
            return _page("<h1>Identity lab</h1><p><a id='login' href='/login'>Log in</a></p>")
        claims = oauth.unverified_claims(session["access_token"])
        answer = session.get("answer")
        shown = ""
        if answer is not None:
            shown = (
                f"<h2>Answer (HTTP {answer.status})</h2>"
                f"<pre id='answer'>{html.escape(answer.content)}</pre>"
            )
        return _page(
            f"<h1>Signed in as {html.escape(str(claims.get('preferred_username', '?')))}</h1>"
            "<form method='post' action='/ask'><input name='prompt' size='60'>"
            "<button>Ask the model</button></form>"
            f"{shown}<h2>Your access token's claims</h2>{_claims_table(claims)}"
            "<p><a href='/logout'>Log out</a></p>"
        )

    async def login(request: Request) -> Response:
        verifier, challenge = oauth.new_pkce()
        sid = secrets.token_urlsafe(32)
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        sessions[sid] = {"verifier": verifier, "state": state, "nonce": nonce}
        url = oauth.authorization_url(
            browser, config.client_id, config.redirect_uri, config.scope, state, nonce, challenge
        )
        response = RedirectResponse(url, status_code=302)
        response.set_cookie(COOKIE, sid, httponly=True, secure=secure, samesite="lax")
        return response

    def callback(request: Request) -> Response:
        session = session_of(request)
        params = request.query_params
        if session is None or "verifier" not in session:
            return _page("<p>No login in progress. <a href='/login'>Log in</a></p>")
        if "error" in params:
            return _page(f"<p>The IdP refused: {html.escape(params['error'])}</p>")
        if not secrets.compare_digest(params.get("state", ""), session["state"]):
            return _page("<p>State mismatch: the login was not started here.</p>")
        form = oauth.code_grant(
            params.get("code", ""), config.redirect_uri, config.client_id, session["verifier"]
        )
        if config.client_secret:
            form["client_secret"] = config.client_secret
        try:
            tokens = post(backchannel.token, form)
        except oauth.OAuthError as err:
            return _page(f"<p>Login failed: {html.escape(str(err))}</p>")
        # The verifier is single-use: drop it with the rest of the login state.
        session.clear()
        session.update(
            access_token=tokens["access_token"], refresh_token=tokens.get("refresh_token")
        )
        return RedirectResponse("/", status_code=303)

    async def ask(request: Request) -> Response:
        session = session_of(request)
        if not session or "access_token" not in session:
            return RedirectResponse("/login", status_code=303)
        try:
            body = parse_qs((await read_body(request)).decode())
        except (BodyError, UnicodeDecodeError):
            return Response("the form is too large or not text", status_code=400)
        prompt = (body.get("prompt") or ["Say hello in five words."])[0]
        session["answer"] = await run_in_threadpool(
            ask_model, http, config.chat_url, session["access_token"], config.chat_model, prompt
        )
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    return Starlette(
        routes=[
            *health_routes(),
            Route("/", home),
            Route("/login", login),
            Route("/callback", callback),
            Route("/ask", ask, methods=["POST"]),
            Route("/logout", logout),
        ]
    )
