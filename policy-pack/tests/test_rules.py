"""Each rule on a resource that passes and on one that fails, called as a plain function."""

from __future__ import annotations

import copy
import json

import pytest

from lab_guardrails import rules
from lab_guardrails.rules import DEFAULTS, Resource, check_resources, rendered_resources

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"

GOOD_CONTAINER = {
    "name": "decision",
    "image": "localhost:5001/decision:0123abcd",
    "env": [
        {"name": "PORT", "value": "8080"},
        {"name": "ADMIN_TOKEN", "valueFrom": {"secretKeyRef": {"name": "admin", "key": "t"}}},
        {"name": "ADMIN_TOKEN_FILE", "value": "/run/secrets/admin"},
        {"name": "TOKEN_ENDPOINT", "value": "https://idp.lab.local/realms/lab/token"},
    ],
    "resources": {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "256Mi"},
    },
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
}


def deployment(namespace: str = "lab-system", name: str = "decision", **container) -> dict:
    spec = {**copy.deepcopy(GOOD_CONTAINER), **container}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "template": {
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                    "containers": [spec],
                }
            }
        },
    }


def release(values: dict, namespace: str = "models", name: str = "ollama") -> dict:
    return {"name": name, "namespace": namespace, "chart": "ollama", "values": values}


def findings(check, resource_type: str, props: dict) -> list[str]:
    return check(resource_type, props, DEFAULTS)


# --------------------------------------------------------------------------- secrets


def test_secrets_pass_on_references_paths_and_urls():
    assert findings(rules.no_literal_secrets, DEPLOYMENT, deployment()) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KEYCLOAK_ADMIN_PASSWORD", "hunter2"),
        ("CLIENT_SECRET", "s3cr3t-value"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
        ("SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"),
        ("HARMLESS_NAME", "-----BEGIN EC PRIVATE KEY-----"),
        ("DATABASE_URL", "postgres://keycloak:hunter2@db:5432/keycloak"),
        ("ANY", "[secret]"),
    ],
)
def test_secrets_fail_on_literal_secret_env(name, value):
    props = deployment(env=[{"name": name, "value": value}])
    (finding,) = findings(rules.no_literal_secrets, DEPLOYMENT, props)
    assert f"Deployment lab-system/decision container decision env: {name}" in finding


def test_secret_names_and_reference_names():
    assert rules.secret_name("clientSecret")
    assert rules.secret_name("api_key")
    assert rules.secret_name("VAULT_TOKEN")
    assert not rules.secret_name("accessTokenLifespan")
    assert not rules.secret_name("SECRET_NAME")
    assert not rules.secret_name("AWS_ACCESS_KEY_ID")
    assert not rules.secret_name("LOG_LEVEL")


def test_configmap_secrets_fail_in_keys_and_embedded_documents():
    realm = json.dumps({"realm": "lab", "clients": [{"clientId": "demo", "secret": "abc123x"}]})
    props = {
        "metadata": {"name": "realm", "namespace": "idp"},
        "data": {"realm.json": realm, "admin-password": "letmein", "log-level": "info"},
    }
    found = findings(rules.no_literal_secrets, CONFIGMAP, props)
    assert len(found) == 2
    assert any("realm.json: clients[0].secret" in f for f in found)
    assert any("admin-password looks like a secret" in f for f in found)


def test_configmap_file_keys_are_judged_by_content():
    code = "local token = kong.request.get_header('authorization')\nreturn token\n"
    props = {"metadata": {"name": "plugin", "namespace": "gateway"}, "data": {"token.lua": code}}
    assert findings(rules.no_literal_secrets, CONFIGMAP, props) == []
    props["data"]["token.txt"] = "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"
    (finding,) = findings(rules.no_literal_secrets, CONFIGMAP, props)
    assert "data: token.txt holds a literal secret value" in finding


def test_configmap_secrets_pass_on_plain_config():
    props = {"metadata": {"name": "cfg"}, "data": {"realm.json": '{"realm": "lab"}', "a": "b"}}
    assert findings(rules.no_literal_secrets, CONFIGMAP, props) == []


