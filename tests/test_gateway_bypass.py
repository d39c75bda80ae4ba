"""The enforcement path with real tokens: the Lua plugin (handler.lua and its modules) under
LuaJIT, asking the real decision service on loopback. Kong's jwt plugin cannot run here, so
the service's own verification of the raw token is what stops forged, foreign and stale
tokens; the plugin stops what it checks itself before asking. Every case asserts the status
the client gets and its reason, and that a deny never reaches the upstream."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from components.gateway import authz_config
from lab.lua_plugin import LabAuthzRuntime
from tests.decision_peer import (
    ADMIN_TOKEN,
    TokenMint,
    agent_id,
    running_decision_service,
    service_config,
)

AGENT = agent_id()
ROGUE = agent_id("rogue-agent")
AGENT_PREFIX = "spiffe://lab.local/ns/lab-agents/sa/"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def route_conf(decision_url: str, **overrides) -> dict:
    conf = {
        "decision_url": decision_url,
        "timeout_ms": 300,
        "audience": "chat-models",
        "scopes": ["chat:invoke"],
        "action": "invoke_chat_model",
        "resource_type": "model",
        "resource_id": "chat",
        "route": "chat",
        "actor_required": False,
        "agent_prefix": AGENT_PREFIX,
        "max_token_bytes": 8192,
    }
    conf.update(overrides)
    return conf


@pytest.fixture(scope="module")
def mint() -> TokenMint:
    return TokenMint()


@pytest.fixture(scope="module")
def service(mint, tmp_path_factory):
    with running_decision_service(service_config(tmp_path_factory.mktemp("decision"), mint)) as s:
        yield s


@pytest.fixture(scope="module")
def runtime():
    runtime = LabAuthzRuntime()
    yield runtime
    runtime.close()


@pytest.fixture
def chat(service):
    return route_conf(f"{service.url}/access/v1/evaluation")


@pytest.fixture
def agent_chat(service):
    return route_conf(f"{service.url}/access/v1/evaluation", actor_required=True)


def delegated(mint: TokenMint, actor: str = AGENT, **claims) -> str:
    values = {"azp": actor, "act": {"sub": actor}, "aud": ["chat-models"], "scope": "chat:invoke"}
    return mint.token(**{**values, **claims})


def assert_denied(outcome, status: int, reason: str) -> None:
    assert (outcome.status, outcome.reason) == (status, reason), outcome
    assert "X-Lab-Subject" not in outcome.upstream_headers
    [audit] = outcome.audit
    assert audit["decision"] == "deny" and audit["status"] == status and audit["reason"] == reason


def test_a_valid_user_token_is_allowed_with_the_policy_that_allowed_it(runtime, chat, mint):
    outcome = runtime.handle(chat, mint.token(), {"X-Correlation-ID": "corr-0001-abcd"})
    assert outcome.status == 200
    assert outcome.upstream_headers["X-Lab-Subject"] == "alice-id"
    assert outcome.upstream_headers["X-Lab-Actor"] is None
    assert outcome.upstream_headers["X-Correlation-ID"] == "corr-0001-abcd"
    [audit] = outcome.audit
    assert audit["decision"] == "allow"
    assert audit["policies"] == "users-chat-by-group"
    assert (audit["subject"], audit["actor"]) == ("alice-id", None)
    assert (audit["action"], audit["resource"]) == ("invoke_chat_model", "model:chat")
    assert audit["correlation_id"] == "corr-0001-abcd"
    assert audit["latency_ms"] >= 0


def test_alg_none_is_refused(runtime, chat, mint):
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(mint.claims()).encode())
    assert_denied(runtime.handle(chat, f"{header}.{payload}."), 401, "unsigned token")
    # Even with a signature segment, `none` never passes.
    token = f"{header}.{payload}.{b64(b'x')}"
    assert_denied(runtime.handle(chat, token), 401, "token algorithm not allowed")


def test_hs256_signed_with_the_public_key_is_refused_by_plugin_and_service(
    runtime, chat, mint, service
):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": mint.kid}).encode())
    payload = b64(json.dumps(mint.claims()).encode())
    mac = hmac.new(mint.public_pem.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    token = f"{header}.{payload}.{b64(mac.digest())}"
    assert_denied(runtime.handle(chat, token), 401, "token algorithm not allowed")
    # The service never trusts the gateway's checks: asked directly, it refuses too.
    body = {
        "subject": {"type": "user", "id": "alice-id"},
        "action": {"name": "invoke_chat_model"},
        "resource": {"type": "model", "id": "chat"},
        "context": {"token": token, "correlation_id": "corr-direct-1", "route": "chat"},
    }
    answer = httpx.post(chat["decision_url"], json=body, timeout=5).json()
    assert answer["decision"] is False
    assert (answer["context"]["status"], answer["context"]["reason"]) == (
        401,
        "algorithm not allowed",
    )


def test_unknown_kid_is_refused_by_the_service(runtime, chat, mint):
    token = mint.token(headers={"kid": "not-a-lab-key"})
    assert_denied(runtime.handle(chat, token), 401, "unknown key id")


def test_a_token_from_another_key_is_refused(runtime, chat):
    stranger = TokenMint()  # same issuer string, a key the lab never certified
    token = stranger.token(headers={"kid": stranger.kid})
    outcome = runtime.handle(chat, token)
    assert outcome.status == 401
    assert outcome.reason in {"unknown key id", "bad signature"}


def test_wrong_issuer_is_refused(runtime, chat, mint):
    token = mint.token(iss="https://idp.evil.example/realms/lab")
    assert_denied(runtime.handle(chat, token), 401, "wrong issuer")


def test_wrong_audience_is_refused(runtime, chat, mint):
    token = mint.token(aud=["image-models"])
    assert_denied(runtime.handle(chat, token), 401, "wrong audience")


def test_a_scope_the_token_lacks_is_refused(runtime, chat, mint):
    outcome = runtime.handle(chat, mint.token(scope="image:generate"))
    assert_denied(outcome, 403, "missing scope chat:invoke")
    assert outcome.response_headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_expired_token_is_refused(runtime, chat, mint):
    now = int(time.time())
    token = mint.token(iat=now - 600, nbf=now - 600, exp=now - 120)
    outcome = runtime.handle(chat, token)
    assert_denied(outcome, 401, "token expired")
    assert outcome.response_headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_nbf_in_the_future_is_refused(runtime, chat, mint):
    token = mint.token(nbf=int(time.time()) + 600)
    assert_denied(runtime.handle(chat, token), 401, "token not yet valid")


def test_agent_route_without_an_actor_is_refused(runtime, agent_chat, mint):
    assert_denied(runtime.handle(agent_chat, mint.token()), 403, "actor required")


def test_an_agent_token_without_act_is_never_read_as_the_user(runtime, chat, mint):
    token = mint.token(azp=AGENT, aud=["chat-models"], scope="chat:invoke")
    assert_denied(runtime.handle(chat, token), 403, "agent token without actor")


def test_an_actor_the_user_never_delegated_to_is_refused(runtime, agent_chat, mint):
    assert_denied(runtime.handle(agent_chat, delegated(mint, ROGUE)), 403, "actor not delegated")


def test_a_delegated_token_for_a_delegated_agent_is_allowed(runtime, agent_chat, mint):
    outcome = runtime.handle(agent_chat, delegated(mint))
    assert outcome.status == 200
    assert outcome.upstream_headers["X-Lab-Actor"] == AGENT
    assert outcome.audit[0]["actor"] == AGENT


def test_nested_act_is_informational_only(runtime, agent_chat, mint):
    # The nested actor was never delegated; only the top-level one counts, and is sent on.
    token = delegated(mint, act={"sub": AGENT, "act": {"sub": ROGUE}})
    outcome = runtime.handle(agent_chat, token)
    assert outcome.status == 200
    assert outcome.upstream_headers["X-Lab-Actor"] == AGENT
    # A nested act cannot stand in for a missing top-level actor either.
    token = mint.token(aud=["chat-models"], scope="chat:invoke", act={"act": {"sub": AGENT}})
    assert_denied(runtime.handle(agent_chat, token), 401, "malformed actor claim")


def test_a_revoked_session_is_refused(runtime, chat, mint, service):
    answer = httpx.post(
        f"{service.url}/admin/v1/revocations",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        json={
            "kind": "session",
            "value": "session-revoked-1",
            "event_id": "set-jti-1",
            "reason": "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
        },
        timeout=5,
    )
    assert answer.status_code == 201
    outcome = runtime.handle(chat, mint.token(sid="session-revoked-1"))
    assert_denied(outcome, 403, "session revoked")
    assert outcome.audit[0]["policies"] == "forbid-revoked-session"
    assert runtime.handle(chat, mint.token(sid="session-live-2")).status == 200


def test_oversized_and_malformed_tokens_are_refused_before_any_call(mint):
    calls = []

    def post(*args):
        calls.append(args)
        return 200, b'{"decision": true}'

    runtime = LabAuthzRuntime(http_post=post)
    conf = route_conf("http://127.0.0.1:9/access/v1/evaluation", max_token_bytes=2048)
    big = mint.token(padding="x" * 4096)
    assert_denied(runtime.handle(conf, big), 401, "token too large")
    for bad, reason in [
        ("not-a-jwt", "malformed token"),
        ("a.b", "malformed token"),
        ("@@@.###.$$$", "malformed token"),
        (f"{b64(b'[1]')}.{b64(b'{}')}.{b64(b'x')}", "malformed token"),
        (f"{b64(b'{not json')}.{b64(b'{}')}.{b64(b'x')}", "malformed token"),
        ("", "missing verified token"),
    ]:
        assert_denied(runtime.handle(conf, bad), 401, reason)
    assert_denied(runtime.handle(conf, None), 401, "missing verified token")
    assert calls == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_decision_service_that_is_down_means_deny(runtime, mint):
    conf = route_conf(f"http://127.0.0.1:{_free_port()}/access/v1/evaluation")
    assert_denied(runtime.handle(conf, mint.token()), 403, "decision service unavailable")


class _SlowAllow(BaseHTTPRequestHandler):
    """Answers allow, but only after the plugin's budget is spent."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(1.0)
        body = b'{"decision": true, "context": {"policies": ["late"]}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


