"""The decision service as a real peer on loopback, and real tokens for it.

`TokenMint` makes a test root CA and an RSA signing key certified under it (as the lab does for
the IdP realm key) and signs RS256 access tokens with it; `running_decision_service` starts the
service with uvicorn on 127.0.0.1 on an ephemeral port, with the repo's policy files, and stops
it on exit. The gateway and signals tests can use both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from services.decision.app import DecisionService, create_app, service_from_config
from services.decision.config import Config
from services.decision.tokens import key_ids

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policies" / "cedar"
ISSUER = "https://idp.lab.localhost:9443/realms/lab"
TRUST_DOMAIN = "lab.local"
ADMIN_TOKEN = "test-admin-token-" + "x" * 32


def agent_id(name: str = "research-agent") -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/lab-agents/sa/{name}"


def service_id(name: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/lab-services/sa/{name}"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass
class TokenMint:
    """A test root CA, a realm signing key certified under it, and RS256 tokens."""

    issuer: str = ISSUER
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    def __post_init__(self):
        root_key = ec.generate_private_key(ec.SECP384R1())
        now = dt.datetime.now(dt.UTC)
        self.root_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Test Root"))
            .issuer_name(_name("Test Root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("realm signing key"))
            .issuer_name(self.root_cert.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(root_key, hashes.SHA256())
        )
        self.kid = key_ids(self.key.public_key())[1]

    @property
    def public_pem(self) -> str:
        """The SPKI PEM the lab hands the gateway and the decision service."""
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": "alice-id",
            "aud": ["chat-models", "image-models", "lab-services"],
            "azp": "demo-app",
            "scope": "chat:invoke image:generate result:read",
            "groups": ["researchers"],
            "delegates": [agent_id()],
            "sid": "session-1",
            "auth_time": now - 10,
            "preferred_username": "alice",
            "iat": now,
            "nbf": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, headers: Mapping[str, Any] | None = None, **overrides: Any) -> str:
        header = {"kid": self.kid, "typ": "JWT", **(headers or {})}
        return jwt.encode(self.claims(**overrides), self.key, algorithm="RS256", headers=header)


def service_config(tmp: Path, mint: TokenMint, **overrides: Any) -> Config:
    keys = tmp / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "realm.pem").write_text(mint.public_pem)
    values = {
        "issuer": mint.issuer,
        "keys_dir": keys,
        "policy_dir": POLICY_DIR,
        "trust_domain": TRUST_DOMAIN,
        "admin_token": ADMIN_TOKEN,
        "deny_list_path": tmp / "deny-list.sqlite3",
        "service_targets": {service_id("service-caller"): (service_id("service-target"),)},
        "consent_max_age": 300,
        "deny_list_retention": 360,
    }
    values.update(overrides)
    return Config(**values)


@dataclass
class RunningService:
    url: str
    service: DecisionService


@contextlib.contextmanager
def running_decision_service(config: Config, timeout: float = 10.0) -> Iterator[RunningService]:
    """The service on 127.0.0.1, an ephemeral port; stopped (and its thread joined) on exit."""
    service = service_from_config(config)
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say so; without it
    # every answer waits out the peer's delayed ACK (about 40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the decision service did not start on loopback")
        time.sleep(0.01)
    try:
        yield RunningService(f"http://127.0.0.1:{port}", service)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
        service.deny_list.close()
