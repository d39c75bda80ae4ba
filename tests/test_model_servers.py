"""Model servers in the plan: pinned chart, readiness on the model, gateway-only, opt-in images."""

from __future__ import annotations

import pytest

from components.model_servers import ModelServersArgs, readiness_path
from lab.footprint import requests_in, totals
from lab.versions import PINS

RELEASE = "kubernetes:helm.sh/v3:Release"
POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def test_ollama_is_the_pinned_chart_pulling_the_configured_model(dev_plan):
    inputs = dev_plan.one(RELEASE, "models-ollama")["inputs"]
    assert (inputs["chart"], inputs["version"]) == (PINS.ollama.name, PINS.ollama.version)
    assert inputs["repositoryOpts"]["repo"] == PINS.ollama.repo
    assert inputs["namespace"] == "models"
    values = inputs["values"]
    assert values["image"] == {"repository": "ollama/ollama", "tag": PINS.ollama_image.tag}
    assert values["ollama"]["models"]["pull"] == ["qwen2.5:0.5b"]
    assert values["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert values["persistentVolume"] == {"enabled": True, "size": "5Gi"}


def test_ollama_is_ready_only_when_its_model_is_listed(plan_with):
    plan = plan_with("dev", {"identity-lab:ollamaModel": "llama3.2:1b"})
    values = plan.one(RELEASE, "models-ollama")["inputs"]["values"]
    assert values["ollama"]["models"]["pull"] == ["llama3.2:1b"]
    # Ollama answers GET /v1/models/<name> with 404 until the model is in its local list.
    assert values["readinessProbe"]["path"] == "/v1/models/llama3.2:1b"
    assert values["livenessProbe"]["path"] == "/"


def test_a_namespaced_model_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="library model without '/'"):
        readiness_path("someone/model:1b")


def test_models_admit_only_the_gateway_proxy(dev_plan):
    from components.gateway import PROXY_POD_LABELS

    policy = dev_plan.one(POLICY, "models-from-gateway")["inputs"]
    assert policy["metadata"]["namespace"] == "models"
    assert policy["spec"]["podSelector"] == {}
    (rule,) = policy["spec"]["ingress"]
    # One peer: the gateway's namespace AND the proxy's label (both in one selector).
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}},
            "podSelector": {"matchLabels": {"identity-lab/role": "gateway-proxy"}},
        }
    ]
    assert PROXY_POD_LABELS == {"identity-lab/role": "gateway-proxy"}
    assert rule["ports"] == [{"port": 11434, "protocol": "TCP"}]


def test_stable_diffusion_is_off_by_default(dev_plan):
    assert not [r for r in dev_plan.of_type(DEPLOYMENT) if r["name"] == "models-sd"]
    assert dev_plan.outputs["chatUpstream"] == "ollama.models.svc:11434"


def test_stable_diffusion_on_cpu_and_on_gpu(plan_with):
    cpu = plan_with("dev", {"identity-lab:stableDiffusion": "true"})
    gpu = plan_with("dev", {"identity-lab:stableDiffusion": "true", "identity-lab:gpu": "true"})
    on_cpu = cpu.one(DEPLOYMENT, "models-sd")["inputs"]["spec"]["template"]["spec"]
    on_gpu = gpu.one(DEPLOYMENT, "models-sd")["inputs"]["spec"]["template"]["spec"]
    assert on_cpu["containers"][0]["image"] == PINS.image_server.ref
    assert "nvidia.com/gpu" not in on_cpu["containers"][0]["resources"]["limits"]
    assert on_gpu["containers"][0]["image"] == PINS.image_server_gpu.ref
    assert on_gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    ports = cpu.one(POLICY, "models-from-gateway")["inputs"]["spec"]["ingress"][0]["ports"]
    assert [p["port"] for p in ports] == [11434, 8080]
    service = cpu.one("kubernetes:core/v1:Service", "models-sd-service")["inputs"]
    # The gateway's image route targets this Service name.
    assert service["metadata"]["name"] == "stable-diffusion"


def test_stable_diffusion_without_its_image_is_refused_before_any_resource():
    base = {
        "chart": PINS.ollama,
        "ollama_image": PINS.ollama_image,
        "chat_model": "qwen2.5:0.5b",
        "storage_gi": 5,
    }
    with pytest.raises(ValueError, match="stable_diffusion needs image_server"):
        ModelServersArgs(**base, stable_diffusion=True)
    with pytest.raises(ValueError, match="image_server_gpu with gpu"):
        ModelServersArgs(**base, stable_diffusion=True, gpu=True, image_server=PINS.image_server)
    allowed = ModelServersArgs(**base, stable_diffusion=True, image_server=PINS.image_server)
    assert allowed.image_server == PINS.image_server
    assert ModelServersArgs(**base).image_server is None


def test_default_lab_fits_a_laptop(dev_plan):
    cpu, memory = totals(dev_plan)
    biggest = sorted(requests_in(dev_plan), key=lambda r: -r.memory)[:5]
    report = ", ".join(f"{r.resource} {r.cpu:.2f} CPU {r.memory / 2**20:.0f} MiB" for r in biggest)
    print(f"default lab requests {cpu:.2f} CPU, {memory / 2**30:.2f} GiB; biggest: {report}")
    assert cpu <= 4.0, report
    assert memory <= 8 * 2**30, report
    # Ollama is sized, so it is counted: the budget is not met by leaving the model out.
    assert any(r.resource == "models-ollama" for r in requests_in(dev_plan))
