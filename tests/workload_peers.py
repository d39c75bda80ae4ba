"""Loopback peers for the lab workloads' tests: a token endpoint that checks for real, a gateway.

`Realm` is a small Keycloak-shaped realm (same endpoint paths) that really verifies what the
workloads send: the PKCE S256 verifier against the stored challenge, the JWT-SVID client
assertion's signature (a test SPIRE key), audience and subject, CIBA polling (pending, then
approved or denied) and token exchange the way Keycloak 26.8 does delegation: the consent scope
`delegation:client:<agent>` puts `may_act` in the user's token only for an agent the `delegate`
permission covers; an exchange gets `act` only with that may_act AND the agent's own token as
actor_token, and is refused otherwise; a plain exchange (neither) gets a token without `act`.
It signs RS256 tokens with its own key. `Gateway` verifies those tokens (signature, audience,
scope, actor, the user's `delegates`) before answering in the OpenAI chat shape. Both run
under uvicorn on 127.0.0.1 and stop on exit.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from services.common import oauth
from services.common.oauth import verify_pkce

TRUST_DOMAIN = "lab.local"
PREFIX = f"{oauth.DELEGATION_CLIENT_SCOPE}:"
AGENT_ID = f"spiffe://{TRUST_DOMAIN}/ns/lab-agents/sa/agent"
CALLER_ID = f"spiffe://{TRUST_DOMAIN}/ns/lab-services/sa/service-caller"
OTHER_AGENT_ID = f"spiffe://{TRUST_DOMAIN}/ns/lab-agents/sa/other-agent"


@contextmanager
def serve(app) -> Iterator[str]:
    """Run an ASGI app on 127.0.0.1 with an ephemeral port; yield its base URL.

    `app` may also be a function of the base URL, for apps that must know their own address.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if not isinstance(app, Starlette):
        app = app(f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the loopback server did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class Spire:
    """A stand-in SPIRE JWT authority: signs JWT-SVIDs with a P-256 key."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())

    def svid(self, spiffe_id: str, audience: str, lifetime: int = 300, key=None) -> str:
        now = int(time.time())
        claims = {"sub": spiffe_id, "aud": [audience], "iat": now, "exp": now + lifetime}
        return jwt.encode(claims, key or self.key, algorithm="ES256", headers={"kid": "spire-1"})


@dataclass
class StaticSvids:
    """A JwtSvidSource handing out fresh SVIDs from the test SPIRE key."""

    spire: Spire
    spiffe_id: str
    fetched: list[str] = field(default_factory=list)

    def fetch(self, audience: str) -> str:
        self.fetched.append(audience)
        return self.spire.svid(self.spiffe_id, audience)


@dataclass
class Realm:
    """The realm's state; `app(issuer)` serves it. Users consent unless listed in `denies`."""

    spire: Spire
    public_clients: dict[str, str] = field(default_factory=dict)  # client id -> redirect URI
    spiffe_clients: set[str] = field(default_factory=lambda: {AGENT_ID, OTHER_AGENT_ID, CALLER_ID})
    delegations: dict[str, list[str]] = field(default_factory=lambda: {"alice": [AGENT_ID]})
    """The users' `delegates` attribute (a claim the decision service reads; the IdP does not)."""
    actors: set[str] = field(default_factory=lambda: {AGENT_ID, OTHER_AGENT_ID})
    """Clients the realm's FGAP `delegate` permission lets act for any user."""
    denies: set[str] = field(default_factory=set)
    pending_polls: int = 2
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    issuer: str = ""
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    ciba: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[dict[str, str]] = field(default_factory=list)

    def sign(self, claims: dict[str, Any], lifetime: int = 300) -> str:
        now = int(time.time())
        base = {"iss": self.issuer, "iat": now, "nbf": now, "exp": now + lifetime}
        return jwt.encode({**base, **claims}, self.key, algorithm="RS256")

    @staticmethod
    def service_account(client: str) -> str:
        """The id of a client's service-account user: its tokens' sub, act.sub and may_act.sub."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, client))

    def user_token(self, user: str, azp: str, scope: str) -> str:
        claims = {
            "sub": f"user-{user}",
            "preferred_username": user,
            "azp": azp,
            "aud": ["chat-models", azp],
            "scope": scope,
            "sid": str(uuid.uuid4()),
            "delegates": self.delegations.get(user, []),
        }
        actors = [s.removeprefix(PREFIX) for s in scope.split() if s.startswith(PREFIX)]
        if actors:
            # The parameterized scope mapper: may_act names the actor's account and client.
            claims["may_act"] = {"sub": self.service_account(actors[0]), "client_id": actors[0]}
        return self.sign(claims)

    def _granted_scope(self, asked: str) -> str:
        """Keycloak drops a delegation scope the `delegate` permission does not cover."""
        kept = [
            s
            for s in asked.split()
            if not s.startswith(PREFIX) or s.removeprefix(PREFIX) in self.actors
        ]
        return " ".join(kept)

    def _client(self, form: dict[str, str]) -> str:
        """Authenticate a SPIFFE client by its JWT-SVID, as the IdP would."""
        if form.get("client_assertion_type") != oauth.JWT_SPIFFE:
            raise oauth.OAuthError("invalid_client", "jwt-spiffe client assertion required", 401)
        try:
            claims = jwt.decode(
                form.get("client_assertion", ""),
                self.spire.key.public_key(),
                algorithms=["ES256"],
                audience=self.issuer,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.InvalidTokenError as err:
            raise oauth.OAuthError("invalid_client", f"client assertion: {err}", 401) from None
        if claims["sub"] not in self.spiffe_clients or form.get("client_id") != claims["sub"]:
            raise oauth.OAuthError("invalid_client", f"unknown client {claims['sub']}", 401)
        return claims["sub"]

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        grant = form.get("grant_type")
        if grant == "authorization_code":
            issued = self.codes.pop(form.get("code", ""), None)
            if issued is None:
                raise oauth.OAuthError("invalid_grant", "unknown or used code")
            if form.get("redirect_uri") != issued["redirect_uri"]:
                raise oauth.OAuthError("invalid_grant", "redirect_uri differs")
            if form.get("client_id") != issued["client_id"]:
                raise oauth.OAuthError("invalid_grant", "client differs")
            if not verify_pkce(form.get("code_verifier", ""), issued["challenge"], "S256"):
                raise oauth.OAuthError("invalid_grant", "PKCE verification failed")
            token = self.user_token(issued["user"], issued["client_id"], issued["scope"])
            return {"access_token": token, "token_type": "Bearer", "expires_in": 300}
        client = self._client(form)
        if grant == "client_credentials":
            claims = {"sub": self.service_account(client), "azp": client}
            claims |= {"aud": ["lab-services"], "scope": form.get("scope", "service:call")}
            return {"access_token": self.sign(claims), "token_type": "Bearer"}
        if grant == oauth.TOKEN_EXCHANGE:
            return self._exchange(client, form)
        if grant == oauth.CIBA_GRANT:
            request = self.ciba.get(form.get("auth_req_id", ""))
            if request is None or request["client"] != client:
                raise oauth.OAuthError("invalid_grant", "unknown auth_req_id")
            if request["polls"] < self.pending_polls:
                request["polls"] += 1
                raise oauth.OAuthError("authorization_pending")
            if request["user"] in self.denies:
                raise oauth.OAuthError("access_denied", "the user refused")
            token = self.user_token(request["user"], client, request["scope"])
            return {"access_token": token, "token_type": "Bearer"}
        raise oauth.OAuthError("unsupported_grant_type", str(grant))

    def _verified(self, token: str, what: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self.key.public_key(),
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False},
            )
        except jwt.InvalidTokenError as err:
            raise oauth.OAuthError("invalid_grant", f"{what}: {err}") from None

    def _exchange(self, client: str, form: dict[str, str]) -> dict[str, Any]:
        if form.get("subject_token_type") != oauth.ACCESS_TOKEN_TYPE:
            raise oauth.OAuthError("invalid_request", "subject_token_type")
        if form.get("requested_token_type") != oauth.ACCESS_TOKEN_TYPE:
            raise oauth.OAuthError("invalid_request", "requested_token_type")
        subject = self._verified(form.get("subject_token", ""), "subject token")
        scope = form.get("scope", "")
        if not set(scope.split()) <= set(subject["scope"].split()):
            raise oauth.OAuthError("invalid_scope", "a scope the user never had")
        claims = {
            "sub": subject["sub"],
            "preferred_username": subject.get("preferred_username"),
            "azp": client,
            "aud": form.get("audience"),
            "scope": scope,
            "delegates": subject.get("delegates", []),
        }
        if "actor_token" not in form:
            # Standard exchange: 26.8 refuses to launder a token carrying delegation claims;
            # any other subject token is exchanged without act (the gateway then denies).
            if "may_act" in subject or "act" in subject:
                raise oauth.OAuthError(
                    "invalid_request", "a subject token with may_act needs an actor_token"
                )
            return self._issued(claims)
        claims["act"] = self._actor(client, subject, form)
        return self._issued(claims)

    def _actor(self, client: str, subject: dict[str, Any], form: dict[str, str]) -> dict:
        """Keycloak's delegation checks; the act claim they allow."""
        if form.get("actor_token_type") != oauth.ACCESS_TOKEN_TYPE:
            raise oauth.OAuthError("invalid_request", "actor_token_type")
        actor = self._verified(form["actor_token"], "actor token")
        if actor.get("azp") != client or actor.get("sub") != self.service_account(client):
            raise oauth.OAuthError("invalid_grant", "the actor token belongs to another client")
        may_act = subject.get("may_act") or {}
        if may_act.get("client_id") != client or may_act.get("sub") != actor["sub"]:
            raise oauth.OAuthError(
                "invalid_grant", "the subject token has no may_act for this actor"
            )
        if client not in self.actors:
            raise oauth.OAuthError(
                "access_denied", "Actor is not allowed to delegate as the subject user"
            )
        # Keycloak's delegation shape: the agent's account in sub, its client in client_id.
        return {"sub": actor["sub"], "client_id": client}

    def _issued(self, claims: dict[str, Any]) -> dict[str, Any]:
        return {
            "access_token": self.sign(claims, lifetime=120),
            "issued_token_type": oauth.ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
        }

    def app(self) -> Starlette:
        base = "/realms/lab/protocol/openid-connect"

        async def authorize(request: Request) -> Response:
            q = request.query_params
            client = q.get("client_id", "")
            if self.public_clients.get(client) != q.get("redirect_uri"):
                return JSONResponse({"error": "invalid_request"}, 400)
            if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256":
                return JSONResponse({"error": "invalid_request", "error_description": "S256"}, 400)
            # The user "alice" logs in at once: the browser part is not under test here.
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "client_id": client,
                "redirect_uri": q["redirect_uri"],
                "challenge": q.get("code_challenge", ""),
                "scope": q.get("scope", ""),
                "user": "alice",
            }
            query = urlencode({"code": code, "state": q.get("state", "")})
            return RedirectResponse(f"{q['redirect_uri']}?{query}", 302)

        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            self.calls.append(form)
            try:
                return JSONResponse(self.token(form))
            except oauth.OAuthError as err:
                body = {"error": err.error, "error_description": err.description}
                return JSONResponse(body, err.status)

        async def ciba(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            self.calls.append(form)
            try:
                client = self._client(form)
            except oauth.OAuthError as err:
                return JSONResponse({"error": err.error, "error_description": err.description}, 401)
            auth_req_id = secrets.token_urlsafe(16)
            self.ciba[auth_req_id] = {
                "client": client,
                "user": form.get("login_hint"),
                "scope": self._granted_scope(form.get("scope", "")),
                "polls": 0,
            }
            return JSONResponse({"auth_req_id": auth_req_id, "expires_in": 120, "interval": 1})

        return Starlette(
            routes=[
                Route(f"{base}/auth", authorize),
                Route(f"{base}/token", token, methods=["POST"]),
                Route(f"{base}/ext/ciba/auth", ciba, methods=["POST"]),
            ]
        )


@dataclass
class Gateway:
    """The enforcement the lab's gateway does, reduced to what the workloads' tests need."""

    realm: Realm
    seen: list[dict[str, Any]] = field(default_factory=list)

    def check(self, request: Request, audience: str, scope: str) -> dict[str, Any] | Response:
        header = request.headers.get("authorization", "")
        if not header.startswith("Bearer "):
            return JSONResponse({"reason": "no token"}, 401)
        try:
            claims = jwt.decode(
                header[7:],
                self.realm.key.public_key(),
                algorithms=["RS256"],
                issuer=self.realm.issuer,
                audience=audience,
            )
        except jwt.InvalidTokenError as err:
            return JSONResponse({"reason": f"token: {err}"}, 401)
        if scope not in claims.get("scope", "").split():
            return JSONResponse({"reason": f"scope {scope} missing"}, 403)
        # An agent's token on a model route must say on whose behalf it acts.
        if audience == "chat-models" and claims["azp"].startswith("spiffe://"):
            actor = claims.get("act", {}).get("client_id")
            if actor != claims["azp"]:
                return JSONResponse({"reason": "an agent's token without act"}, 403)
            # The decision service's agent-not-delegated policy: the IdP does not check this.
            if actor not in claims.get("delegates", []):
                return JSONResponse({"reason": "the user never delegated to this agent"}, 403)
        self.seen.append(claims)
        return claims

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            claims = self.check(request, "chat-models", "chat:invoke")
            if isinstance(claims, Response):
                return claims
            body = await request.json()
            prompt = body["messages"][-1]["content"]
            content = f"[{body['model']}] for {claims['sub']}: {prompt}"
            return JSONResponse(
                {"choices": [{"message": {"role": "assistant", "content": content}}]}
            )

        async def service(request: Request) -> Response:
            claims = self.check(request, "lab-services", "service:call")
            if isinstance(claims, Response):
                return claims
            return JSONResponse({"served": "service-target", "caller": claims["azp"]})

        return Starlette(
            routes=[
                Route("/models/chat", chat, methods=["POST"]),
                Route("/services/target", service, methods=["POST"]),
            ]
        )


@contextmanager
def lab_peers(public_clients: dict[str, str] | None = None) -> Iterator[tuple[Realm, str, str]]:
    """A realm and a gateway on loopback: (realm, issuer URL, gateway URL)."""
    realm = Realm(Spire(), public_clients=dict(public_clients or {}))
    with serve(realm.app()) as realm_url:
        realm.issuer = f"{realm_url}/realms/lab"
        with serve(Gateway(realm).app()) as gateway_url:
            yield realm, realm.issuer, gateway_url
