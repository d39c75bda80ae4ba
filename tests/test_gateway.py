"""The gateway on the plan: Kong's jwt credential and plugin config, the route plugin chain,
the TLS entry, nothing else exposed, and the Lua plugin shipped as its files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from components.cluster import NODE_PORTS
from components.gateway import (
    ALGORITHM,
    BUNDLED_PRIORITY,
    PLUGIN_DIR,
    TLS_DIGEST_ANNOTATION,
    GatewayArgs,
    GatewayConfigError,
    Route,
    spki_pem,
)
from lab.lua_plugin import LabAuthzRuntime
from lab.naming import Namespace, issuers
from lab.settings import PROJECT, ConfigSource, load_settings
from lab.versions import PINS
from tests.plans import plan_keeping_secrets
from tests.tls_chain import assert_issued_through_lab_tls, assert_vault_issued_chain

PROGRAM = Path(__file__).parent / "programs" / "gateway_only.py"
KONG = "kubernetes:configuration.konghq.com/v1"


@pytest.fixture(scope="module")
def gateway_plan():
    """The gateway program's plan, with the Secrets' plain inputs kept aside for the checks."""
    return plan_keeping_secrets("dev", PROGRAM)


def dev_settings(**overrides: str):
    values = {f"{PROJECT}:mode": "local", f"{PROJECT}:trustDomain": "lab.local", **overrides}
    return load_settings(ConfigSource(values, frozenset()))


def kong_objects(plan, kind: str) -> list[dict]:
    return [r["inputs"] for r in plan.of_type(f"{KONG}:{kind}")]


def api_routes(plan) -> list[dict]:
    """The Ingresses of the API host; the demo app's web entry is tested on its own."""
    return [
        i
        for i in plan.of_type("kubernetes:networking.k8s.io/v1:Ingress")
        if not i["inputs"]["metadata"]["name"].startswith("gateway-web-")
    ]


def test_the_demo_app_is_served_on_its_host_without_token_plugins(dev_plan):
    (entry,) = [
        i
        for i in dev_plan.of_type("kubernetes:networking.k8s.io/v1:Ingress")
        if i["inputs"]["metadata"]["name"].startswith("gateway-web-")
    ]
    metadata, spec = entry["inputs"]["metadata"], entry["inputs"]["spec"]
    assert metadata["namespace"] == Namespace.APPS.value
    assert "konghq.com/plugins" not in metadata["annotations"]
    (rule,) = spec["rules"]
    assert rule["host"] == "app.lab.localhost"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "demo-app", "port": {"number": 8080}}