def test_helm_values_env_is_checked_as_a_map_and_a_list():
    ok = release({"env": {"LOG_LEVEL": "info"}, "extraEnv": [{"name": "A", "value": "1"}]})
    assert findings(rules.no_literal_secrets, RELEASE, ok) == []
    bad = release({"server": {"extraEnv": [{"name": "VAULT_TOKEN", "value": "root"}]}})
    (finding,) = findings(rules.no_literal_secrets, RELEASE, bad)
    assert "models/ollama server.extraEnv: VAULT_TOKEN" in finding


# -------------------------------------------------------------------------- non-root


def test_non_root_passes_on_a_hardened_workload():
    assert findings(rules.non_root, DEPLOYMENT, deployment()) == []


def test_non_root_fails_without_run_as_non_root_and_with_escalation():
    props = deployment(securityContext={})
    props["spec"]["template"]["spec"]["securityContext"] = {}
    found = findings(rules.non_root, DEPLOYMENT, props)
    assert [f.split(": ", 1)[1] for f in found] == [
        "neither runAsNonRoot: true nor a non-zero runAsUser is set",
        "allowPrivilegeEscalation is not false",
    ]


def test_non_root_fails_on_root_user_and_privileged():
    props = deployment(
        securityContext={"runAsUser": 0, "privileged": True, "allowPrivilegeEscalation": False}
    )
    found = findings(rules.non_root, DEPLOYMENT, props)
    assert any("runAsUser is 0" in f for f in found)
    assert any("privileged is true" in f for f in found)


def test_non_root_exempts_only_the_spire_node_workloads():
    agent = deployment(namespace="spire-system", name="spire-agent")
    agent["spec"]["template"]["spec"]["containers"][0].update(
        name="spire-agent", securityContext={"runAsUser": 0}
    )
    assert findings(rules.non_root, "kubernetes:apps/v1:DaemonSet", agent) == []
    elsewhere = copy.deepcopy(agent)
    elsewhere["metadata"]["namespace"] = "lab-system"
    assert findings(rules.non_root, "kubernetes:apps/v1:DaemonSet", elsewhere)


