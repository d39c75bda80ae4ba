"""The lab's own workloads against real protocol peers on loopback.

The realm peer verifies PKCE S256, the JWT-SVID client assertion's signature and audience, CIBA
polling and delegated token exchange as Keycloak 26.8 does it (may_act from the consent scope,
actor_token, act only when both match); the gateway peer verifies the RS256 tokens it is shown.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import jwt
import pytest

from services.agent.app import AgentConfig, run_task
from services.agent.app import create_app as agent_app
from services.common import oauth
from services.common.svid import FileSource, SvidError
from services.demo_app.app import DemoConfig
from services.demo_app.app import create_app as demo_app
from services.service_caller.app import CallerConfig, call_target
from services.service_target.app import create_app as target_app
from tests.workload_peers import (
    AGENT_ID,
    CALLER_ID,
    OTHER_AGENT_ID,
    Realm,
    Spire,
    StaticSvids,
    lab_peers,
    serve,
)

ROOT = Path(__file__).resolve().parent.parent
MODEL = "qwen2.5:0.5b"


# --- PKCE and request shapes ----------------------------------------------------------------


def test_pkce_pair_verifies_and_a_changed_verifier_does_not():
    verifier, challenge = oauth.new_pkce()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", verifier)
    assert oauth.verify_pkce(verifier, challenge, "S256")
    assert not oauth.verify_pkce(
        verifier[:-1] + ("A" if verifier[-1] != "A" else "B"), challenge, "S256"
    )
    assert not oauth.verify_pkce(verifier, verifier, "plain")


def test_pkce_challenge_matches_rfc7636_appendix_b():
    # The worked example of RFC 7636, appendix B.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oauth.pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_token_exchange_request_has_the_rfc8693_delegation_fields():
    form = oauth.token_exchange(
        "user.jwt.token", "agent.jwt.token", "chat-models", "chat:invoke", AGENT_ID, "a.b.c"
    )
    assert form == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "user.jwt.token",
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "actor_token": "agent.jwt.token",
        "actor_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "audience": "chat-models",
        "scope": "chat:invoke",
        "client_id": AGENT_ID,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-spiffe",
        "client_assertion": "a.b.c",
    }
    with pytest.raises(ValueError, match="compact JWS"):
        oauth.client_credentials(CALLER_ID, "not-a-jwt")
    with pytest.raises(ValueError, match="actor_token"):
        oauth.token_exchange("user.jwt.token", "", "chat-models", "chat:invoke", AGENT_ID, "a.b.c")


def test_consent_scope_asks_for_delegation_to_the_agent_itself():
    # docs/identity-provider.md: scope=openid chat:invoke delegation:client:<agent SPIFFE ID>
    assert oauth.consent_scope("chat:invoke", AGENT_ID) == (
        f"openid chat:invoke delegation:client:{AGENT_ID}"
    )
    with pytest.raises(ValueError, match="acting client's id"):
        oauth.delegation_scope("two words")


def test_consent_polling_is_bounded_and_honours_slow_down():
    answers = iter(["authorization_pending", "slow_down", "authorization_pending"])
    waits: list[float] = []

    def post(url, form):
        raise oauth.OAuthError(next(answers, "authorization_pending"))

    with pytest.raises(oauth.OAuthError, match="after 4 polls"):
        oauth.poll_for_consent(
            post, "http://127.0.0.1:1/t", dict, 2, 3600, max_polls=4, sleep=waits.append
        )
    assert waits == [2, 2, 7, 7]

    def denied(url, form):
        raise oauth.OAuthError("access_denied", "the user refused")

    with pytest.raises(oauth.OAuthError, match="access_denied"):
        oauth.poll_for_consent(denied, "u", dict, 1, 60, sleep=lambda s: None)


def test_polling_stops_when_the_request_expires():
    def pending(url, form):
        raise oauth.OAuthError("authorization_pending")

    waits: list[float] = []
    with pytest.raises(oauth.OAuthError, match="within 10 s"):
        oauth.poll_for_consent(pending, "u", dict, 5, 10, max_polls=100, sleep=waits.append)
    assert waits == [5, 5]


def test_file_svid_source_checks_audience_and_expiry_with_py_spiffe(tmp_path):
    spire = Spire()
    path = tmp_path / "svid.jwt"
    path.write_text(spire.svid(CALLER_ID, "https://idp.example/realms/lab"))
    assert FileSource(path).fetch("https://idp.example/realms/lab").count(".") == 2
    with pytest.raises(SvidError, match="audience does not match"):
        FileSource(path).fetch("https://elsewhere.example")
    path.write_text(spire.svid(CALLER_ID, "https://idp.example/realms/lab", lifetime=-60))
    with pytest.raises(SvidError, match="expired"):
        FileSource(path).fetch("https://idp.example/realms/lab")


# --- sequence 2: the demo app -------------------------------------------------------------


def _demo(issuer: str, gateway: str):
    def make(url: str):
        config = DemoConfig(
            issuer=issuer,
            backchannel_issuer=issuer,
            client_id="demo-app",
            public_url=url,
            chat_url=f"{gateway}/models/chat",
            chat_model=MODEL,
        )
        return demo_app(config)

    return make


def test_demo_app_logs_in_with_pkce_and_shows_the_answer_and_claims():
    with lab_peers() as (realm, issuer, gateway), serve(_demo(issuer, gateway)) as app:
        realm.public_clients["demo-app"] = f"{app}/callback"
        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            page = browser.get(f"{app}/login")
            assert "Signed in as alice" in page.text
            page = browser.post(f"{app}/ask", data={"prompt": "two plus two"})
    code_grant = next(c for c in realm.calls if c.get("grant_type") == "authorization_code")
    assert len(code_grant["code_verifier"]) >= 43
    assert f"[{MODEL}] for user-alice: two plus two" in page.text
    assert "preferred_username" in page.text and "chat:invoke" in page.text


def test_demo_app_refuses_a_callback_with_a_foreign_state():
    with lab_peers() as (realm, issuer, gateway), serve(_demo(issuer, gateway)) as app:
        realm.public_clients["demo-app"] = f"{app}/callback"
        with httpx.Client(timeout=10) as browser:
            started = browser.get(f"{app}/login")
            assert "code_challenge_method=S256" in started.headers["location"]
            page = browser.get(f"{app}/callback", params={"code": "x", "state": "forged"})
    assert "State mismatch" in page.text
    assert not [c for c in realm.calls if c.get("grant_type") == "authorization_code"]


# --- sequence 3: the agent ----------------------------------------------------------------


def _agent_config(issuer: str, gateway: str) -> AgentConfig:
    return AgentConfig(
        issuer=issuer, client_id=AGENT_ID, chat_url=f"{gateway}/models/chat", chat_model=MODEL
    )


def test_agent_gets_consent_exchanges_with_its_svid_and_calls_the_model():
    with lab_peers() as (realm, issuer, gateway):
        svids = StaticSvids(realm.spire, AGENT_ID)
        with httpx.Client(timeout=10) as http:
            result = run_task(
                _agent_config(issuer, gateway), svids, http, "alice", "hi", sleep=lambda s: None
            )
    assert result["status"] == 200
    assert result["result"] == f"[{MODEL}] for user-alice: hi"
    account = Realm.service_account(AGENT_ID)
    assert result["delegated"]["act"] == {"sub": account, "client_id": AGENT_ID}
    assert result["delegated"]["sub"] == "user-alice"
    assert result["delegated"]["aud"] == "chat-models"
    # The consent asked for delegation to this agent, the user's token named it in may_act.
    ciba = next(c for c in realm.calls if "login_hint" in c)
    assert ciba["scope"].split() == ["openid", "chat:invoke", f"delegation:client:{AGENT_ID}"]
    exchange = next(c for c in realm.calls if c.get("grant_type") == oauth.TOKEN_EXCHANGE)
    assert jwt.decode(exchange["subject_token"], options={"verify_signature": False})[
        "may_act"
    ] == {"sub": account, "client_id": AGENT_ID}
    # The actor token is the agent's own client-credentials token.
    actor = jwt.decode(exchange["actor_token"], options={"verify_signature": False})
    assert (actor["sub"], actor["azp"]) == (account, AGENT_ID)
    assert exchange["actor_token_type"] == oauth.ACCESS_TOKEN_TYPE
    # Two pending polls, then the approved one; every request carried a fresh SVID for the realm:
    # CIBA, three polls, the actor token, the exchange.
    polls = [c for c in realm.calls if c.get("grant_type") == oauth.CIBA_GRANT]
    assert len(polls) == 3
    assert set(svids.fetched) == {issuer} and len(svids.fetched) == 6


def test_agent_reports_a_refused_consent_over_http():
    with lab_peers() as (realm, issuer, gateway):
        realm.denies.add("bob")
        realm.delegations["bob"] = [AGENT_ID]
        app = agent_app(
            _agent_config(issuer, gateway), StaticSvids(realm.spire, AGENT_ID), sleep=lambda s: None
        )
        with serve(app) as agent, httpx.Client(timeout=10) as http:
            answer = http.post(f"{agent}/tasks", json={"user": "bob", "task": "hi"})
            bad = http.post(f"{agent}/tasks", json={"task": "no user"})
    assert answer.status_code == 403
    assert answer.json()["error"] == "access_denied"
    assert bad.status_code == 400


def test_a_user_who_never_delegated_is_denied_at_the_gateway():
    # Keycloak does not read the lab's `delegates` attribute: carol's consent gets the agent a
    # delegated token, and the gateway (the decision service's policy) refuses it.
    with lab_peers() as (realm, issuer, gateway):
        realm.delegations["carol"] = []
        with httpx.Client(timeout=10) as http:
            result = run_task(
                _agent_config(issuer, gateway),
                StaticSvids(realm.spire, AGENT_ID),
                http,
                "carol",
                "hi",
                sleep=lambda s: None,
            )
    assert result["delegated"]["act"]["client_id"] == AGENT_ID
    assert result["status"] == 403
    assert "never delegated" in result["result"]


# --- delegated exchange: what the realm refuses --------------------------------------------


def _consented(realm: Realm, http: httpx.Client, scope: str, user: str = "alice") -> str:
    """The user's token from CIBA, asked by the agent with `scope`."""
    post = oauth.form_poster(http)
    endpoints = oauth.Endpoints(realm.issuer)
    svid = lambda: realm.spire.svid(AGENT_ID, realm.issuer)  # noqa: E731
    started = post(endpoints.ciba, oauth.ciba_request(user, scope, "t", AGENT_ID, svid()))
    answer = oauth.poll_for_consent(
        post,
        endpoints.token,
        lambda: oauth.ciba_poll(started["auth_req_id"], AGENT_ID, svid()),
        interval=0,
        expires_in=60,
        sleep=lambda s: None,
    )
    return answer["access_token"]


