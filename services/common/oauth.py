"""OAuth and OpenID requests the lab's workloads make, as plain functions.

Each function builds or checks exactly one protocol message, so the services stay thin and
the tests can run every exchange against a real token endpoint on loopback:

- PKCE (RFC 7636, S256 only) for the demo app's authorization code login;
- client authentication with a JWT-SVID as the client assertion (the SPIFFE profile of
  RFC 7523: `client_assertion_type` ...:jwt-spiffe), never a client secret;
- delegation as Keycloak 26.8 does it: the user consents to the parameterized scope
  `delegation:client:<agent client id>` (which puts `may_act` in the user's token), then
  the agent exchanges (RFC 8693) that token as `subject_token` with its own client-credentials
  token as `actor_token`, and the IdP adds `act`;
- CIBA (OpenID CIBA core, poll mode) with a bounded number of polls.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

JWT_SPIFFE = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - a URN
CIBA_GRANT = "urn:openid:params:grant-type:ciba"
# Keycloak's parameterized consent scope for client delegation (needs `parameterized-scopes`).
DELEGATION_CLIENT_SCOPE = "delegation:client"

# RFC 7636 section 4.1: 43 to 128 characters from the unreserved set.
_VERIFIER_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class OAuthError(RuntimeError):
    """An error answer from the IdP (RFC 6749 section 5.2), or a malformed answer."""

    def __init__(self, error: str, description: str = "", status: int = 400):
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}" if description else error)


@dataclass(frozen=True)
class Endpoints:
    """A Keycloak realm's endpoints, derived from its issuer string."""

    issuer: str

    @property
    def authorize(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/auth"

    @property
    def token(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def ciba(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/ext/ciba/auth"

    @property
    def logout(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/logout"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- PKCE ---------------------------------------------------------------------------------


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of a verifier."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_pkce() -> tuple[str, str]:
    """A fresh (verifier, S256 challenge) pair; 32 random bytes give a 43-character verifier."""
    verifier = _b64url(secrets.token_bytes(32))
    return verifier, pkce_challenge(verifier)


def verify_pkce(verifier: str, challenge: str, method: str) -> bool:
    """What the token endpoint checks. Only S256: `plain` would defeat the point."""
    if method != "S256":
        return False
    if not 43 <= len(verifier) <= 128 or not set(verifier) <= _VERIFIER_CHARS:
        return False
    return hmac.compare_digest(pkce_challenge(verifier), challenge)


def authorization_url(
    endpoints: Endpoints,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    nonce: str,
    challenge: str,
) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return f"{endpoints.authorize}?{urlencode(query)}"


def code_grant(code: str, redirect_uri: str, client_id: str, verifier: str) -> dict[str, str]:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": verifier,
    }


# --- client authentication with a JWT-SVID ------------------------------------------------


def spiffe_client_auth(client_id: str, svid: str) -> dict[str, str]:
    """The form fields that authenticate a workload by its JWT-SVID (aud = realm issuer)."""
    if not svid or svid.count(".") != 2:
        raise ValueError("a JWT-SVID is a compact JWS (three dot-separated parts)")
    return {
        "client_id": client_id,
        "client_assertion_type": JWT_SPIFFE,
        "client_assertion": svid,
    }


def client_credentials(client_id: str, svid: str, scope: str | None = None) -> dict[str, str]:
    form = {"grant_type": "client_credentials", **spiffe_client_auth(client_id, svid)}
    if scope:
        form["scope"] = scope
    return form


def delegation_scope(actor_client_id: str) -> str:
    """The consent scope that makes the IdP name `actor_client_id` in the user's `may_act`.

    Keycloak 26.8's parameterized client scope `delegation:client`, with the acting client's
    id as its parameter (docs/identity-provider.md, "Sequence 3 step by step").
    """
    if not actor_client_id or any(c.isspace() for c in actor_client_id):
        raise ValueError("the delegation scope needs the acting client's id, without spaces")
    return f"{DELEGATION_CLIENT_SCOPE}:{actor_client_id}"


def consent_scope(scope: str, actor_client_id: str) -> str:
    """What an agent asks the user to approve: the task's scope plus delegation to itself."""
    return " ".join(["openid", *scope.split(), delegation_scope(actor_client_id)])


def token_exchange(
    subject_token: str, actor_token: str, audience: str, scope: str, client_id: str, svid: str
) -> dict[str, str]:
    """RFC 8693 delegation request: the user's token acted on by the agent's own token.

    `subject_token` is the user's token carrying `may_act` for this client; `actor_token` is
    the client's own client-credentials token. Without the actor token Keycloak adds no `act`
    (and 26.8 refuses a subject token with `may_act`), so both are required here.
    """
    if not subject_token:
        raise ValueError("token exchange needs the user's access token as subject_token")
    if not actor_token:
        raise ValueError("delegated token exchange needs the agent's own token as actor_token")
    return {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        "actor_token": actor_token,
        "actor_token_type": ACCESS_TOKEN_TYPE,
        "requested_token_type": ACCESS_TOKEN_TYPE,
        "audience": audience,
        "scope": scope,
        **spiffe_client_auth(client_id, svid),
    }


# --- CIBA ---------------------------------------------------------------------------------


def ciba_request(
    login_hint: str, scope: str, binding_message: str, client_id: str, svid: str
) -> dict[str, str]:
    return {
        "login_hint": login_hint,
        "scope": scope,
        "binding_message": binding_message,
        **spiffe_client_auth(client_id, svid),
    }


def ciba_poll(auth_req_id: str, client_id: str, svid: str) -> dict[str, str]:
    return {
        "grant_type": CIBA_GRANT,
        "auth_req_id": auth_req_id,
        **spiffe_client_auth(client_id, svid),
    }


Post = Callable[[str, Mapping[str, str]], dict[str, Any]]


def poll_for_consent(
    post: Post,
    token_endpoint: str,
    form: Callable[[], Mapping[str, str]],
    interval: float,
    expires_in: float,
    max_polls: int = 60,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll until the user approves; raise OAuthError on denial, expiry or too many polls.

    `form` is called for every poll, so each poll can carry a fresh JWT-SVID. The IdP's
    `slow_down` adds 5 s to the interval (CIBA core, section 11).
    """
    waited = 0.0
    for _ in range(max_polls):
        sleep(interval)
        waited += interval
        try:
            return post(token_endpoint, form())
        except OAuthError as err:
            if err.error == "authorization_pending":
                pass
            elif err.error == "slow_down":
                interval += 5
            else:
                raise
        if waited >= expires_in:
            raise OAuthError("expired_token", f"no consent within {expires_in:.0f} s")
    raise OAuthError("expired_token", f"no consent after {max_polls} polls")


# --- transport ----------------------------------------------------------------------------


def form_poster(client: httpx.Client) -> Post:
    """POST a form, return the JSON answer, raise OAuthError for an error answer."""

    def post(url: str, form: Mapping[str, str]) -> dict[str, Any]:
        response = client.post(url, data=dict(form), headers={"Accept": "application/json"})
        try:
            body = response.json()
        except ValueError:
            raise OAuthError(
                "invalid_response",
                f"HTTP {response.status_code} from {url} is not JSON",
                response.status_code,
            ) from None
        if response.status_code >= 400 or "error" in body:
            raise OAuthError(
                str(body.get("error", "http_error")),
                str(body.get("error_description", "")),
                response.status_code,
            )
        return body

    return post


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's payload for display only: never for a decision (the gateway verifies)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as err:
        raise ValueError(f"not a compact JWT: {err}") from None
