"""The CrossGuard wrappers: each rule becomes a mandatory policy that reports its findings.

Runs only where pulumi_policy is installed (.venv-policy); the entry file is never imported,
because PolicyPack(...) starts the analyzer server and blocks.
"""

from __future__ import annotations

import pytest

pulumi_policy = pytest.importorskip("pulumi_policy")

from pulumi_policy import (  # noqa: E402 - after the skip
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy  # noqa: E402

from lab_guardrails.policies import all_policies, settings_from  # noqa: E402
from lab_guardrails.rules import RESOURCE_RULES, STACK_RULES  # noqa: E402

OPTS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def by_name() -> dict:
    return {p.name: p for p in all_policies()}


def run_resource(policy, resource_type: str, props: dict, config: dict | None = None) -> list:
    reported = []
    args = ResourceValidationArgs(
        resource_type, unknown_checking_proxy(props), "urn:x", "x", OPTS, None, config
    )
    policy.validate(args, lambda message, urn=None: reported.append((message, urn)))
    return reported


def test_every_rule_is_a_mandatory_policy_of_the_right_kind():
    policies = by_name()
    assert set(policies) == {r.name for r in RESOURCE_RULES + STACK_RULES}
    for rule in RESOURCE_RULES:
        assert isinstance(policies[rule.name], ResourceValidationPolicy)
    for rule in STACK_RULES:
        assert isinstance(policies[rule.name], StackValidationPolicy)
    for policy in policies.values():
        assert policy.enforcement_level is EnforcementLevel.MANDATORY
        assert policy.remediation_steps


def test_resource_policy_reports_rule_and_fix():
    policy = by_name()["pinned-images"]
    remote = "docker:index/remoteImage:RemoteImage"
    assert run_resource(policy, remote, {"name": "registry:3.0.0"}) == []
    ((message, urn),) = run_resource(policy, remote, {"name": "registry:latest"})
    assert "floating tag 'latest'" in message and "Fix: pin the image" in message
    assert urn is None


def test_token_bound_comes_from_policy_config_and_cannot_be_loosened():
    policy = by_name()["access-token-lifetime"]
    realm = "keycloak:index/realm:Realm"
    assert run_resource(policy, realm, {"accessTokenLifespan": "4m"}) == []
    assert run_resource(policy, realm, {"accessTokenLifespan": "4m"}, {"maxAccessTokenSeconds": 60})
    with pytest.raises(ValueError, match="maxAccessTokenSeconds=900: allowed 1 to 300"):
        settings_from({"maxAccessTokenSeconds": 900})


def test_unknown_values_during_preview_are_raised_not_judged():
    policy = by_name()["pinned-images"]
    with pytest.raises(UnknownValueError):
        run_resource(policy, "docker:index/remoteImage:RemoteImage", {"name": UNKNOWN_STRING_VALUE})


def test_stack_policy_reports_against_the_resource_urn():
    policy = by_name()["namespace-default-deny"]
    namespace = PolicyResource(
        "kubernetes:core/v1:Namespace",
        unknown_checking_proxy({"metadata": {"name": "lab-apps"}}),
        "urn:ns",
        "lab-apps",
        OPTS,
        None,
        None,
        [],
        {},
    )
    reported = []
    policy.validate(
        StackValidationArgs([namespace]), lambda message, urn=None: reported.append((message, urn))
    )
    ((message, urn),) = reported
    assert urn == "urn:ns"
    assert message.startswith("namespace lab-apps has no NetworkPolicy that denies all ingress")
