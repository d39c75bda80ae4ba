"""The live suite's gate: skipped unless asked for, and failing (not passing) when asked for
on a machine that cannot reach a lab."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_live(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/live/test_cluster_live.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_not_asked_for_means_skipped_with_the_reason():
    env = {k: v for k, v in os.environ.items() if k != "LAB_LIVE"}
    result = run_live(env)
    assert result.returncode == 0
    assert "2 skipped" in result.stdout


def test_asked_for_without_the_tools_fails(tmp_path):
    env = {**os.environ, "LAB_LIVE": "1", "PATH": str(tmp_path)}
    result = run_live(env)
    assert result.returncode == 1
    assert "live lab requested but not on PATH: pulumi, kubectl, docker" in result.stdout