class _TricklingAllow(BaseHTTPRequestHandler):
    """Answers allow one byte at a time, each well inside a per-read timeout."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"decision": true, "context": {"policies": ["late"]}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for byte in body[:20]:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.02)
        self.wfile.write(body[20:])

    def log_message(self, *args):
        return


@pytest.mark.parametrize("handler", [_SlowAllow, _TricklingAllow], ids=["silent", "trickling"])
def test_a_slow_decision_service_means_deny_not_allow(mint, handler):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    runtime = LabAuthzRuntime()
    try:
        conf = route_conf(
            f"http://127.0.0.1:{server.server_port}/access/v1/evaluation", timeout_ms=100
        )
        started = time.perf_counter()
        outcome = runtime.handle(conf, mint.token())
        elapsed = time.perf_counter() - started
        assert_denied(outcome, 403, "decision service unavailable")
        assert elapsed < 0.8
    finally:
        runtime.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (500, b'{"decision": true}', "decision service error"),
        (200, b"<html>allow</html>", "decision unreadable"),
        (200, b'{"decision": "true"}', "denied by policy"),
        (200, b'{"decision": 1}', "denied by policy"),
        (200, b'{"context": {"status": 200}}', "denied by policy"),
        (200, b'{"decision": false, "context": {"status": 401, "reason": "x<script>"}}', "xscript"),
    ],
)
def test_anything_but_an_explicit_allow_is_a_deny(mint, status, body, reason):
    runtime = LabAuthzRuntime(http_post=lambda *args: (status, body))
    conf = route_conf("http://127.0.0.1:9/access/v1/evaluation")
    outcome = runtime.handle(conf, mint.token())
    assert outcome.status in (401, 403)
    assert outcome.reason == reason


def test_the_authzen_request_carries_the_raw_token_and_the_top_level_actor(mint):
    sent = []

    def post(url, body, headers, timeout):
        sent.append((url, json.loads(body), headers, timeout))
        return 200, b'{"decision": true, "context": {"policies": ["p"]}}'

    runtime = LabAuthzRuntime(http_post=post)
    conf = route_conf("http://127.0.0.1:9/access/v1/evaluation", actor_required=True)
    token = delegated(mint, act={"sub": AGENT, "act": {"sub": ROGUE}})
    outcome = runtime.handle(conf, token, {"X-Correlation-ID": "bad id with spaces"})
    [(url, body, headers, timeout)] = sent
    assert url.endswith("/access/v1/evaluation") and timeout == pytest.approx(0.3)
    assert body["subject"] == {"type": "user", "id": "alice-id", "properties": {"actor": AGENT}}
    assert body["action"] == {"name": "invoke_chat_model"}
    assert body["resource"] == {"type": "model", "id": "chat"}
    assert body["context"]["token"] == token
    assert body["context"]["route"] == "chat"
    # A client's malformed correlation id is replaced, and the same id is used throughout.
    correlation = body["context"]["correlation_id"]
    assert correlation != "bad id with spaces" and len(correlation) == 36
    assert headers["X-Correlation-ID"] == correlation == outcome.audit[0]["correlation_id"]


def test_component_route_config_drives_the_plugin(mint, service, runtime):
    from components.gateway import GatewayArgs
    from tests.test_gateway import dev_settings

    args = GatewayArgs.from_settings(dev_settings(), mint.public_pem)
    [chat_route] = [r for r in args.routes if r.name == "chat"]
    conf = authz_config(args, chat_route)
    conf["decision_url"] = f"{service.url}/access/v1/evaluation"
    assert runtime.handle(conf, mint.token()).status == 200
    assert runtime.handle(conf, mint.token(scope="image:generate")).status == 403


def test_the_actor_is_act_client_id_when_the_idp_puts_it_there(mint):
    sent = []

    def post(url, body, headers, timeout):
        sent.append(json.loads(body))
        return 200, b'{"decision": true}'

    runtime = LabAuthzRuntime(http_post=post)
    conf = route_conf("http://127.0.0.1:9/access/v1/evaluation", actor_required=True)
    keycloak_act = {"sub": "service-account-user-id", "client_id": AGENT}
    outcome = runtime.handle(conf, delegated(mint, act=keycloak_act))
    assert outcome.status == 200
    assert sent[0]["subject"]["properties"] == {"actor": AGENT}
    rogue_act = {"sub": "service-account-user-id", "client_id": ROGUE}
    assert_denied(
        runtime.handle(conf, delegated(mint, ROGUE, act=rogue_act)), 403, "actor not delegated"
    )
