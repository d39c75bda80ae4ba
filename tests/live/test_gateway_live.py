"""Live: the gateway of a deployed lab, through Kong, per sequence.

Each test talks to https://api.<baseDomain>:<port> on 127.0.0.1 (SNI and Host set to the
gateway's name) and trusts only the lab root from the stack's outputs.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.live


def _gateway(live_lab) -> tuple[str, int, ssl.SSLContext]:
    url = urlsplit(live_lab.outputs["gatewayUrl"])
    context = ssl.create_default_context(cadata=live_lab.outputs["rootCaCertPem"])
    return url.hostname, url.port or 443, context


def _call(live_lab, path: str, token: str | None = None, body: dict | None = None):
    host, port, context = _gateway(live_lab)

    class ToLoopback(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(self._connect, req, context=context)

        @staticmethod
        def _connect(_host, **kwargs):
            import http.client

            connection = http.client.HTTPSConnection("127.0.0.1", port, **kwargs)
            connection._tunnel_host = None
            connection.server_hostname = host
            return connection

    request = urllib.request.Request(
        f"https://{host}:{port}{path}",
        data=json.dumps(body or {"messages": [{"role": "user", "content": "hi"}]}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(ToLoopback(context=context))
    try:
        with opener.open(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _unsigned(claims: dict) -> str:
    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


def test_the_proxy_presents_a_certificate_under_the_lab_root(live_lab):
    host, port, context = _gateway(live_lab)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


def test_sequence_1_service_route_refuses_a_missing_or_forged_token(live_lab):
    status, _ = _call(live_lab, "/services/target")
    assert status == 401
    claims = {"iss": live_lab.outputs["realmIssuer"], "sub": "svc", "exp": time.time() + 60}
    status, _ = _call(live_lab, "/services/target", _unsigned(claims))
    assert status == 401


def test_sequence_2_chat_route_refuses_alg_none_and_a_foreign_issuer(live_lab):
    claims = {"iss": live_lab.outputs["realmIssuer"], "sub": "alice", "exp": time.time() + 60}
    assert _call(live_lab, "/models/chat", _unsigned(claims))[0] == 401
    foreign = {**claims, "iss": "https://idp.evil.example/realms/lab"}
    assert _call(live_lab, "/models/chat", _unsigned(foreign))[0] == 401


def test_sequence_3_rate_limits_and_plugins_are_configured_as_planned(live_lab):
    plugins = json.loads(live_lab.kubectl("get", "kongclusterplugins", "-o", "json"))["items"]
    by_name = {p["metadata"]["name"]: p for p in plugins}
    assert by_name["lab-rate-limit"]["config"]["policy"] == "local"
    assert by_name["lab-jwt"]["config"]["claims_to_verify"] == ["exp"]
    authz = json.loads(live_lab.kubectl("get", "kongplugins", "-A", "-o", "json"))["items"]
    assert {p["plugin"] for p in authz} >= {"lab-authz", "ai-proxy"}


def test_admin_api_and_decision_service_have_no_host_port(live_lab):
    services = json.loads(live_lab.kubectl("get", "services", "-A", "-o", "json"))["items"]
    exposed = [
        s["metadata"]["name"]
        for s in services
        if s["spec"]["type"] in ("NodePort", "LoadBalancer")
        and s["metadata"]["namespace"] in ("gateway", "lab-system")
    ]
    assert exposed == ["kong-gateway-proxy"]