def test_non_root_reads_helm_values_security_contexts():
    ok = release({"securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False}})
    assert findings(rules.non_root, RELEASE, ok) == []
    bad = release({"ollama": {"podSecurityContext": {"runAsUser": 0}}})
    (finding,) = findings(rules.non_root, RELEASE, bad)
    assert "values ollama.podSecurityContext: runAsUser is 0 (root)" in finding


def test_non_root_checks_containers_listed_in_values():
    sidecar = {"name": "proxy", "image": "envoy:1.0", "securityContext": {}}
    found = findings(rules.non_root, RELEASE, release({"extraContainers": [sidecar]}))
    assert len(found) == 2 and "values extraContainers[0]" in found[0]


# ------------------------------------------------------------------ requests / limits


def test_requests_and_limits_pass():
    assert findings(rules.requests_and_limits, DEPLOYMENT, deployment()) == []


def test_requests_and_limits_fail_on_a_missing_limit():
    props = deployment(resources={"requests": {"cpu": "1", "memory": "1Gi"}})
    (finding,) = findings(rules.requests_and_limits, DEPLOYMENT, props)
    assert finding.endswith("resources limits.cpu, limits.memory not set")


def test_requests_and_limits_in_values():
    full = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert findings(rules.requests_and_limits, RELEASE, release({"resources": full})) == []
    (finding,) = findings(rules.requests_and_limits, RELEASE, release({"x": {"resources": {}}}))
    assert "values x.resources: requests.cpu" in finding


# ---------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    ("ref", "pinned"),
    [
        ("kong:3.9.1", True),
        ("localhost:5001/decision:0123abcd", True),
        ("kindest/node:v1.36.4@sha256:" + "a" * 64, True),
        ("sha256:" + "b" * 64, True),
        ("kong", False),
        ("localhost:5001/decision", False),
        ("ollama/ollama:latest", False),
        ("registry:stable", False),
    ],
)
def test_image_refs(ref, pinned):
    assert (rules.image_problem(ref) is None) is pinned


def test_pinned_images_on_containers_values_and_docker():
    assert findings(rules.pinned_images, DEPLOYMENT, deployment()) == []
    assert findings(rules.pinned_images, DEPLOYMENT, deployment(image="busybox"))
    ok = release({"image": {"repository": "ollama/ollama", "tag": "0.12.11"}})
    assert findings(rules.pinned_images, RELEASE, ok) == []
    chart_default = release({"image": {"repository": "ollama/ollama"}})
    assert findings(rules.pinned_images, RELEASE, chart_default) == []
    bad = release({"proxy": {"image": {"repository": "kong", "tag": "latest"}}})
    (finding,) = findings(rules.pinned_images, RELEASE, bad)
    assert "values proxy.image: image 'kong' uses the floating tag 'latest'" in finding
    remote = "docker:index/remoteImage:RemoteImage"
    assert findings(rules.pinned_images, remote, {"name": "registry:3.0.0"}) == []
    assert findings(rules.pinned_images, remote, {"name": "registry:latest"})


# --------------------------------------------------------------------------- SNS / SQS


def test_sns_and_sqs_encryption():
    assert findings(rules.encrypted_messaging, rules.SNS_TOPIC, {"kmsMasterKeyId": "k"}) == []
    assert findings(rules.encrypted_messaging, rules.SNS_TOPIC, {"name": "consent"})
    managed = {"sqsManagedSseEnabled": True}
    assert findings(rules.encrypted_messaging, rules.SQS_QUEUE, managed) == []
    assert findings(rules.encrypted_messaging, rules.SQS_QUEUE, {"kmsMasterKeyId": "k"}) == []
    (finding,) = findings(rules.encrypted_messaging, rules.SQS_QUEUE, {"name": "caep"})
    assert "SQS queue caep" in finding


def queue_policy(condition: dict | None) -> dict:
    statement = {
        "Sid": "FromTopic",
        "Effect": "Allow",
        "Principal": {"Service": "sns.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": "arn:aws:sqs:us-east-1:000000000000:caep",
    }
    if condition is not None:
        statement["Condition"] = condition
    return {
        "queueUrl": "q",
        "policy": json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    }


def test_queue_policy_scoped_by_source_arn():
    scoped = queue_policy({"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:0:t"}})
    assert findings(rules.queue_policy_source_arn, rules.SQS_QUEUE_POLICY, scoped) == []
    (finding,) = findings(rules.queue_policy_source_arn, rules.SQS_QUEUE_POLICY, queue_policy(None))
    assert "Allow statement FromTopic has no aws:SourceArn condition" in finding
    wildcard = queue_policy({"ArnLike": {"aws:SourceArn": "*"}})
    assert findings(rules.queue_policy_source_arn, rules.SQS_QUEUE_POLICY, wildcard)
    garbled = {"policy": "not json"}
    assert findings(rules.queue_policy_source_arn, rules.SQS_QUEUE_POLICY, garbled)


# ---------------------------------------------------------------- Verified Permissions


def test_policy_store_strict():
    strict = {"validationSettings": {"mode": "STRICT"}}
    assert findings(rules.verified_permissions_strict, rules.POLICY_STORE, strict) == []
    (finding,) = findings(
        rules.verified_permissions_strict,
        rules.POLICY_STORE,
        {"validationSettings": {"mode": "OFF"}},
    )
    assert "validation mode is 'OFF'" in finding
    assert findings(rules.verified_permissions_strict, rules.POLICY_STORE, {})


# ------------------------------------------------------------------- token lifetimes


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(300, 300), ("300", 300), ("5m", 300), ("5m0s", 300), ("1h", 3600), ("90s", 90)],
)
def test_lifetime_parsing(value, seconds):
    assert rules.lifetime_seconds(value) == seconds


