"""Demo workloads in the plan: each wired to its SPIFFE ID, IdP client and gateway route; their
chart values rendered offline and validated strictly."""

from __future__ import annotations

import pytest

from components.demo_workloads import (
    AGENT,
    CHAT_PATH,
    DEMO_APP,
    SERVICE_CALLER,
    SERVICE_TARGET,
    TARGET_PATH,
)
from lab.charts import render, validate
from lab.naming import issuers, spiffe_id
from lab.settings import ConfigSource, load_settings

RELEASE = "kubernetes:helm.sh/v3:Release"
WORKLOADS = {
    DEMO_APP: "lab-apps",
    AGENT: "lab-agents",
    SERVICE_CALLER: "lab-services",
    SERVICE_TARGET: "lab-services",
}


@pytest.fixture(scope="module")
def settings():
    return load_settings(
        ConfigSource({"identity-lab:mode": "local", "identity-lab:trustDomain": "lab.local"})
    )


def release(plan, account: str) -> dict:
    return plan.one(RELEASE, f"{account}-release")["inputs"]


def env(plan, account: str) -> dict:
    return release(plan, account)["values"]["env"]


@pytest.mark.parametrize(("account", "namespace"), WORKLOADS.items())
def test_each_workload_runs_under_its_account_in_its_namespace(dev_plan, account, namespace):
    inputs = release(dev_plan, account)
    assert inputs["namespace"] == namespace
    assert inputs["name"] == account
    assert inputs["values"]["serviceAccount"]["name"] == account
    assert inputs["values"]["image"]["repository"] == f"localhost:5001/{_folder(account)}"


def _folder(account: str) -> str:
    return {
        DEMO_APP: "demo_app",
        AGENT: "agent",
        SERVICE_CALLER: "service_caller",
        SERVICE_TARGET: "service_target",
    }[account]


def test_svid_workloads_use_their_spiffe_id_as_client_id(dev_plan):
    for account, namespace in ((AGENT, "lab-agents"), (SERVICE_CALLER, "lab-services")):
        values = release(dev_plan, account)["values"]
        assert values["spiffe"] == {"enabled": True}
        assert values["env"]["CLIENT_ID"] == spiffe_id("lab.local", namespace, account)


def test_every_workload_talks_to_the_realm_issuer(dev_plan, settings):
    issuer = issuers(settings).idp
    for account in (DEMO_APP, AGENT, SERVICE_CALLER):
        assert env(dev_plan, account)["IDP_ISSUER"] == issuer


def test_clients_exist_in_the_realm_model(dev_plan, settings):
    realm_module = pytest.importorskip("lab.realm", reason="the realm model is not in the tree")
    realm = realm_module.lab_realm(settings)
    demo = realm.client(env(dev_plan, DEMO_APP)["CLIENT_ID"])
    assert f"{env(dev_plan, DEMO_APP)['PUBLIC_URL']}/callback" in demo.redirect_uris
    assert demo.pkce
    agent = realm.client(env(dev_plan, AGENT)["CLIENT_ID"])
    assert env(dev_plan, AGENT)["DELEGATED_AUDIENCE"] in agent.exchange_audiences
    caller = realm.client(env(dev_plan, SERVICE_CALLER)["CLIENT_ID"])
    assert env(dev_plan, SERVICE_CALLER)["SCOPE"] in caller.default_scopes


def test_paths_match_the_gateway_routes(settings):
    gateway = pytest.importorskip("components.gateway", reason="the gateway is not in the tree")
    args = gateway.GatewayArgs.from_settings(settings, "PEM")
    routes = {r.path: r for r in args.routes}
    assert routes[CHAT_PATH].audience == "chat-models"
    target = routes[TARGET_PATH]
    assert target.service == SERVICE_TARGET and target.namespace == "lab-services"


def test_demo_app_client_secret_is_a_secret_in_the_plan(dev_plan):
    secret = dev_plan.one("kubernetes:core/v1:Secret", "demo-demo-app-client")
    assert secret["inputs"]["stringData"] == "[secret]"
    values = release(dev_plan, DEMO_APP)["values"]
    assert values["secretEnv"]["CLIENT_SECRET"] == {"secret": "demo-app-client", "key": "secret"}


def test_only_the_gateway_reaches_the_app_and_the_target(dev_plan):
    for account in (DEMO_APP, SERVICE_TARGET):
        rules = release(dev_plan, account)["values"]["networkPolicy"]["ingressFrom"]
        # Kong's proxy pods only: not its ingress controller, not other gateway pods.
        assert rules == [
            {"namespace": "gateway", "podLabels": {"identity-lab/role": "gateway-proxy"}}
        ]
    for account in (AGENT, SERVICE_CALLER):
        assert "networkPolicy" not in release(dev_plan, account)["values"]


@pytest.mark.parametrize("account", WORKLOADS)
def test_planned_values_render_valid_hardened_objects(dev_plan, account):
    inputs = release(dev_plan, account)
    objects = render(
        "lab-service", inputs["values"], release=account, namespace=inputs["namespace"]
    )
    validate(objects)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == account
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] == {"cpu": "25m", "memory": "64Mi"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/etc/lab-ca" in mounts
    service = next(o for o in objects if o["kind"] == "Service")
    assert service["metadata"]["name"] == account