def _own_token(realm: Realm, http: httpx.Client, client: str) -> str:
    form = oauth.client_credentials(client, realm.spire.svid(client, realm.issuer))
    return oauth.form_poster(http)(oauth.Endpoints(realm.issuer).token, form)["access_token"]


def _exchange(realm: Realm, http: httpx.Client, subject: str, actor: str | None) -> dict:
    form = oauth.token_exchange(
        subject,
        actor or "placeholder.actor.token",
        "chat-models",
        "chat:invoke",
        AGENT_ID,
        realm.spire.svid(AGENT_ID, realm.issuer),
    )
    if actor is None:
        del form["actor_token"], form["actor_token_type"]
    return oauth.form_poster(http)(oauth.Endpoints(realm.issuer).token, form)


def test_an_exchange_without_actor_token_is_refused():
    with lab_peers() as (realm, _issuer, _gateway), httpx.Client(timeout=10) as http:
        subject = _consented(realm, http, oauth.consent_scope("chat:invoke", AGENT_ID))
        with pytest.raises(oauth.OAuthError) as refused:
            _exchange(realm, http, subject, None)
    assert refused.value.error == "invalid_request"
    assert "needs an actor_token" in refused.value.description


def test_a_subject_token_without_may_act_for_this_agent_is_refused():
    with lab_peers() as (realm, _issuer, _gateway), httpx.Client(timeout=10) as http:
        actor = _own_token(realm, http, AGENT_ID)
        # No delegation scope at all, then delegation to another agent only.
        plain = _consented(realm, http, "openid chat:invoke")
        other = _consented(realm, http, oauth.consent_scope("chat:invoke", OTHER_AGENT_ID))
        assert "may_act" not in oauth.unverified_claims(plain)
        assert oauth.unverified_claims(other)["may_act"]["client_id"] == OTHER_AGENT_ID
        errors = []
        for subject in (plain, other):
            with pytest.raises(oauth.OAuthError) as refused:
                _exchange(realm, http, subject, actor)
            errors.append((refused.value.error, refused.value.description))
    assert errors == [("invalid_grant", "the subject token has no may_act for this actor")] * 2