def test_keycloak_realm_and_client_lifetimes():
    realm = "keycloak:index/realm:Realm"
    assert findings(rules.token_lifetimes, realm, {"accessTokenLifespan": "5m0s"}) == []
    (finding,) = findings(rules.token_lifetimes, realm, {"accessTokenLifespan": "1h"})
    assert "Realm accessTokenLifespan: '1h' is 3600 s, above 300 s" in finding
    client = "keycloak:openid/client:Client"
    assert findings(rules.token_lifetimes, client, {"accessTokenLifespan": "120"}) == []
    assert findings(rules.token_lifetimes, client, {"accessTokenLifespan": "600"})
    assert findings(rules.token_lifetimes, client, {"accessTokenLifespan": "soon"})


def test_realm_export_in_a_configmap():
    realm = {
        "accessTokenLifespan": 300,
        "clients": [{"attributes": {"access.token.lifespan": "900"}}],
    }
    props = {
        "metadata": {"name": "realm", "namespace": "idp"},
        "data": {"r.json": json.dumps(realm)},
    }
    (finding,) = findings(rules.token_lifetimes, CONFIGMAP, props)
    assert "clients[0].attributes.access.token.lifespan: '900' is 900 s" in finding


def test_tighter_bound_from_settings():
    tight = rules.Settings(max_access_token_seconds=60)
    realm = "keycloak:index/realm:Realm"
    assert rules.token_lifetimes(realm, {"accessTokenLifespan": "2m"}, tight)


# ---------------------------------------------------------------------- gateway routes

KONG_PLUGIN = "kubernetes:configuration.konghq.com/v1:KongPlugin"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"


def ingress(namespace: str, plugins: str | None) -> Resource:
    annotations = {"konghq.com/plugins": plugins} if plugins is not None else {}
    props = {"metadata": {"name": "chat", "namespace": namespace, "annotations": annotations}}
    return Resource(INGRESS, props, urn=f"urn:ingress:{namespace}")


def kong_plugin(namespace: str, name: str, plugin: str) -> Resource:
    props = {"metadata": {"name": name, "namespace": namespace}, "plugin": plugin}
    return Resource(KONG_PLUGIN, props, urn=f"urn:plugin:{name}")


def test_route_with_the_authz_plugin_passes():
    resources = [
        kong_plugin("models", "authz", "lab-authz"),
        kong_plugin("models", "jwt", "jwt"),
        ingress("models", "jwt, authz"),
    ]
    assert rules.gateway_route_authz(resources, DEFAULTS) == []


def test_route_without_the_authz_plugin_fails():
    resources = [kong_plugin("models", "jwt", "jwt"), ingress("models", "jwt")]
    ((urn, finding),) = rules.gateway_route_authz(resources, DEFAULTS)
    assert urn == "urn:ingress:models"
    assert "konghq.com/plugins=jwt attaches no plugin of type lab-authz" in finding
    # A plugin of the right name in another namespace does not count.
    elsewhere = [kong_plugin("gateway", "authz", "lab-authz"), ingress("models", "authz")]
    assert rules.gateway_route_authz(elsewhere, DEFAULTS)


def test_public_idp_route_needs_no_authz():
    assert rules.gateway_route_authz([ingress("idp", None)], DEFAULTS) == []


def test_declarative_config_routes():
    config = {
        "services": [
            {"name": "chat", "routes": [{"name": "chat", "plugins": [{"name": "lab-authz"}]}]},
            {"name": "image", "routes": [{"name": "image"}]},
        ]
    }
    props = release({"dblessConfig": {"config": json.dumps(config)}}, "gateway", "kong")
    ((_, finding),) = rules.gateway_route_authz([Resource(RELEASE, props, "urn:kong")], DEFAULTS)
    assert "route 'image' of service 'image' has no lab-authz plugin" in finding


# --------------------------------------------------------------- namespace default deny

NAMESPACE = "kubernetes:core/v1:Namespace"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def namespace(name: str) -> Resource:
    return Resource(NAMESPACE, {"metadata": {"name": name}}, urn=f"urn:ns:{name}")


