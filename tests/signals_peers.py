"""Loopback peers for the signals tests: moto's server, a lab root with a SET key, a fake IdP.

The fake IdP answers only what the lab's services call (client-credentials token, the admin
session endpoints, the CIBA callback) and records every call, so tests can count effects.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

REGION = "us-east-1"
# moto accepts any credentials; these are the dummy values its documentation uses.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# The client secret the fake IdP's token endpoint accepts (a test value, not a credential).
FAKE_IDP_CLIENT_SECRET = "receiver-secret"


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's real HTTP server on 127.0.0.1 with an ephemeral port; stopped on exit."""
    from moto.server import ThreadedMotoServer

    # One access-log line per AWS call would drown the figures and the test output.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **DUMMY_CREDENTIALS)


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class Pki:
    """A P-384 root like the lab's, and an RSA SET signing key certified under it."""

    root_pem: str
    set_key_pem: str
    set_cert_pem: str
    other_key_pem: str
    """An RSA key nobody certified: what a forger would sign with."""


def make_pki(
    signing_uses_digital_signature: bool = True,
    *,
    valid_from: dt.timedelta = dt.timedelta(minutes=-1),
    valid_for: dt.timedelta = dt.timedelta(days=1),
    signing_is_ca: bool = False,
) -> Pki:
    """`valid_from` (relative to now) and `valid_for` set the SET certificate's dates;
    `signing_is_ca` makes it a CA certificate (BasicConstraints ca=True)."""
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Lab Root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA384())
    )
    set_key = rsa.generate_private_key(65537, 2048)
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "caep-transmitter")]))
        .issuer_name(root_name)
        .public_key(set_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid_from)
        .not_valid_after(now + valid_from + valid_for)
        .add_extension(
            x509.KeyUsage(digital_signature=signing_uses_digital_signature, **usage),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=signing_is_ca, path_length=None), critical=True)
        .sign(root_key, hashes.SHA384())
    )
    return Pki(
        root_pem=root.public_bytes(serialization.Encoding.PEM).decode(),
        set_key_pem=_pem(set_key),
        set_cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        other_key_pem=_pem(rsa.generate_private_key(65537, 2048)),
    )


@dataclass
class FakeIdp:
    """Records (method, path, headers, body) of every call; answers like Keycloak would."""

    url: str = ""
    calls: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse_admin: int | None = None
    """While set, every admin API call is answered with this status (the IdP refusing)."""
    users: dict[str, str] = field(default_factory=dict)
    """email -> user id, what GET .../users?email=...&exact=true finds."""

    def answered_at(self, method: str, path: str, status: int) -> float | None:
        """time.perf_counter() when the first such call was answered, if it was."""
        with self.lock:
            return next(
                (
                    c["answered_at"]
                    for c in self.calls
                    if (c["method"], c["path"], c.get("status")) == (method, path, status)
                ),
                None,
            )

    def paths(self, method: str | None = None, status: int | None = None) -> list[str]:
        """Paths called (with `status`: only the calls answered with it)."""
        with self.lock:
            return [
                c["path"]
                for c in self.calls
                if (method is None or c["method"] == method)
                and (status is None or c.get("status") == status)
            ]


@contextmanager
def fake_idp() -> Iterator[FakeIdp]:
    idp = FakeIdp()

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> dict[str, Any]:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            call = {
                "method": self.command,
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "body": body,
            }
            with idp.lock:
                idp.calls.append(call)
            self.call = call
            return call

        def _answer(self, status: int, payload: dict | list | None = None) -> None:
            with idp.lock:
                # One handler per request: the call this answer belongs to.
                self.call["status"] = status
                self.call["answered_at"] = time.perf_counter()
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            call = self._record()
            if self.path.endswith("/protocol/openid-connect/token"):
                form = dict(p.split("=", 1) for p in call["body"].split("&"))
                if form.get("client_secret") != FAKE_IDP_CLIENT_SECRET:
                    self._answer(401, {"error": "unauthorized_client"})
                    return
                self._answer(200, {"access_token": "admin-access", "expires_in": 60})
            elif self.path.endswith("/ext/ciba/auth/callback"):
                self._answer(200, {})
            else:
                self._admin(call, 204)

        def do_DELETE(self):
            self._admin(self._record(), 204)

        def do_GET(self):
            call = self._record()
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            if path.endswith("/users") and params.get("exact") == "true":
                email = urllib.parse.unquote(params.get("email", "")).lower()
                found = [
                    {"id": uid, "email": mail}
                    for mail, uid in idp.users.items()
                    if mail.lower() == email
                ]
                self._admin(call, 200, found)
            else:
                self._admin(call, 404, {"error": "not found"})

        def _admin(self, call: dict, status: int, payload: list | dict | None = None) -> None:
            if call["authorization"] != "Bearer admin-access":
                self._answer(401)
            elif idp.refuse_admin is not None:
                self._answer(idp.refuse_admin, {"error": "refused"})
            else:
                self._answer(status, payload)

        def log_message(self, *args) -> None:  # keep test output clean
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    idp.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class DenyListPeer:
    """The deny list a receiver writes to: its URL, admin token and a way to read entries."""

    url: str
    admin_token: str
    entries: Any  # () -> list[dict]: the live entries, as GET /admin/v1/revocations lists them
    mint: Any = None
    """The realm key the service trusts (tests.decision_peer.TokenMint), to ask it decisions."""

    def denied(self, kind: str, value: str) -> bool:
        return any(e["kind"] == kind and e["value"] == value for e in self.entries())

    def decide(self, **claims: Any) -> dict:
        """The service's AuthZEN answer for a chat call with a realm token with these claims."""
        token = self.mint.token(**claims)
        body = {
            "subject": {"type": "user", "id": self.mint.claims(**claims)["sub"]},
            "action": {"name": "invoke_chat_model"},
            "resource": {"type": "model", "id": "chat"},
            "context": {"token": token, "correlation_id": "signals-test", "route": "chat"},
        }
        answer = httpx.post(f"{self.url}/access/v1/evaluation", json=body, timeout=5)
        answer.raise_for_status()
        return answer.json()


@contextmanager
def deny_list_service(tmp: Path) -> Iterator[DenyListPeer]:
    """The real decision service (services/decision) on loopback, state under `tmp`."""
    from tests.decision_peer import (
        ADMIN_TOKEN,
        TokenMint,
        running_decision_service,
        service_config,
    )

    mint = TokenMint()
    with running_decision_service(service_config(tmp, mint)) as running:

        def listed() -> list[dict]:
            answer = httpx.get(
                f"{running.url}/admin/v1/revocations",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            answer.raise_for_status()
            return answer.json()["entries"]

        yield DenyListPeer(running.url, ADMIN_TOKEN, listed, mint)


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 (ephemeral port); stopped on exit."""
    import time

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.01)
    else:
        server.should_exit = True
        thread.join(timeout=5)
        raise RuntimeError("uvicorn did not start within 2 s")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
