"""Live: the IdP serves each step of the three sequences (needs a deployed lab; skips here).

Each test drives the real Keycloak over its public URL on 127.0.0.1 with the lab root as the
only trust anchor, and checks tokens against the deploy-time SPKI key from the stack outputs.
SVIDs are fetched from the SPIRE agent inside a workload pod with kubectl.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pytest

from lab.naming import Audience, Namespace, Scope, spiffe_id
from lab.realm import AGENT_ACCOUNTS, DEMO_APP, SERVICE_TARGETS
from services.common import oauth

pytestmark = pytest.mark.live

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
SPIFFE_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe"


@pytest.fixture(scope="module")
def idp(live_lab, tmp_path_factory):
    ca = tmp_path_factory.mktemp("idp") / "root.pem"
    ca.write_text(live_lab.outputs["rootCaCertPem"])
    with httpx.Client(verify=str(ca), timeout=20, follow_redirects=False) as client:
        yield client


def verify(live_lab, token: str, audience: str) -> dict:
    """Check a token exactly as the gateway does: SPKI key, RS256, issuer, audience."""
    return jwt.decode(
        token,
        live_lab.outputs["realmPublicKeyPem"],
        algorithms=["RS256"],
        issuer=live_lab.outputs["realmIssuer"],
        audience=audience,
    )


def token_url(live_lab) -> str:
    return f"{live_lab.outputs['realmIssuer']}/protocol/openid-connect/token"


def svid(live_lab, namespace: str, account: str) -> str:
    """A JWT-SVID for the realm issuer, fetched by the workload itself."""
    pod = live_lab.kubectl(
        "-n",
        namespace,
        "get",
        "pods",
        "-l",
        f"app.kubernetes.io/name={account}",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    )
    out = live_lab.kubectl(
        "-n",
        namespace,
        "exec",
        pod,
        "--",
        "python",
        "-m",
        "common.svid",
        "--audience",
        live_lab.outputs["realmIssuer"],
    )
    return out.strip()


def login(idp, live_lab, user: str) -> dict:
    """Sequence 2: the authorization code flow with PKCE, driven like a browser would."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    redirect = "https://app.lab.localhost:8443/callback"
    page = idp.get(
        f"{live_lab.outputs['realmIssuer']}/protocol/openid-connect/auth",
        params={
            "client_id": DEMO_APP,
            "response_type": "code",
            "scope": "openid",
            "redirect_uri": redirect,
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
            "state": "live",
        },
    )
    action = re.search(r'action="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    answer = idp.post(
        action,
        data={"username": user, "password": live_lab.outputs["demoUserPasswords"][user]},
        cookies=page.cookies,
    )
    code = parse_qs(urlparse(answer.headers["location"]).query)["code"][0]
    tokens = idp.post(
        token_url(live_lab),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "code_verifier": verifier,
            "client_id": DEMO_APP,
            "client_secret": live_lab.outputs["demoAppClientSecret"],
        },
    )
    tokens.raise_for_status()
    return tokens.json()


def test_login_gives_a_short_user_token_with_flat_groups(idp, live_lab):
    tokens = login(idp, live_lab, "alice")
    claims = verify(live_lab, tokens["access_token"], Audience.CHAT)
    assert claims["azp"] == DEMO_APP
    assert claims["groups"] == ["researchers"]
    assert claims["exp"] - claims["iat"] <= 300
    assert "act" not in claims and claims["sid"]


def test_service_authenticates_with_its_svid_and_reaches_only_its_target(idp, live_lab):
    account = next(iter(SERVICE_TARGETS))
    client_id = spiffe_id(live_lab.outputs["trustDomain"], Namespace.SERVICES, account)
    answer = idp.post(
        token_url(live_lab),
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": SPIFFE_ASSERTION,
            "client_assertion": svid(live_lab, Namespace.SERVICES, account),
        },
    )
    answer.raise_for_status()
    claims = verify(live_lab, answer.json()["access_token"], Audience.SERVICES)
    assert claims["azp"] == client_id
    assert Scope.SERVICE in claims["scope"].split()
    with pytest.raises(jwt.InvalidAudienceError):
        verify(live_lab, answer.json()["access_token"], Audience.CHAT)


