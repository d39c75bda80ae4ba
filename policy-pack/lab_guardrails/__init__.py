"""The lab's guardrails: one plain function per rule over (resource type, inputs).

Nothing here imports pulumi_policy, so the same rules run in three places: the CrossGuard
pack (`policies.py` wraps them), the lab's own test suite over the offline plans, and the
pack's unit tests. See docs/guardrails.md.
"""

from lab_guardrails.rules import (
    RESOURCE_RULES,
    STACK_RULES,
    Resource,
    Rule,
    Settings,
    Violation,
    check_resources,
    rendered_resources,
)

__all__ = [
    "RESOURCE_RULES",
    "STACK_RULES",
    "Resource",
    "Rule",
    "Settings",
    "Violation",
    "check_resources",
    "rendered_resources",
]