def test_jwt_credential_is_the_issuer_with_the_spki_form_of_the_key(gateway_plan):
    plan, secrets = gateway_plan
    credential = secrets["issuer-idp-jwt"]
    assert credential["metadata"]["labels"] == {"konghq.com/credential": "jwt"}
    data = credential["stringData"]
    assert data["key"] == issuers(dev_settings()).idp == "https://idp.lab.localhost:9443/realms/lab"
    assert data["algorithm"] == ALGORITHM == "RS256"
    # The program gave PKCS#1; Kong is handed SPKI of the very same key.
    given = serialization.load_pem_public_key(plan.outputs["realmKeyPkcs1"].encode())
    assert plan.outputs["realmKeyPkcs1"].startswith("-----BEGIN RSA PUBLIC KEY-----")
    assert data["rsa_public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert serialization.load_pem_public_key(data["rsa_public_key"].encode()) == given
    consumer = plan.one(f"{KONG}:KongConsumer")
    assert consumer["inputs"]["username"] == "issuer-idp"
    assert consumer["inputs"]["credentials"] == ["issuer-idp-jwt"]
    assert consumer["inputs"]["metadata"]["namespace"] == Namespace.GATEWAY.value


def test_jwt_plugin_checks_exp_within_the_lab_token_lifetimes(gateway_plan):
    plan, _ = gateway_plan
    [jwt] = [p for p in kong_objects(plan, "KongClusterPlugin") if p["plugin"] == "jwt"]
    config = jwt["config"]
    lifetimes = dev_settings().lifetimes
    assert config["claims_to_verify"] == ["exp"]
    assert (
        config["maximum_expiration"]
        == 330
        == (max(lifetimes.access_token, lifetimes.delegated_token) + lifetimes.clock_skew)
    )
    assert config["key_claim_name"] == "iss"
    assert config["header_names"] == ["authorization"]
    assert config["uri_param_names"] == [] and config["cookie_names"] == []


def test_every_rate_limit_is_local_per_consumer_and_no_cluster_policy_exists(gateway_plan):
    plan, _ = gateway_plan
    limits = [
        p
        for kind in ("KongPlugin", "KongClusterPlugin")
        for p in kong_objects(plan, kind)
        if p["plugin"] == "rate-limiting"
    ]
    assert limits
    for limit in limits:
        assert limit["config"]["policy"] == "local"
        assert limit["config"]["limit_by"] == "consumer"
    policies = [
        p["config"].get("policy")
        for kind in ("KongPlugin", "KongClusterPlugin")
        for p in kong_objects(plan, kind)
    ]
    assert "cluster" not in policies


def test_every_route_carries_jwt_then_authz_then_rate_limit(gateway_plan):
    plan, _ = gateway_plan
    ingresses = api_routes(plan)
    assert {i["inputs"]["metadata"]["name"] for i in ingresses} == {
        "gateway-chat",
        "gateway-service-target",
    }
    cluster_plugins = {p["metadata"]["name"] for p in kong_objects(plan, "KongClusterPlugin")}
    for ingress in ingresses:
        inputs = ingress["inputs"]
        namespace = inputs["metadata"]["namespace"]
        names = inputs["metadata"]["annotations"]["konghq.com/plugins"].split(",")
        route = inputs["metadata"]["name"].removeprefix("gateway-")
        assert names[:3] == ["lab-jwt", f"lab-authz-{route}", "lab-rate-limit"]
        local = {
            p["metadata"]["name"]: p["plugin"]
            for p in kong_objects(plan, "KongPlugin")
            if p["metadata"]["namespace"] == namespace
        }
        for name in names:
            assert name in local or name in cluster_plugins, f"{name} missing for {route}"
        assert local[f"lab-authz-{route}"] == "lab-authz"
        assert inputs["spec"]["ingressClassName"] == "kong"
        assert inputs["metadata"]["annotations"]["konghq.com/protocols"] == "https"
        assert inputs["spec"]["rules"][0]["host"] == "api.lab.localhost"
        assert namespace != Namespace.LAB_SYSTEM.value


def test_plugin_priorities_put_authz_between_jwt_and_rate_limiting():
    handler = (PLUGIN_DIR / "handler.lua").read_text()
    priority = int(re.search(r"PRIORITY = (\d+)", handler).group(1))
    assert BUNDLED_PRIORITY["jwt"] > priority > BUNDLED_PRIORITY["rate-limiting"]
    assert BUNDLED_PRIORITY["rate-limiting"] > BUNDLED_PRIORITY["ai-proxy"]


def test_chat_goes_through_ai_proxy_to_ollama_in_the_models_namespace(gateway_plan):
    plan, _ = gateway_plan
    [proxy] = [p for p in kong_objects(plan, "KongPlugin") if p["plugin"] == "ai-proxy"]
    config = proxy["config"]
    assert proxy["metadata"]["namespace"] == Namespace.MODELS.value
    assert config["route_type"] == "llm/v1/chat"
    assert config["llm_format"] == "openai"
    assert config["model"]["provider"] == "llama2"
    assert config["model"]["name"] == dev_settings().ollama_model
    assert config["model"]["options"] == {
        "llama2_format": "ollama",
        "upstream_url": "http://ollama.models.svc.cluster.local:11434/api/chat",
    }
    assert config["logging"]["log_payloads"] is False


def test_images_are_routed_only_with_stable_diffusion():
    off = GatewayArgs.from_settings(dev_settings(), "pem")
    on = GatewayArgs.from_settings(dev_settings(**{f"{PROJECT}:stableDiffusion": "true"}), "pem")
    assert "images" not in {r.name for r in off.routes}
    [images] = [r for r in on.routes if r.name == "images"]
    assert (images.service, images.namespace, images.action) == (
        "stable-diffusion",
        "models",
        "generate_image",
    )


def test_kong_release_is_pinned_db_less_and_exposes_only_the_tls_proxy(gateway_plan):
    plan, _ = gateway_plan
    release = plan.one("kubernetes:helm.sh/v3:Release")
    inputs = release["inputs"]
    assert (inputs["chart"], inputs["version"]) == (PINS.kong.name, PINS.kong.version)
    assert inputs["repositoryOpts"]["repo"] == PINS.kong.repo
    assert inputs["skipCrds"] is True
    crds = plan.one("kubernetes:yaml/v2:ConfigFile")
    assert crds["urn"] in release["dependsOn"]
    assert f"kong-{PINS.kong_crds.version}/" in crds["inputs"]["file"]
    gateway = inputs["values"]["gateway"]
    assert gateway["image"] == {"repository": "kong", "tag": PINS.kong_image.tag}
    assert PINS.kong_image.tag.startswith("3.9.")
    controller = inputs["values"]["controller"]["ingressController"]["image"]
    assert controller["tag"] == PINS.kong_controller_image.tag
    assert gateway["env"]["database"] == "off"
    assert gateway["env"]["admin_gui_listen"] == "off"
    assert gateway["admin"]["type"] == "ClusterIP" and gateway["admin"]["http"]["enabled"] is False
    assert gateway["manager"]["enabled"] is False
    assert gateway["proxy"]["type"] == "NodePort"
    assert gateway["proxy"]["http"]["enabled"] is False
    assert gateway["proxy"]["tls"]["nodePort"] == NODE_PORTS["gateway_https"]
    assert gateway["plugins"]["configMaps"] == [
        {"name": "kong-plugin-lab-authz", "pluginName": "lab-authz"}
    ]


def test_plugin_config_map_ships_every_lua_module_as_is(gateway_plan):
    plan, _ = gateway_plan
    config_map = plan.one("kubernetes:core/v1:ConfigMap", "gateway-plugin-lab-authz")
    data = config_map["inputs"]["data"]
    assert {"handler.lua", "schema.lua", "access.lua"} <= set(data)
    for name, text in data.items():
        assert (PLUGIN_DIR / name).read_text() == text


def test_route_config_matches_the_plugin_schema(gateway_plan):
    plan, _ = gateway_plan
    runtime = LabAuthzRuntime(http_post=lambda *a: (500, b""))
    schema = runtime.to_python(runtime.require("kong.plugins.lab-authz.schema"))
    fields = {}
    for entry in schema["fields"]:
        fields.update(entry)
    config_fields = {}
    for entry in fields["config"]["fields"]:
        config_fields.update(entry)
    required = {k for k, v in config_fields.items() if v.get("required")}
    for plugin in kong_objects(plan, "KongPlugin"):
        if plugin["plugin"] != "lab-authz":
            continue
        config = plugin["config"]
        assert set(config) <= set(config_fields), set(config) - set(config_fields)
        assert required <= set(config)
        assert config["action"] in config_fields["action"]["one_of"]
        assert config["decision_url"].startswith("http://decision.lab-system.svc.cluster.local")
        assert config["agent_prefix"] == "spiffe://lab.local/ns/lab-agents/sa/"


def test_proxy_certificate_comes_from_vault_and_chains_to_the_root(gateway_plan):
    plan, secrets = gateway_plan
    tls = plan.one("kubernetes:core/v1:Secret", "gateway-proxy-tls")
    assert tls["inputs"]["type"] == "kubernetes.io/tls"
    assert tls["secretInputs"] == ["stringData"]
    # The API host, and the demo app's host served on the same TLS listener.
    hosts = ["api.lab.localhost", "app.lab.localhost"]
    assert_issued_through_lab_tls(plan, "gateway-proxy-tls", hosts)
    assert_vault_issued_chain(
        plan, secrets["gateway-proxy-tls"]["stringData"], hosts, plan.outputs["rootCaCertPem"]
    )
    # The root signs only Vault's intermediate here: no certificate straight from it.
    signed = plan.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert [r["name"] for r in signed] == ["vault-config-intermediate-cert"]
    assert "PRIVATE KEY" not in json.dumps(plan.to_json())
    # Kong reads ssl_cert at start: the chain's digest on the pods rolls them on renewal.
    values = plan.one("kubernetes:helm.sh/v3:Release", "gateway-kong")["inputs"]["values"]
    served = secrets["gateway-proxy-tls"]["stringData"]["tls.crt"]
    assert values["gateway"]["podAnnotations"] == {
        TLS_DIGEST_ANNOTATION: hashlib.sha256(served.encode()).hexdigest()
    }


def _pem(key, fmt) -> str:
    return key.public_bytes(serialization.Encoding.PEM, fmt).decode()


def test_spki_pem_converts_pkcs1_and_refuses_what_cannot_verify_rs256():
    key = rsa.generate_private_key(65537, 2048).public_key()
    spki = _pem(key, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki_pem(_pem(key, serialization.PublicFormat.PKCS1)) == spki
    assert spki_pem(spki) == spki
    with pytest.raises(GatewayConfigError, match="cannot verify RS256"):
        spki_pem(
            _pem(
                ec.generate_private_key(ec.SECP256R1()).public_key(),
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
        )
    short = rsa.generate_private_key(65537, 1024).public_key()  # noqa: S505 - refused on purpose
    with pytest.raises(GatewayConfigError, match="1024 bits"):
        spki_pem(_pem(short, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(GatewayConfigError, match="not a PEM public key"):
        spki_pem("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "realm key")


def test_routes_into_the_decision_service_namespace_are_refused():
    args = GatewayArgs.from_settings(dev_settings(), "pem")
    exposed = Route(
        "decision",
        "/decide",
        Namespace.LAB_SYSTEM.value,
        "decision",
        8080,
        "chat-models",
        (),
        "invoke_chat_model",
        "model",
        "chat",
    )
    with pytest.raises(GatewayConfigError, match="never exposed"):
        GatewayArgs(**{**vars(args), "routes": [*args.routes, exposed]})


def test_the_lab_plan_has_kong_with_the_plugin_on_every_model_and_service_route(dev_plan):
    gateway = dev_plan.one("identity-lab:gateway:Gateway", "gateway")
    inside = {r["urn"] for r in dev_plan.descendants(gateway)}
    ingresses = api_routes(dev_plan)
    assert {i["inputs"]["metadata"]["name"] for i in ingresses} == {
        "gateway-chat",
        "gateway-service-target",
    }
    authz = {
        p["inputs"]["metadata"]["name"]: p["inputs"]["config"]
        for p in dev_plan.of_type(f"{KONG}:KongPlugin")
        if p["inputs"]["plugin"] == "lab-authz"
    }
    for ingress in ingresses:
        assert ingress["urn"] in inside
        route = ingress["inputs"]["metadata"]["name"].removeprefix("gateway-")
        plugins = ingress["inputs"]["metadata"]["annotations"]["konghq.com/plugins"]
        assert plugins.split(",")[:3] == ["lab-jwt", f"lab-authz-{route}", "lab-rate-limit"]
        url = authz[f"lab-authz-{route}"]["decision_url"]
        assert url.startswith("http://") and ".lab-system.svc" in url
        assert url.endswith(":8080/access/v1/evaluation")
    assert dev_plan.outputs["gatewayUrl"] == "https://api.lab.localhost:8443"


def test_a_web_entry_into_the_decision_services_namespace_is_refused():
    from components.gateway import WebEntry

    args = GatewayArgs.from_settings(
        load_settings(
            ConfigSource({f"{PROJECT}:mode": "local", f"{PROJECT}:trustDomain": "lab.local"})
        ),
        "unused",
    )
    exposed = WebEntry("decision", "decide.lab.localhost", Namespace.LAB_SYSTEM.value, "x", 1)
    with pytest.raises(GatewayConfigError, match="never exposed"):
        GatewayArgs(**{**vars(args), "web_entries": [exposed]})