def deny_all(ns: str, **spec) -> Resource:
    props = {
        "metadata": {"name": "default-deny-ingress", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], **spec},
    }
    return Resource(NETPOL, props, urn=f"urn:np:{ns}")


def test_default_deny_passes_with_a_deny_all_policy_and_for_platform_namespaces():
    resources = [namespace("lab-agents"), deny_all("lab-agents"), namespace("vault")]
    assert rules.namespace_default_deny(resources, DEFAULTS) == []


def test_default_deny_fails_without_one_or_with_a_policy_that_admits():
    admits = deny_all("lab-agents", ingress=[{"from": [{"podSelector": {}}]}])
    found = rules.namespace_default_deny([namespace("lab-agents"), admits], DEFAULTS)
    assert found == [
        ("urn:ns:lab-agents", "namespace lab-agents has no NetworkPolicy that denies all ingress")
    ]
    assert rules.namespace_default_deny([namespace("models")], DEFAULTS)


# --------------------------------------------------------------------------- overall


def test_every_rule_has_a_statement_and_a_fix_in_its_message():
    names = [r.name for r in rules.RESOURCE_RULES + rules.STACK_RULES]
    assert len(names) == len(set(names)) == 10
    for rule in rules.RESOURCE_RULES + rules.STACK_RULES:
        message = rule.message("somewhere: something")
        assert message.startswith("somewhere: something. Rule: ")
        assert " Fix: " in message


def test_check_resources_names_rule_and_urn():
    bad = Resource(DEPLOYMENT, deployment(image="busybox:latest"), urn="urn:d")
    (violation,) = check_resources([bad])
    assert (violation.rule, violation.urn) == ("pinned-images", "urn:d")


def test_rendered_objects_take_the_release_namespace():
    obj = deployment()
    del obj["metadata"]["namespace"]
    (resource,) = rendered_resources([obj], "lab-apps", origin="urn:r")
    assert resource.type == DEPLOYMENT
    assert resource.props["metadata"]["namespace"] == "lab-apps"
    assert resource.urn == "urn:r$rendered:Deployment/decision"


# ------------------------------------------------------------- shapes seen in the lab's plans


def test_numbers_arrive_as_floats_from_the_engine():
    props = deployment()
    props["spec"]["template"]["spec"]["securityContext"] = {"runAsUser": 10001.0}
    assert findings(rules.non_root, DEPLOYMENT, props) == []


def test_env_given_to_a_chart_as_a_yaml_string():
    text = "- name: KC_CACHE\n  value: local\n- name: KC_DB_PASSWORD\n  value: hunter2\n"
    (finding,) = findings(rules.no_literal_secrets, RELEASE, release({"extraEnv": text}))
    assert "extraEnv: KC_DB_PASSWORD looks like a secret" in finding


def test_configmap_patches_are_read_like_configmaps():
    patch = "kubernetes:core/v1:ConfigMapPatch"
    props = {"metadata": {"name": "coredns", "namespace": "kube-system"}, "data": {"token": "x1"}}
    assert findings(rules.no_literal_secrets, patch, props)


def test_jwt_svid_ttls_in_spire_values():
    ok = release({"spire-server": {"defaultJwtSvidTTL": "300s"}}, "spire-server", "spire")
    assert findings(rules.token_lifetimes, RELEASE, ok) == []
    long_lived = release({"spire-server": {"defaultJwtSvidTTL": "1h"}}, "spire-server", "spire")
    (finding,) = findings(rules.token_lifetimes, RELEASE, long_lived)
    assert "spire-server.defaultJwtSvidTTL: '1h' is 3600 s" in finding


def test_spire_agent_values_are_exempt_and_nothing_else_in_that_release():
    values = {
        "spire-agent": {"securityContext": {"runAsUser": 0}},
        "spire-server": {"securityContext": {"runAsUser": 0}},
    }
    (finding,) = findings(rules.non_root, RELEASE, release(values, "spire-server", "spire"))
    assert "values spire-server.securityContext: runAsUser is 0" in finding