def test_an_actor_token_of_another_client_is_refused():
    with lab_peers() as (realm, _issuer, _gateway), httpx.Client(timeout=10) as http:
        subject = _consented(realm, http, oauth.consent_scope("chat:invoke", AGENT_ID))
        with pytest.raises(oauth.OAuthError) as refused:
            _exchange(realm, http, subject, _own_token(realm, http, CALLER_ID))
    assert refused.value.error == "invalid_grant"
    assert "another client" in refused.value.description


def test_delegation_outside_the_delegate_permission_gets_no_may_act_nor_act():
    with lab_peers() as (realm, _issuer, _gateway), httpx.Client(timeout=10) as http:
        realm.actors.discard(AGENT_ID)
        subject = _consented(realm, http, oauth.consent_scope("chat:invoke", AGENT_ID))
        claims = oauth.unverified_claims(subject)
        with pytest.raises(oauth.OAuthError) as refused:
            _exchange(realm, http, subject, _own_token(realm, http, AGENT_ID))
    # Keycloak drops the delegation scope it may not grant, so no may_act is issued.
    assert "may_act" not in claims
    assert claims["scope"].split() == ["openid", "chat:invoke"]
    assert refused.value.error == "invalid_grant"


def test_a_plain_exchange_gets_no_act_and_the_gateway_denies_it():
    with lab_peers() as (realm, _issuer, gateway), httpx.Client(timeout=10) as http:
        subject = _consented(realm, http, "openid chat:invoke")
        token = _exchange(realm, http, subject, None)["access_token"]
        answer = http.post(
            f"{gateway}/models/chat",
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert "act" not in oauth.unverified_claims(token)
    assert answer.status_code == 403
    assert answer.json()["reason"] == "an agent's token without act"


def test_an_svid_from_a_foreign_key_is_refused_by_the_realm():
    with lab_peers() as (_realm, issuer, gateway):
        foreign = StaticSvids(Spire(), AGENT_ID)
        with httpx.Client(timeout=10) as http, pytest.raises(oauth.OAuthError) as refused:
            run_task(_agent_config(issuer, gateway), foreign, http, "alice", "hi")
    assert refused.value.error == "invalid_client"
    assert "Signature verification failed" in refused.value.description


# --- sequence 1: the service pair ---------------------------------------------------------


def test_service_caller_authenticates_with_its_svid_and_reaches_the_target():
    with lab_peers() as (realm, issuer, gateway):
        config = CallerConfig(
            issuer=issuer, client_id=CALLER_ID, target_url=f"{gateway}/services/target"
        )
        with httpx.Client(timeout=10) as http:
            result = call_target(config, StaticSvids(realm.spire, CALLER_ID), http)
    assert result["status"] == 200
    assert result["answer"] == {"served": "service-target", "caller": CALLER_ID}
    assert result["token"]["aud"] == ["lab-services"]
    grant = next(c for c in realm.calls if c.get("grant_type") == "client_credentials")
    assert "client_secret" not in grant
    assert jwt.decode(grant["client_assertion"], options={"verify_signature": False})["aud"] == [
        issuer
    ]


def test_an_svid_for_the_wrong_audience_is_refused():
    with lab_peers() as (realm, issuer, gateway):

        class WrongAudience(StaticSvids):
            def fetch(self, audience: str) -> str:
                return self.spire.svid(self.spiffe_id, "https://some-other-service")

        config = CallerConfig(issuer=issuer, client_id=CALLER_ID, target_url=f"{gateway}/x")
        with httpx.Client(timeout=10) as http, pytest.raises(oauth.OAuthError) as refused:
            call_target(config, WrongAudience(realm.spire, CALLER_ID), http)
    assert refused.value.error == "invalid_client"
    assert "audience" in refused.value.description.lower()


def test_service_target_answers_with_the_caller_and_needs_a_token():
    with serve(target_app()) as target, httpx.Client(timeout=10) as http:
        token = jwt.encode({"azp": CALLER_ID, "sub": "svc"}, "k" * 32, algorithm="HS256")
        answer = http.post(f"{target}/", headers={"Authorization": f"Bearer {token}"})
        missing = http.post(f"{target}/")
        health = http.get(f"{target}/healthz")
    assert answer.json() == {"served": "service-target", "caller": CALLER_ID, "sub": "svc"}
    assert missing.status_code == 401
    assert health.json() == {"status": "ok"}
