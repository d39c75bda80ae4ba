"""Shared fixtures: offline plans of the real program on the real stack files.

Each plan installs its own mocks when it runs (never at import time), so any number of test
files can plan stacks side by side. The two stock plans are made once per session.
"""

from __future__ import annotations

import pytest

from lab.offline_plan import Plan, run_plan


@pytest.fixture(scope="session")
def dev_plan() -> Plan:
    return run_plan("dev")


@pytest.fixture(scope="session")
def aws_plan() -> Plan:
    return run_plan("aws")


@pytest.fixture
def plan_with():
    """Plan a stack with config overrides: plan_with("dev", {"identity-lab:gpu": "true"})."""

    def make(stack: str, overrides: dict[str, str], secret_keys: set[str] = frozenset()) -> Plan:
        return run_plan(stack, overrides, secret_keys)

    return make
