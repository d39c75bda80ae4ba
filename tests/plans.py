"""Plans for tests that must read what a plan masks."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import mocks
from lab.offline_plan import ROOT, Plan, run_plan


def plan_keeping_secrets(
    stack: str = "dev", program: Path = ROOT / "__main__.py"
) -> tuple[Plan, dict[str, dict]]:
    """A plan, plus each Kubernetes Secret's plain inputs by name, for checks that must read
    what the plan masks (certificate chains, keys that must match them)."""
    seen: dict[str, dict] = {}

    def keep(inputs: dict) -> dict:
        seen[inputs["metadata"]["name"]] = inputs
        return {}

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(mocks.COMPUTED, "kubernetes:core/v1:Secret", keep)
        plan = run_plan(stack, program=program)
    return plan, seen
