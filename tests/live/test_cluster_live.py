"""Live: the cluster the stack created is up and has the lab's namespaces."""

from __future__ import annotations

import json

import pytest

from components.namespaces import POD_SECURITY

pytestmark = pytest.mark.live


def test_every_lab_namespace_exists(live_lab):
    found = json.loads(live_lab.kubectl("get", "namespaces", "-o", "json"))
    names = {item["metadata"]["name"] for item in found["items"]}
    assert {n.value for n in POD_SECURITY} <= names


def test_cluster_dns_domain_matches_the_stack(live_lab):
    config = live_lab.kubectl(
        "-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}"
    )
    assert f"kubernetes {live_lab.outputs['clusterDnsDomain']} " in config
