"""Initialise and unseal the lab's Vault (or OpenBao): run by pulumi-command on the user's machine.

Standard library only, because it runs as `python3 -c <this file>` outside the lab's venv.
Step `init` (LAB_VAULT_STEP=init) waits for the server, initialises it with one key share,
unseals it and prints the init document as JSON on stdout, which the component keeps as a
Pulumi secret. Step `unseal` reads the keys from UNSEAL_KEYS_JSON and unseals a sealed server
(after a pod restart). Progress goes to stderr and never contains a key or a token.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

# The server answers /sys/health with these codes (Vault API, sys/health).
HEALTH_CODES = {200: "active", 429: "standby", 501: "not initialised", 503: "sealed"}


class StepError(RuntimeError):
    pass


def _call(addr: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    if not addr.startswith(("http://", "https://")):
        raise StepError(f"VAULT_ADDR={addr!r}: allowed: an http:// or https:// URL")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        f"{addr.rstrip('/')}/v1/{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        payload = err.read()
        try:
            return err.code, json.loads(payload or b"{}")
        except ValueError:
            return err.code, {}


def wait_for_server(addr: str, deadline_seconds: float, pause: float = 2.0) -> str:
    """Poll /sys/health until the server answers; return its state name."""
    end = time.monotonic() + deadline_seconds
    last = "no answer"
    while time.monotonic() < end:
        try:
            code, _ = _call(addr, "GET", "sys/health")
            if code in HEALTH_CODES:
                return HEALTH_CODES[code]
            last = f"HTTP {code}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(pause)
    raise StepError(
        f"Vault at {addr} did not answer within {deadline_seconds:.0f} s ({last}); check the "
        "pod in the vault namespace and that the kind port mapping for Vault is in place"
    )


def unseal(addr: str, keys: list[str]) -> None:
    code, status = _call(addr, "GET", "sys/seal-status")
    if code != 200:
        raise StepError(f"Vault at {addr}: sys/seal-status answered HTTP {code}")
    for key in keys:
        if not status.get("sealed", True):
            break
        code, status = _call(addr, "PUT", "sys/unseal", {"key": key})
        if code != 200:
            raise StepError(f"Vault at {addr}: sys/unseal answered HTTP {code}")
    if status.get("sealed", True):
        raise StepError(f"Vault at {addr} is still sealed after {len(keys)} key(s)")


def init(addr: str) -> dict:
    code, status = _call(addr, "GET", "sys/init")
    if code == 200 and status.get("initialized"):
        raise StepError(
            f"Vault at {addr} is already initialised but this stack holds no unseal key for it "
            "(state lost?). Delete its volume to start over: kubectl -n vault delete pvc --all"
        )
    code, answer = _call(addr, "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1})
    if code != 200 or "root_token" not in answer:
        raise StepError(f"Vault at {addr}: sys/init answered HTTP {code}")
    # Nothing may fail between here and printing: the keys exist only in this answer, and a
    # failed step keeps no output. The vault-unseal step, which runs next, unseals.
    keys = answer.get("keys_base64") or answer.get("keys") or []
    return {"unseal_keys_b64": keys, "root_token": answer["root_token"]}


def main() -> int:
    addr = os.environ["VAULT_ADDR"]
    step = os.environ.get("LAB_VAULT_STEP", "init")
    deadline = float(os.environ.get("LAB_VAULT_WAIT_SECONDS", "300"))
    try:
        state = wait_for_server(addr, deadline)
        print(f"vault at {addr}: {state}", file=sys.stderr)
        if step == "init":
            print(json.dumps(init(addr)))
        elif step == "unseal":
            unseal(addr, json.loads(os.environ["UNSEAL_KEYS_JSON"]))
            print("unsealed")
        else:
            raise StepError(f"LAB_VAULT_STEP={step!r}: allowed: init, unseal")
    except (StepError, OSError) as err:  # OSError: URLError, refused or reset connections
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"vault at {addr}: {step} done", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
