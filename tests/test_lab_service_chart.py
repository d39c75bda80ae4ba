"""The chart every lab service is deployed with: rendered offline, validated strictly."""

from __future__ import annotations

import helm_python as helm
import pytest

from lab.charts import render, validate

IMAGE = {"repository": "localhost:5001/decision", "tag": "0123abcd"}


def by_kind(objects: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objects}


def test_defaults_render_a_hardened_service():
    objects = render("lab-service", {"image": IMAGE}, release="decision", namespace="lab-system")
    validate(objects)
    kinds = by_kind(objects)
    assert set(kinds) == {"ServiceAccount", "Deployment", "Service", "NetworkPolicy"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "localhost:5001/decision:0123abcd"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["automountServiceAccountToken"] is False
    assert kinds["NetworkPolicy"]["spec"]["ingress"] is None


def test_every_option_renders_valid_objects():
    values = {
        "image": IMAGE,
        "env": {"LOG_LEVEL": "info", "RETRIES": 3},
        "secretEnv": {"ADMIN_TOKEN": {"secret": "decision-admin", "key": "token"}},
        "secretMounts": [{"name": "keys", "secretName": "realm-key", "mountPath": "/keys"}],
        "configMounts": [{"name": "policies", "configMapName": "cedar", "mountPath": "/cedar"}],
        "persistence": {"enabled": True, "size": "2Gi", "mountPath": "/data"},
        "spiffe": {"enabled": True},
        "service": {"type": "NodePort", "nodePort": 30943},
        "networkPolicy": {
            "ingressFrom": [
                {"namespace": "gateway", "podLabels": {"app": "kong"}},
                {"namespace": "lab-system"},
            ]
        },
    }
    objects = render("lab-service", values, release="decision", namespace="lab-system")
    validate(objects)
    kinds = by_kind(objects)
    assert kinds["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert kinds["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
    env = {
        e["name"]: e
        for e in kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["RETRIES"]["value"] == "3"
    assert env["ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "decision-admin",
        "key": "token",
    }
    assert env["SPIFFE_ENDPOINT_SOCKET"]["value"] == "unix:///spiffe-workload-api/spire-agent.sock"
    assert kinds["Service"]["spec"]["ports"][0]["nodePort"] == 30943
    (rule,) = kinds["NetworkPolicy"]["spec"]["ingress"]
    assert rule["from"][0]["podSelector"] == {"matchLabels": {"app": "kong"}}
    assert "podSelector" not in rule["from"][1]


def test_an_image_is_required():
    required = r"image\.repository and image\.tag are required"
    with pytest.raises(helm.HelmRenderError, match=required):
        render("lab-service", {})