def test_ciba_then_exchange_gives_a_delegated_token_naming_the_agent(idp, live_lab):
    """Sequence 3 with the agent's own request builders (services.common.oauth), step by step."""
    trust_domain = live_lab.outputs["trustDomain"]
    agent = spiffe_id(trust_domain, Namespace.AGENTS, AGENT_ACCOUNTS[0])

    def assertion() -> str:
        return svid(live_lab, Namespace.AGENTS, AGENT_ACCOUNTS[0])

    # 1. CIBA for the model scope and delegation to the agent itself.
    started = idp.post(
        f"{live_lab.outputs['realmIssuer']}/protocol/openid-connect/ext/ciba/auth",
        data=oauth.ciba_request(
            "alice", oauth.consent_scope(Scope.CHAT, agent), "live-test", agent, assertion()
        ),
    )
    started.raise_for_status()
    request = started.json()
    # 2. The relay answers for the approver in the live lab's test mode; poll within expiry.
    deadline = time.monotonic() + request["expires_in"]
    subject = None
    while time.monotonic() < deadline and subject is None:
        time.sleep(request.get("interval", 5))
        polled = idp.post(
            token_url(live_lab), data=oauth.ciba_poll(request["auth_req_id"], agent, assertion())
        )
        if polled.status_code == 200:
            subject = polled.json()["access_token"]
    assert subject, "the push consent was not answered before the CIBA request expired"
    # The delegation scope's mappers name the agent in may_act and add it to aud.
    may_act = verify(live_lab, subject, agent)["may_act"]
    assert may_act["client_id"] == agent

    # Without the actor token 26.8 refuses a subject token that carries may_act.
    plain = oauth.token_exchange(subject, "x.y.z", Audience.CHAT, Scope.CHAT, agent, assertion())
    del plain["actor_token"], plain["actor_token_type"]
    refused = idp.post(token_url(live_lab), data=plain)
    assert refused.status_code in (400, 403), refused.text

    # 3. The agent's own token is the actor token; exchange with both.
    actor = idp.post(token_url(live_lab), data=oauth.client_credentials(agent, assertion()))
    actor.raise_for_status()
    actor_token = actor.json()["access_token"]
    exchanged = idp.post(
        token_url(live_lab),
        data=oauth.token_exchange(
            subject, actor_token, Audience.CHAT, Scope.CHAT, agent, assertion()
        ),
    )
    exchanged.raise_for_status()
    # 4. sub stays the user, act names the agent's service account and client, one audience.
    claims = verify(live_lab, exchanged.json()["access_token"], Audience.CHAT)
    assert claims["preferred_username"] == "alice"
    assert claims["azp"] == agent
    assert claims["act"]["client_id"] == agent
    assert (
        claims["act"]["sub"]
        == may_act["sub"]
        == jwt.decode(actor_token, options={"verify_signature": False})["sub"]
    )
    assert claims["aud"] in (Audience.CHAT, [Audience.CHAT])
    assert claims["exp"] - claims["iat"] <= 120


def test_plain_exchange_of_a_delegated_token_is_refused(idp, live_lab):
    """The demo app, which has no token exchange, cannot exchange a user's token at all."""
    tokens = login(idp, live_lab, "bob")
    refused = idp.post(
        token_url(live_lab),
        data={
            "grant_type": EXCHANGE,
            "client_id": DEMO_APP,
            "client_secret": live_lab.outputs["demoAppClientSecret"],
            "subject_token": tokens["access_token"],
            "subject_token_type": ACCESS_TOKEN,
        },
    )
    assert refused.status_code in (400, 401, 403)
