"""Live: the three sequences and their denials, against a deployed lab, with a per-step report.

Run with `LAB_LIVE=1 ./run-tests tests/live -s` after `pulumi up`; each step prints one line.
The in-cluster calls run inside the workloads' own pods (kubectl exec), so they use the pods'
real SVIDs; the user's login drives the IdP's login form like a browser would.
"""

from __future__ import annotations

import json
import re
import threading
import time
from html import unescape
from typing import Any

import httpx
import pytest

from components.demo_workloads import AGENT, CHAT_PATH, SERVICE_CALLER
from services.common import oauth

pytestmark = pytest.mark.live

# Inside a workload pod: POST to the workload's own port and print the JSON answer.
_CALL = (
    "import httpx, json, sys; r = httpx.post('http://127.0.0.1:8080' + sys.argv[1], "
    "json=json.loads(sys.argv[2]), timeout=180); print(json.dumps({'status': r.status_code, "
    "'body': r.json()}))"
)


def step(number: str, text: str) -> None:
    print(f"  [{number}] {text}")


def in_pod(lab, namespace: str, account: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    out = lab.kubectl(
        "-n",
        namespace,
        "exec",
        f"deploy/{account}",
        "--",
        "python",
        "-c",
        _CALL,
        path,
        json.dumps(body),
        timeout=240,
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tls(live_lab, tmp_path_factory):
    ca = tmp_path_factory.mktemp("ca") / "root.pem"
    ca.write_text(live_lab.outputs["rootCaCertPem"])
    return str(ca)


def gateway_url(lab) -> str:
    issuer = lab.outputs["realmIssuer"]
    base = issuer.split("//", 1)[1].split("/", 1)[0].split(":", 1)[0].removeprefix("idp.")
    return lab.outputs.get("gatewayUrl", f"https://api.{base}:8443")


def user_token(lab, tls: str, user: str) -> str:
    """Log in at the demo app as `user` through the IdP's form; return the app's page text."""
    issuer = lab.outputs["realmIssuer"]
    app = gateway_url(lab).replace("//api.", "//app.")
    password = lab.outputs["demoUserPasswords"][user]
    with httpx.Client(verify=tls, follow_redirects=True, timeout=30) as browser:
        login_page = browser.get(f"{app}/login")
        assert login_page.url.host in issuer, f"expected the IdP's login page, got {login_page.url}"
        action = unescape(re.search(r'action="([^"]+)"', login_page.text).group(1))
        page = browser.post(action, data={"username": user, "password": password})
        return page.text


def test_sequence_1_service_to_service(live_lab):
    print("\nsequence 1: service-to-service with an SVID")
    result = in_pod(live_lab, "lab-services", SERVICE_CALLER, "/call", {})
    step("1", f"caller answered HTTP {result['status']}")
    body = result["body"]
    step("2", f"token: azp={body['token']['azp']} aud={body['token']['aud']}")
    step("3", f"target said: {body['answer']}")
    assert result["status"] == 200
    assert body["token"]["azp"].endswith(f"/sa/{SERVICE_CALLER}")
    assert body["answer"]["caller"] == body["token"]["azp"]


def test_sequence_2_user_to_service(live_lab, tls):
    print("\nsequence 2: user-to-service (code + PKCE)")
    page = user_token(live_lab, tls, "alice")
    step("1", "alice logged in at the IdP; the app holds her token")
    assert "Signed in as alice" in page
    app = gateway_url(live_lab).replace("//api.", "//app.")
    step("2", "asking the model through the gateway")
    with httpx.Client(verify=tls, follow_redirects=True, timeout=120) as browser:
        # A fresh client has no session: log in again within it, then ask.
        login = browser.get(f"{app}/login")
        action = unescape(re.search(r'action="([^"]+)"', login.text).group(1))
        password = live_lab.outputs["demoUserPasswords"]["alice"]
        browser.post(action, data={"username": "alice", "password": password})
        answered = browser.post(f"{app}/ask", data={"prompt": "Say hello in five words."})
    status = re.search(r"Answer \(HTTP (\d+)\)", answered.text)
    step("3", f"gateway answered HTTP {status.group(1) if status else '?'}")
    assert status and status.group(1) == "200"


def test_denial_wrong_audience(live_lab, tls):
    print("\ndenial: a service token on the chat route")
    result = in_pod(live_lab, "lab-services", SERVICE_CALLER, "/call", {})
    assert result["status"] == 200
    # The caller's token is for lab-services; replaying it at the chat route must fail.
    step("1", "service token obtained; aud=lab-services")
    token = _service_token(live_lab)
    with httpx.Client(verify=tls, timeout=30) as http:
        denied = http.post(
            gateway_url(live_lab) + CHAT_PATH,
            json={"messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {token}"},
        )
    step("2", f"chat route answered HTTP {denied.status_code}: {denied.text[:120]}")
    assert denied.status_code in (401, 403)


def _service_token(lab) -> str:
    script = (
        "from services.common import oauth; from services.common.svid import WorkloadApiSource; "
        "from services.common.web import http_client; import os; "
        "iss = os.environ['IDP_ISSUER']; cid = os.environ['CLIENT_ID']; "
        "svid = WorkloadApiSource().fetch(iss); "
        "print(oauth.form_poster(http_client())(oauth.Endpoints(iss).token, "
        "oauth.client_credentials(cid, svid, 'service:call'))['access_token'])"
    )
    out = lab.kubectl(
        "-n", "lab-services", "exec", f"deploy/{SERVICE_CALLER}", "--", "python", "-c", script
    )
    return out.strip().splitlines()[-1]


def _approve_in_background(lab) -> threading.Thread:
    queue = lab.outputs.get("approvalsQueueUrl")
    if not queue:
        pytest.skip("the stack exports no approvalsQueueUrl: the push approver cannot run")
    agent_id = next(v for v in lab.outputs.get("spiffeIds", {}).values() if AGENT in str(v))
    # The agent asks for exactly oauth.consent_scope: openid, the model scope and delegation
    # to itself (docs/identity-provider.md); the approver approves only those.
    scopes = oauth.consent_scope("chat:invoke", agent_id).split()
    args = ["--queue-url", queue, "--max-messages", "1", "--approve-agent", agent_id]
    for scope in scopes:
        args += ["--approve-scope", scope]

    def run():
        lab.kubectl(
            "-n",
            "lab-system",
            "exec",
            "deploy/push-consent-relay",
            "--",
            "python",
            "-m",
            "services.push_consent_relay.approver",
            *args,
            timeout=240,
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sequence_3_user_to_agent_to_service(live_lab):
    print("\nsequence 3: user-to-agent-to-service (CIBA, token exchange)")
    approver = _approve_in_background(live_lab)
    step("1", "approver waiting for the push")
    result = in_pod(live_lab, "lab-agents", AGENT, "/tasks", {"user": "alice", "task": "hi"})
    approver.join(timeout=240)
    for i, line in enumerate(result["body"].get("steps", []), start=2):
        step(str(i), line)
    assert result["status"] == 200, result["body"]
    delegated = result["body"]["delegated"]
    steps = result["body"]["steps"]
    # The agent's own token was the actor token; Keycloak names its client (the SPIFFE ID) in
    # act.client_id and its service-account user in act.sub.
    assert any(s.startswith("actor token: sub=") for s in steps), steps
    assert delegated["act"]["client_id"].endswith(f"/sa/{AGENT}")
    assert delegated["act"]["client_id"] == delegated["azp"]
    assert delegated["act"]["sub"] and delegated["sub"] != delegated["act"]["sub"]
    assert delegated["aud"] in ("chat-models", ["chat-models"])


def test_denial_no_delegation(live_lab):
    print("\ndenial: bob never delegated to the agent")
    _approve_in_background(live_lab)
    result = in_pod(live_lab, "lab-agents", AGENT, "/tasks", {"user": "bob", "task": "hi"})
    step("1", f"agent answered HTTP {result['status']}: {result['body']}")
    assert result["status"] in (403, 502)


def test_denial_revoked_session(live_lab, tls):
    print("\ndenial: a revoked session's token stops working at the gateway")
    app = gateway_url(live_lab).replace("//api.", "//app.")
    password = live_lab.outputs["demoUserPasswords"]["alice"]
    with httpx.Client(verify=tls, follow_redirects=True, timeout=120) as browser:
        login = browser.get(f"{app}/login")
        action = unescape(re.search(r'action="([^"]+)"', login.text).group(1))
        page = browser.post(action, data={"username": "alice", "password": password})
        sid = re.search(r"<th>sid</th><td><code>&quot;([^&]+)&quot;", page.text)
        issuer_sub = re.search(r"<th>sub</th><td><code>&quot;([^&]+)&quot;", page.text)
        assert sid and issuer_sub, "the app did not show the token's sid and sub"
        step("1", f"alice's session {sid.group(1)[:8]}... is live")
        event = {
            "event": "session-revoked",
            "reason": "live test",
            "subject": {
                "format": "complex",
                "session": {"format": "opaque", "id": sid.group(1)},
                "user": {
                    "format": "iss_sub",
                    "iss": live_lab.outputs["realmIssuer"],
                    "sub": issuer_sub.group(1),
                },
            },
        }
        emit = (
            "import httpx, os, sys; print(httpx.post('http://127.0.0.1:8080/v1/events', "
            "content=sys.argv[1], headers={'Content-Type': 'application/json', "
            "'Authorization': 'Bearer ' + os.environ['TRANSMITTER_TOKEN']}).status_code)"
        )
        sent = live_lab.kubectl(
            "-n",
            "lab-system",
            "exec",
            "deploy/caep-transmitter",
            "--",
            "python",
            "-c",
            emit,
            json.dumps(event),
        )
        step("2", f"CAEP session-revoked sent (HTTP {sent.strip()}); asking until denied")
        # Bounded: the receiver polls SQS and the gateway's deny list refreshes within seconds.
        for attempt in range(1, 31):
            answered = browser.post(f"{app}/ask", data={"prompt": "still there?"})
            status = re.search(r"Answer \(HTTP (\d+)\)", answered.text)
            if status and status.group(1) in ("401", "403"):
                step("3", f"denied with HTTP {status.group(1)} after {attempt} tries")
                break
            time.sleep(2)
        else:
            pytest.fail("the revoked session's token still worked after 60 s")
