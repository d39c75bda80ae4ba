"""Fixtures for the live-lab suite: tests that need a deployed lab on a machine with Docker.

They run only when asked (`LAB_LIVE=1 ./run-tests tests/live`) after `pulumi up`, and skip with
the reason everywhere else. Connection details come from the stack's own outputs, so the tests
target exactly the lab that stack deployed, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LiveLab:
    stack: str
    outputs: dict[str, Any]
    kubeconfig: Path

    def kubectl(self, *args: str, stdin: str | None = None, timeout: int = 60) -> str:
        """Run kubectl against the lab's cluster; raise with kubectl's message on failure."""
        result = subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def missing_tools() -> list[str]:
    return [tool for tool in ("pulumi", "kubectl", "docker") if shutil.which(tool) is None]


@pytest.fixture(scope="session")
def live_lab(tmp_path_factory) -> LiveLab:
    if os.environ.get("LAB_LIVE") != "1":
        pytest.skip(
            "no live lab requested: run `LAB_LIVE=1 ./run-tests tests/live` after `pulumi up`"
        )
    # Asked for explicitly, a live run that cannot reach the lab fails: it must not pass green
    # having tested nothing.
    if missing_tools():
        pytest.fail(f"live lab requested but not on PATH: {', '.join(missing_tools())}")
    stack = os.environ.get("LAB_STACK", "dev")
    result = subprocess.run(
        ["pulumi", "stack", "output", "--json", "--show-secrets", "--stack", stack],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(f"pulumi stack output failed for stack {stack}: {result.stderr.strip()}")
    outputs = json.loads(result.stdout)
    kubeconfig = tmp_path_factory.mktemp("live") / "kubeconfig"
    kubeconfig.write_text(outputs["kubeconfig"])
    kubeconfig.chmod(0o600)
    return LiveLab(stack=stack, outputs=outputs, kubeconfig=kubeconfig)
