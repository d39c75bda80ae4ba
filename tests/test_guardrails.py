"""The lab passes its own guardrails: both stacks' plans through the policy pack's rules.

The rules are plain functions in policy-pack/lab_guardrails (no pulumi_policy import), so they
run here directly on the offline plans, one copy of each rule for the pack and for this test.
Releases of the lab's local charts are also rendered with the values they give, and the
rendered objects go through the same rules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from components.namespaces import DEFAULT_DENY, POD_SECURITY
from lab.charts import render
from lab.offline_plan import Plan

PACK = Path(__file__).resolve().parent.parent / "policy-pack"
if str(PACK) not in sys.path:
    sys.path.insert(0, str(PACK))

from lab_guardrails import Resource, check_resources, rendered_resources  # noqa: E402
from lab_guardrails.rules import PLATFORM_NAMESPACES, PUBLIC_ROUTE_NAMESPACES  # noqa: E402

RELEASE = "kubernetes:helm.sh/v3:Release"
LOCAL_CHART = "charts/"


def local_releases(plan: Plan) -> list[dict]:
    return [
        r
        for r in plan.of_type(RELEASE)
        if str((r["inputs"] or {}).get("chart", "")).startswith(LOCAL_CHART)
    ]


def guarded_resources(plan: Plan) -> list[Resource]:
    """Every planned resource, plus the objects each local chart renders with its values."""
    resources = [
        Resource(r["type"], r["inputs"] or {}, r["urn"], r["name"]) for r in plan.resources
    ]
    for release in local_releases(plan):
        inputs = release["inputs"]
        chart = inputs["chart"][len(LOCAL_CHART) :]
        namespace = inputs.get("namespace") or "default"
        objects = render(
            chart,
            inputs.get("values") or {},
            release=inputs.get("name") or release["name"],
            namespace=namespace,
        )
        resources += rendered_resources(objects, namespace, origin=release["urn"])
    return resources


@pytest.fixture(params=["dev", "aws"])
def stack_plan(request, dev_plan, aws_plan) -> Plan:
    return {"dev": dev_plan, "aws": aws_plan}[request.param]


def test_the_lab_passes_its_own_guardrails(stack_plan):
    resources = guarded_resources(stack_plan)
    violations = check_resources(resources)
    report = "\n".join(f"[{v.rule}] {v.urn}\n    {v.message}" for v in violations)
    assert not violations, (
        f"{len(violations)} guardrail violation(s) in {stack_plan.stack}:\n{report}"
    )


def test_every_planned_resource_and_rendered_object_is_seen(dev_plan):
    resources = guarded_resources(dev_plan)
    rendered = [r for r in resources if "$rendered:" in r.urn]
    assert len(resources) - len(rendered) == len(dev_plan.resources)
    # Each lab-service release renders at least its Deployment, Service and NetworkPolicy.
    assert len(rendered) >= 3 * len(local_releases(dev_plan))


def test_the_guardrails_catch_a_bad_resource_in_a_real_plan(dev_plan):
    resources = guarded_resources(dev_plan)
    (namespace,) = [r for r in resources if r.name == "namespaces-lab-apps"]
    # The same plan without lab-apps' deny-all policy, plus a workload pinned to latest.
    without = [
        r
        for r in resources
        if not (
            r.type.endswith(":NetworkPolicy") and r.props["metadata"].get("namespace") == "lab-apps"
        )
    ]
    bad = {
        "metadata": {"name": "demo", "namespace": "lab-apps"},
        "spec": {"template": {"spec": {"containers": [{"name": "demo", "image": "demo:latest"}]}}},
    }
    found = check_resources([*without, Resource("kubernetes:apps/v1:Deployment", bad, "urn:demo")])
    rules = {(v.rule, v.urn) for v in found}
    assert ("namespace-default-deny", namespace.urn) in rules
    assert {"pinned-images", "containers-non-root", "requests-and-limits"} <= {
        rule for rule, urn in rules if urn == "urn:demo"
    }


def test_the_gateway_routes_carry_the_authz_plugin(dev_plan):
    plan = dev_plan
    ingresses = plan.of_type("kubernetes:networking.k8s.io/v1:Ingress")
    # The demo app's pages are public by design (it logs users in itself); every API route is
    # to a model or a service.
    routes = [
        r for r in ingresses if r["inputs"]["metadata"]["namespace"] not in PUBLIC_ROUTE_NAMESPACES
    ]
    assert len(routes) == 2 and len(ingresses) == 3, [r["name"] for r in ingresses]
    assert check_resources(guarded_resources(plan)) == []
    # The same routes without their lab-authz plugins are caught, one finding per route.
    stripped = [
        r
        for r in guarded_resources(plan)
        if not (r.type.endswith(":KongPlugin") and r.props.get("plugin") == "lab-authz")
    ]
    found = [v for v in check_resources(stripped) if v.rule == "gateway-route-authz"]
    assert sorted(v.urn for v in found) == sorted(r["urn"] for r in routes)


def test_the_signal_rules_bite_on_the_real_queues_and_policies(dev_plan):
    queues = dev_plan.of_type("aws:sqs/queue:Queue")
    policies = dev_plan.of_type("aws:sqs/queuePolicy:QueuePolicy")
    assert queues and policies, "the plan has no SQS queues or queue policies to check"
    bare_queue = {k: v for k, v in queues[0]["inputs"].items() if k != "kmsMasterKeyId"}
    loose = json.loads(policies[0]["inputs"]["policy"])
    for statement in loose["Statement"]:
        statement.pop("Condition", None)
    changed = [
        Resource(queues[0]["type"], bare_queue, "urn:queue"),
        Resource(policies[0]["type"], {"policy": json.dumps(loose)}, "urn:policy"),
    ]
    found = {(v.rule, v.urn) for v in check_resources(changed)}
    assert found == {
        ("encrypted-sns-sqs", "urn:queue"),
        ("queue-policy-source-arn", "urn:policy"),
    }


def test_platform_namespaces_are_exactly_those_without_default_deny():
    assert set(PLATFORM_NAMESPACES) == {n.value for n in POD_SECURITY} - {
        n.value for n in DEFAULT_DENY
    }
