"""The footprint reader: Kubernetes quantities and requests found anywhere in a plan's inputs."""

from __future__ import annotations

import pytest

from lab.footprint import cpu_cores, memory_bytes, requests_in, totals
from lab.offline_plan import Plan


@pytest.mark.parametrize(
    ("quantity", "cores"), [("250m", 0.25), ("1", 1.0), (2, 2.0), ("1.5", 1.5), ("0m", 0.0)]
)
def test_cpu_quantities(quantity, cores):
    assert cpu_cores(quantity) == cores


@pytest.mark.parametrize(
    ("quantity", "size"),
    [("64Mi", 64 * 2**20), ("1Gi", 2**30), ("500M", 500 * 10**6), ("1024", 1024), (0, 0)],
)
def test_memory_quantities(quantity, size):
    assert memory_bytes(quantity) == size


def test_a_bad_memory_quantity_is_named():
    with pytest.raises(ValueError, match="not a Kubernetes memory quantity: '12 GB'"):
        memory_bytes("12 GB")


def test_requests_are_found_in_objects_and_chart_values():
    plan = Plan(
        stack="t",
        resources=[
            {
                "name": "release",
                "inputs": {
                    "values": {
                        "server": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
                        "agents": [{"resources": {"requests": {"cpu": "50m"}}}],
                    }
                },
            },
            {
                "name": "deployment",
                "inputs": {
                    "spec": {
                        "containers": [
                            {
                                "resources": {
                                    "requests": {"memory": "1Gi"},
                                    "limits": {"memory": "2Gi"},
                                }
                            },
                        ]
                    }
                },
            },
            {"name": "no-inputs", "inputs": None},
            {"name": "claim", "inputs": {"spec": {"resources": {"requests": {"storage": "1Gi"}}}}},
        ],
        outputs={},
    )
    found = {(r.resource, r.path): (r.cpu, r.memory) for r in requests_in(plan)}
    assert found == {
        ("release", "values.server"): (0.1, 128 * 2**20),
        ("release", "values.agents[0]"): (0.05, 0),
        ("deployment", "spec.containers[0]"): (0.0, 2**30),
    }
    cpu, memory = totals(plan)
    assert cpu == pytest.approx(0.15)
    assert memory == 128 * 2**20 + 2**30


def test_the_dev_plan_sizes_every_workload_it_deploys(dev_plan):
    sized = {(r.resource, r.path) for r in requests_in(dev_plan)}
    workloads = [r["name"] for r in dev_plan.of_type("identity-lab:workloads:LabWorkload")]
    assert len(workloads) >= 8
    for workload in workloads:
        assert (f"{workload}-release", "values") in sized, workload
    for part in (
        "spire-server",
        "spire-server.controllerManager",
        "spire-agent",
        "spiffe-csi-driver",
        "spiffe-oidc-discovery-provider",
    ):
        assert ("spire-release", f"values.{part}") in sized, part
    cpu, memory = totals(dev_plan)
    # The laptop budget: at most 4 CPUs and 8 GiB requested without Stable Diffusion.
    assert 1.0 <= cpu <= 4.0
    assert 2 * 2**30 <= memory <= 8 * 2**30
