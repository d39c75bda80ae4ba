"""Thin CrossGuard wrappers: each rule of `rules.py` as a pulumi_policy policy.

The only module that imports pulumi_policy; the rules themselves stay plain functions so the
lab's test suite can run them over its offline plans without this SDK (whose protobuf pin
clashes with the lab's own environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from lab_guardrails.rules import DEFAULTS, RESOURCE_RULES, STACK_RULES, Resource, Rule, Settings

# The knobs a stack's policy config may turn; everything else is the lab's fixed bound.
CONFIG = PolicyConfigSchema(
    properties={
        "maxAccessTokenSeconds": {
            "type": "integer",
            "minimum": 1,
            "maximum": DEFAULTS.max_access_token_seconds,
            "default": DEFAULTS.max_access_token_seconds,
        },
        "authzPlugins": {
            "type": "array",
            "items": {"type": "string"},
            "default": list(DEFAULTS.authz_plugins),
        },
    }
)


def settings_from(config: Mapping[str, Any] | None) -> Settings:
    """Settings from a policy's config; the pack can tighten the token bound, never loosen it."""
    config = config or {}
    seconds = int(config.get("maxAccessTokenSeconds", DEFAULTS.max_access_token_seconds))
    if not 0 < seconds <= DEFAULTS.max_access_token_seconds:
        raise ValueError(
            f"policy config maxAccessTokenSeconds={seconds}: allowed 1 to "
            f"{DEFAULTS.max_access_token_seconds}"
        )
    plugins = tuple(config.get("authzPlugins") or DEFAULTS.authz_plugins)
    return Settings(max_access_token_seconds=seconds, authz_plugins=plugins)


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        settings = settings_from(args.get_config())
        for finding in rule.check(args.resource_type, args.props, settings):
            report_violation(rule.message(finding), None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.statement,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONFIG,
        remediation_steps=rule.fix,
    )


def stack_policy(rule: Rule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        settings = settings_from(args.get_config())
        resources = [Resource(r.resource_type, r.props, r.urn, r.name) for r in args.resources]
        for urn, finding in rule.check(resources, settings):
            report_violation(rule.message(finding), urn or None)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.statement,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CONFIG,
        remediation_steps=rule.fix,
    )


def all_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [resource_policy(r) for r in RESOURCE_RULES] + [stack_policy(r) for r in STACK_RULES]
