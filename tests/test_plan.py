"""Whole-lab invariants on the offline plans of both stacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lab.offline_plan import render_tree

STACKS = ["dev", "aws"]


@pytest.fixture(params=STACKS)
def plan(request, dev_plan, aws_plan):
    return {"dev": dev_plan, "aws": aws_plan}[request.param]


def test_every_stack_has_the_foundation(plan):
    assert plan.one("identity-lab:cluster:Cluster")["parent"] is None
    assert plan.one("identity-lab:pki:RootCa")["parent"] is None
    assert plan.outputs["trustDomain"] == "lab.local"


def test_every_resource_sits_under_a_component(plan):
    components = {r["urn"] for r in plan.resources if not r["custom"]}
    loose = [r["name"] for r in plan.resources if r["custom"] and r["parent"] not in components]
    assert loose == []


def test_every_kubernetes_object_uses_the_cluster_provider(plan):
    provider = plan.one("pulumi:providers:kubernetes", "cluster-k8s")["urn"]
    objects = [r for r in plan.resources if r["type"].startswith("kubernetes:")]
    assert objects, "the plan has no Kubernetes objects"
    assert {r["provider"] for r in objects} == {provider}


def test_no_secret_value_in_the_plan(plan):
    text = json.dumps(plan.to_json())
    assert "PRIVATE KEY" not in text
    assert {"kubeconfig"} <= set(plan.secret_outputs)


def test_tree_shows_every_resource_under_its_parent(plan):
    tree = render_tree(plan)
    assert tree.splitlines()[0] == f"identity-lab ({plan.stack}): {len(plan.resources)} resources"
    assert len(tree.splitlines()) == len(plan.resources) + 1
    assert "│  ├─ docker:index/container:Container  cluster-registry  (after cluster-kind)" in tree


def test_cli_writes_the_json_plan(tmp_path):
    out = tmp_path / "plan.json"
    result = subprocess.run(
        [sys.executable, "-m", "lab.offline_plan", "dev", "--json", str(out), "--quiet"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=True,
    )
    written = json.loads(out.read_text())
    assert result.stdout.startswith(f"identity-lab (dev): {written['resourceCount']} resources")
    assert written["resourceCount"] == len(written["resources"])
    assert all(
        set(r) >= {"urn", "type", "name", "parent", "dependsOn", "inputs"}
        for r in written["resources"]
    )


def test_lab_namespaces_deny_ingress_by_default(plan):
    from components.namespaces import DEFAULT_DENY, POD_SECURITY

    namespaces = {
        r["inputs"]["metadata"]["name"]: r for r in plan.of_type("kubernetes:core/v1:Namespace")
    }
    assert set(namespaces) == {n.value for n in POD_SECURITY}
    policies = plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    denied = {
        p["inputs"]["metadata"]["namespace"]
        for p in policies
        if p["inputs"]["metadata"]["name"] == "default-deny-ingress"
        and p["inputs"]["spec"]["podSelector"] == {}
        and p["inputs"]["spec"]["policyTypes"] == ["Ingress"]
        and not p["inputs"]["spec"].get("ingress")
    }
    assert denied == {n.value for n in DEFAULT_DENY}
    for name in denied:
        labels = namespaces[name]["inputs"]["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted" or name == "models"
