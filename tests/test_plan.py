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
    text = json.dumps(plan.to_json()) + render_tree(plan)
    assert "PRIVATE KEY" not in text
    assert {"kubeconfig", "demoUserPasswords", "signalsCredentials"} <= set(plan.secret_outputs)
    # Every secret the mocks saw (keys, passwords, tokens, the kubeconfig), by value. Short
    # strings are skipped: they would match by accident.
    secrets = {v for v in plan.secret_values if len(v) >= 12}
    assert len(secrets) >= 10, "the mocks saw too few secrets for this check to mean much"
    assert [v[:6] + "..." for v in secrets if v in text] == []


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


# API groups Kubernetes serves itself; any other group in a resource type comes from a CRD.
BUILT_IN_GROUPS = {"core", "apps", "networking.k8s.io", "helm.sh", "yaml", "batch", "rbac"}


def _crd_steps(plan) -> set[str]:
    """Resources that install CRDs: their own release or manifest step, named *-crds."""
    return {
        r["urn"]
        for r in plan.resources
        if r["type"] in ("kubernetes:helm.sh/v3:Release", "kubernetes:yaml/v2:ConfigFile")
        and r["name"].endswith("-crds")
    }


def _waits_for(plan, resource: dict, targets: set[str]) -> bool:
    """Whether the resource, or a component above it, explicitly depends on one of targets."""
    by_urn = plan.by_urn()
    seen: set[str] = set()
    stack = [resource["urn"]]
    while stack:
        urn = stack.pop()
        if urn in seen or urn not in by_urn:
            continue
        seen.add(urn)
        current = by_urn[urn]
        if targets & set(current["dependsOn"]):
            return True
        stack += current["dependsOn"]
        if current["parent"]:
            stack.append(current["parent"])
    return False


def test_custom_resources_wait_for_the_crds_they_use(plan):
    crds = _crd_steps(plan)
    custom = [
        r
        for r in plan.resources
        if r["type"].startswith("kubernetes:")
        and r["type"].split(":")[1].split("/")[0] not in BUILT_IN_GROUPS
    ]
    # Kong's plugins and consumers are custom resources; SPIRE's identities ride in its release.
    assert len(custom) >= 5, [r["type"] for r in custom]
    assert [r["name"] for r in custom if not _waits_for(plan, r, crds)] == []
    spire = plan.one("kubernetes:helm.sh/v3:Release", "spire-release")
    assert spire["inputs"]["values"]["spire-server"]["controllerManager"]["identities"]
    assert _waits_for(plan, spire, crds)


def test_no_command_streams_its_stdout_to_the_console(plan):
    # pulumi-command logs stdout and stderr by default; the kind and Vault steps print a
    # kubeconfig, unseal keys and a root token there, which Pulumi would show and keep.
    commands = plan.of_type("command:local:Command")
    assert {c["name"] for c in commands} >= {"cluster-kind", "vault-init", "vault-unseal"}
    assert {c["name"]: c["inputs"].get("logging") for c in commands} == {
        c["name"]: "stderr" for c in commands
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("config: [a, b\n", "is not valid YAML"),
        ("config:\n  - identity-lab:mode\n", "expected a mapping with a `config:` mapping"),
        ("just a string\n", "expected a mapping with a `config:` mapping"),
    ],
)
def test_a_malformed_stack_file_exits_2_with_what_is_wrong(tmp_path, text, expected):
    root = Path(__file__).parent.parent
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.broken.yaml").write_text(text)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, lab.offline_plan as p; from pathlib import Path; "
            f"p.ROOT = Path({str(project)!r}); sys.exit(p.main(['broken']))",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_the_tree_names_a_whole_component_once_when_a_resource_waits_for_it(dev_plan):
    tree = render_tree(dev_plan)
    namespaces = dev_plan.one("identity-lab:cluster:Namespaces")
    count = len(dev_plan.children(namespaces))
    assert f"vault-release  (after namespaces ({count} resources))" in tree
    assert max(len(line) for line in tree.splitlines()) < 200
