"""The Vault init/unseal script, run as pulumi-command runs it, against a stand-in on loopback.

The stand-in answers Vault's sys/health, sys/init, sys/seal-status and sys/unseal as the API
documents them; it proves the script's flow and that no key or token reaches stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from components.vault import INIT_SCRIPT

ROOT_TOKEN = "hvs.stand-in-root"
UNSEAL_KEY = "c3RhbmQtaW4ta2V5"


class FakeVault:
    def __init__(self):
        self.initialized = False
        self.sealed = True
        self.calls: list[str] = []


@pytest.fixture
def vault():
    state = FakeVault()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            state.calls.append(f"GET {self.path}")
            if self.path == "/v1/sys/health":
                code = 501 if not state.initialized else 503 if state.sealed else 200
                self._send(code, {})
            elif self.path == "/v1/sys/init":
                self._send(200, {"initialized": state.initialized})
            elif self.path == "/v1/sys/seal-status":
                self._send(200, {"sealed": state.sealed, "t": 1})
            else:
                self._send(404, {})

        def do_PUT(self):
            state.calls.append(f"PUT {self.path}")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v1/sys/init" and not state.initialized:
                assert body == {"secret_shares": 1, "secret_threshold": 1}
                state.initialized = True
                self._send(200, {"keys_base64": [UNSEAL_KEY], "root_token": ROOT_TOKEN})
            elif self.path == "/v1/sys/unseal":
                state.sealed = body.get("key") != UNSEAL_KEY
                self._send(200, {"sealed": state.sealed})
            else:
                self._send(400, {"errors": ["bad request"]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.addr = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def run(addr: str, step: str, **extra: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "VAULT_ADDR": addr,
        "LAB_VAULT_STEP": step,
        "LAB_VAULT_WAIT_SECONDS": "5",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-c", INIT_SCRIPT.read_text()],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_init_prints_the_document_only_on_stdout_then_the_unseal_step_unseals(vault):
    result = run(vault.addr, "init")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"unseal_keys_b64": [UNSEAL_KEY], "root_token": ROOT_TOKEN}
    assert ROOT_TOKEN not in result.stderr and UNSEAL_KEY not in result.stderr
    # Init only initialises: nothing that could fail stands between Vault's answer and the
    # printed keys, which a failed step would lose for good.
    assert vault.sealed
    assert [c for c in vault.calls if c.startswith("PUT")] == ["PUT /v1/sys/init"]
    unsealed = run(vault.addr, "unseal", UNSEAL_KEYS_JSON=json.dumps([UNSEAL_KEY]))
    assert unsealed.returncode == 0, unsealed.stderr
    assert not vault.sealed


def test_a_second_init_is_refused_and_unseal_reopens_a_restarted_server(vault):
    assert run(vault.addr, "init").returncode == 0
    again = run(vault.addr, "init")
    assert again.returncode == 1
    assert "already initialised" in again.stderr and "delete pvc" in again.stderr
    vault.sealed = True  # the pod restarted
    result = run(vault.addr, "unseal", UNSEAL_KEYS_JSON=json.dumps([UNSEAL_KEY]))
    assert result.returncode == 0, result.stderr
    assert not vault.sealed
    assert UNSEAL_KEY not in result.stdout + result.stderr


def test_an_unreachable_server_fails_within_the_deadline():
    result = run("http://127.0.0.1:9", "init")
    assert result.returncode == 1
    assert "did not answer within 5 s" in result.stderr
