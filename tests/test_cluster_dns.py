"""Pods reach the lab's public names: CoreDNS rewrites each to the Service on the same port."""

from __future__ import annotations

import pytest

from components.cluster_dns import ClusterDnsArgs, HostRewrite, corefile


def test_dev_plan_rewrites_the_idp_and_the_gateway(dev_plan):
    patch = dev_plan.one("kubernetes:core/v1:ConfigMapPatch", "cluster-dns-coredns")["inputs"]
    assert patch["metadata"] == {
        "name": "coredns",
        "namespace": "kube-system",
        "annotations": {"pulumi.com/patchForce": "true"},
    }
    assert patch["data"]["Corefile"] == corefile(
        [
            HostRewrite("idp.lab.localhost", "keycloak-http.idp.svc.cluster.local"),
            HostRewrite("api.lab.localhost", "kong-gateway-proxy.gateway.svc.cluster.local"),
        ],
        "cluster.local",
    )


def test_each_rewritten_service_listens_on_the_public_port(dev_plan):
    kong = dev_plan.one("kubernetes:helm.sh/v3:Release", "gateway-kong")["inputs"]["values"]
    assert kong["gateway"]["proxy"]["tls"]["servicePort"] == 8443
    assert dev_plan.outputs["gatewayUrl"] == "https://api.lab.localhost:8443"
    assert dev_plan.outputs["idpUrl"] == "https://idp.lab.localhost:9443"


def test_corefile_rewrites_names_and_answers_and_keeps_kinds_plugins():
    text = corefile([HostRewrite("idp.lab.localhost", "kc.idp.svc.lab.internal")], "lab.internal")
    assert "       name exact idp.lab.localhost kc.idp.svc.lab.internal\n" in text
    assert "       answer name kc.idp.svc.lab.internal idp.lab.localhost\n" in text
    assert "    kubernetes lab.internal in-addr.arpa ip6.arpa {\n" in text
    assert text.index("rewrite stop") < text.index("kubernetes lab.internal")
    for plugin in ("errors", "ready", "forward . /etc/resolv.conf", "cache 30", "reload"):
        assert plugin in text
    assert text.count("{") == text.count("}")


def test_a_public_name_rewritten_twice_is_refused():
    twice = [HostRewrite("a.lab.localhost", "x.svc"), HostRewrite("a.lab.localhost", "y.svc")]
    with pytest.raises(ValueError, match="each public name once"):
        ClusterDnsArgs(twice, "cluster.local")


def test_adopted_cluster_gets_no_dns_patch(plan_with):
    plan = plan_with(
        "dev",
        {
            "identity-lab:kubeconfig": "apiVersion: v1\nkind: Config\n",
            "identity-lab:serviceAccountIssuer": "https://oidc.example.com/id/1",
        },
        {"identity-lab:kubeconfig"},
    )
    assert plan.of_type("kubernetes:core/v1:ConfigMapPatch") == []
    assert plan.one("identity-lab:cluster:ClusterDns")["parent"] is None
