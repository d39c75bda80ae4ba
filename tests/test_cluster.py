"""The cluster component: kind config, prerequisite checks with real processes, adopt mode."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.cluster import (
    NODE_PORTS,
    ClusterArgs,
    PrerequisiteError,
    check_prerequisites,
    kind_config,
)
from lab.settings import PROJECT, ConfigSource, load_settings
from lab.versions import PINS


def dev_args(**extra: str) -> ClusterArgs:
    values = {f"{PROJECT}:mode": "local", f"{PROJECT}:trustDomain": "lab.local", **extra}
    return ClusterArgs.from_settings(load_settings(ConfigSource(values)))


def test_kind_config_publishes_each_port_on_loopback_only():
    config = kind_config(dev_args(**{f"{PROJECT}:gatewayHttpsPort": "10443"}))
    (node,) = config["nodes"]
    mappings = {m["containerPort"]: m for m in node["extraPortMappings"]}
    assert mappings[NODE_PORTS["gateway_https"]]["hostPort"] == 10443
    assert mappings[NODE_PORTS["idp_https"]]["hostPort"] == 9443
    assert mappings[NODE_PORTS["vault"]]["hostPort"] == 8200
    assert mappings[NODE_PORTS["aws_emulator"]]["hostPort"] == 4566
    assert {m["listenAddress"] for m in mappings.values()} == {"127.0.0.1"}


def test_kind_config_pins_the_node_image_and_mirrors_the_registry():
    config = kind_config(
        dev_args(
            **{
                f"{PROJECT}:clusterDnsDomain": "lab.internal",
                f"{PROJECT}:serviceAccountIssuer": "https://kubernetes.default.svc.lab.internal",
            }
        )
    )
    assert config["nodes"][0]["image"] == PINS.kind_node.ref
    assert "@sha256:" in config["nodes"][0]["image"]
    patch = yaml.safe_load(config["kubeadmConfigPatches"][0])
    assert patch == {"kind": "ClusterConfiguration", "networking": {"dnsDomain": "lab.internal"}}
    assert 'config_path = "/etc/containerd/certs.d"' in config["containerdConfigPatches"][0]


def _fake_tool(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def tool_dir(tmp_path, monkeypatch):
    """A PATH holding only the fake tools a test writes (plus /bin for sh)."""
    monkeypatch.setenv("PATH", f"{tmp_path}:/bin")
    return tmp_path


def test_prerequisites_name_what_is_missing_and_how_to_get_it(tool_dir):
    with pytest.raises(PrerequisiteError) as caught:
        check_prerequisites(PINS.kind)
    text = str(caught.value)
    assert "docker: not found on PATH; install Docker" in text
    assert "kind: not found on PATH; install kind v0.33.x" in text
    assert "identity-lab:kubeconfig" in text


def test_prerequisites_refuse_a_docker_without_engine_and_an_old_kind(tool_dir):
    _fake_tool(tool_dir, "docker", "echo 'Cannot connect to the Docker daemon' >&2; exit 1")
    _fake_tool(tool_dir, "kind", "echo 'kind v0.20.0 go1.20.4 linux/amd64'")
    with pytest.raises(PrerequisiteError) as caught:
        check_prerequisites(PINS.kind)
    text = str(caught.value)
    assert "no Docker engine answers (Cannot connect to the Docker daemon)" in text
    assert "kind: version 0.20.0 is not supported (need >= 0.33.0, < 0.34.0)" in text


def test_prerequisites_pass_with_an_engine_and_a_supported_kind(tool_dir):
    _fake_tool(tool_dir, "docker", "echo 28.2.2")
    _fake_tool(tool_dir, "kind", "echo 'kind v0.33.0 go1.25.3 linux/amd64'")
    check_prerequisites(PINS.kind)


def test_dev_plan_creates_kind_then_registry_then_provider(dev_plan):
    cluster = dev_plan.one("identity-lab:cluster:Cluster")
    kind = dev_plan.one("command:local:Command", "cluster-kind")
    registry = dev_plan.one("docker:index/container:Container", "cluster-registry")
    provider = dev_plan.one("pulumi:providers:kubernetes", "cluster-k8s")
    assert {kind["parent"], registry["parent"], provider["parent"]} == {cluster["urn"]}
    assert registry["dependsOn"] == [kind["urn"]]
    assert set(provider["dependsOn"]) == {kind["urn"], registry["urn"]}
    assert yaml.safe_load(kind["inputs"]["stdin"]) == kind_config(dev_args())
    assert kind["inputs"]["environment"]["MIRROR_ENDPOINT"] == "http://identity-lab-registry:5000"
    assert registry["inputs"]["networksAdvanced"] == [{"name": "kind"}]
    assert registry["inputs"]["ports"][0]["ip"] == "127.0.0.1"
    assert provider["secretInputs"] == ["kubeconfig"]
    assert "kubeconfig" in dev_plan.secret_outputs


def test_create_script_is_valid_bash_and_prints_only_the_kubeconfig(dev_plan):
    script = dev_plan.one("command:local:Command", "cluster-kind")["inputs"]["create"]
    subprocess.run(["bash", "-n", "-c", script], check=True)
    assert "kind get kubeconfig" in script.splitlines()[-1]
    assert all(">&2" in line for line in script.splitlines() if "kind create" in line)


def test_adopted_cluster_creates_no_kind_and_keeps_the_kubeconfig_secret(plan_with):
    kubeconfig = "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: hunter2}}]\n"
    plan = plan_with(
        "dev",
        {f"{PROJECT}:kubeconfig": kubeconfig, f"{PROJECT}:imageRegistry": "registry.test/lab"},
        {f"{PROJECT}:kubeconfig"},
    )
    types = {r["type"] for r in plan.resources}
    commands = {r["name"] for r in plan.of_type("command:local:Command")}
    assert "cluster-kind" not in commands
    assert "docker:index/container:Container" not in types
    assert plan.one("pulumi:providers:kubernetes")["secretInputs"] == ["kubeconfig"]
    assert plan.outputs["imageRegistry"] == "registry.test/lab"
    assert "hunter2" not in json.dumps(plan.to_json())


def test_offline_plan_cli_on_bad_config_exits_2_with_the_loaders_message():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lab.offline_plan",
            "dev",
            "--config",
            f"{PROJECT}:trustDomain=spiffe://lab.local",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert result.returncode == 2
    assert "identity-lab:trustDomain='spiffe://lab.local': a trust domain has no scheme" in (
        result.stderr
    )
