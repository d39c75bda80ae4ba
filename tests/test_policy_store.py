"""The policy store and decision service on the offline plans of both stacks."""

from __future__ import annotations

import json

import pytest

from components.policy_store import ADMIN_SECRET, POLICY_DIR, SCHEMA_FILE, policy_files
from lab.charts import render, validate
from lab.naming import issuers
from lab.offline_plan import stack_config
from lab.settings import ConfigSource, load_settings

STACKS = ["dev", "aws"]


@pytest.fixture(params=STACKS)
def plan(request, dev_plan, aws_plan):
    return {"dev": dev_plan, "aws": aws_plan}[request.param]


def _settings(stack: str):
    config = stack_config(stack)
    config.setdefault("identity-lab:checkPrerequisites", "false")
    return load_settings(ConfigSource(config))


def test_aws_has_a_strict_store_with_the_schema_and_one_policy_per_file(aws_plan):
    store = aws_plan.one("aws:verifiedpermissions/policyStore:PolicyStore")
    assert store["inputs"]["validationSettings"] == {"mode": "STRICT"}
    schema = aws_plan.one("aws:verifiedpermissions/schema:Schema")
    assert schema["inputs"]["definition"]["value"] == (POLICY_DIR / SCHEMA_FILE).read_text()
    policies = aws_plan.of_type("aws:verifiedpermissions/policy:Policy")
    statements = {p["inputs"]["definition"]["static"]["statement"] for p in policies}
    assert statements == set(policy_files().values())
    assert len(policies) == len(policy_files()) >= 10


def test_every_policy_waits_for_the_schema(aws_plan):
    schema = aws_plan.one("aws:verifiedpermissions/schema:Schema")["urn"]
    policies = aws_plan.of_type("aws:verifiedpermissions/policy:Policy")
    late = [p["name"] for p in policies if schema not in p["dependsOn"]]
    assert late == []


def test_dev_has_no_store_and_no_aws_credentials_for_the_service(dev_plan):
    authz = dev_plan.one("identity-lab:authz:PolicyStore")
    aws_children = [r["name"] for r in dev_plan.descendants(authz) if r["type"].startswith("aws:")]
    assert aws_children == []
    assert dev_plan.of_type("aws:verifiedpermissions/policyStore:PolicyStore") == []


def test_the_decision_service_runs_in_both_stacks(plan):
    release = plan.one("kubernetes:helm.sh/v3:Release", "decision-release")
    inputs = release["inputs"]
    values = inputs["values"]
    env = values["env"]
    settings = _settings(plan.stack)
    assert (inputs["name"], inputs["namespace"]) == ("decision", "lab-system")
    assert env["DECISION_ISSUER"] == issuers(settings).idp
    assert env["DECISION_BACKEND"] == {"dev": "local", "aws": "verified-permissions"}[plan.stack]
    assert int(env["DECISION_DENY_LIST_RETENTION_SECONDS"]) == (
        settings.lifetimes.deny_list_retention
    )
    assert int(env["DECISION_CONSENT_MAX_AGE_SECONDS"]) == settings.lifetimes.consent_max_age
    assert values["persistence"]["enabled"] is True
    assert env["DECISION_DENY_LIST_PATH"].startswith(values["persistence"]["mountPath"] + "/")
    # Kong's proxy pods and the CAEP receiver only: not Kong's controller, not other services.
    assert values["networkPolicy"]["ingressFrom"] == [
        {"namespace": "gateway", "podLabels": {"identity-lab/role": "gateway-proxy"}},
        {"namespace": "lab-system", "podLabels": {"app.kubernetes.io/name": "caep-receiver"}},
    ]
    assert int(env["DECISION_MAX_TOKEN_LIFETIME_SECONDS"]) == settings.lifetimes.access_token
    assert int(env["DECISION_MAX_DELEGATED_TOKEN_LIFETIME_SECONDS"]) == (
        settings.lifetimes.delegated_token
    )
    assert values["secretEnv"]["DECISION_ADMIN_TOKEN"] == {"secret": ADMIN_SECRET, "key": "token"}
    targets = json.loads(env["DECISION_SERVICE_TARGETS"])
    assert targets == {
        "spiffe://lab.local/ns/lab-services/sa/report-service": [
            "spiffe://lab.local/ns/lab-services/sa/service-target"
        ]
    }


def test_aws_service_maps_store_ids_to_policy_ids(aws_plan):
    env = aws_plan.one("kubernetes:helm.sh/v3:Release", "decision-release")["inputs"]["values"][
        "env"
    ]
    store = aws_plan.one("aws:verifiedpermissions/policyStore:PolicyStore")
    assert env["DECISION_POLICY_STORE_ID"].startswith("PS")
    ids = json.loads(env["DECISION_POLICY_IDS"])
    assert sorted(ids.values()) == sorted(policy_files())
    assert len(set(ids)) == len(ids)
    assert store["name"] == "authz-store"
    secret = aws_plan.one("kubernetes:core/v1:Secret", "authz-aws-credentials")
    assert secret["secretInputs"] == ["stringData"]
    grant = json.loads(
        aws_plan.one("aws:iam/userPolicy:UserPolicy", "authz-is-authorized")["inputs"]["policy"]
    )
    assert grant["Statement"][0]["Action"] == ["verifiedpermissions:IsAuthorized"]


def test_admin_token_is_a_generated_secret(plan):
    password = plan.one("random:index/randomPassword:RandomPassword", "authz-admin-token")
    assert password["inputs"]["length"] >= 32 and password["inputs"]["special"] is False
    secret = plan.one("kubernetes:core/v1:Secret", "authz-admin")
    assert secret["inputs"]["metadata"] == {"name": ADMIN_SECRET, "namespace": "lab-system"}
    assert secret["secretInputs"] == ["stringData"]
    assert "m" * 48 not in json.dumps(plan.to_json())


def test_the_service_gets_the_repo_files_and_the_realm_key(plan):
    policies = plan.one("kubernetes:core/v1:ConfigMap", "authz-policies")["inputs"]["data"]
    expected = {f"{k}.cedar": v for k, v in policy_files().items()}
    expected[SCHEMA_FILE] = (POLICY_DIR / SCHEMA_FILE).read_text()
    assert policies == expected
    keys = plan.one("kubernetes:core/v1:ConfigMap", "authz-keys")["inputs"]["data"]
    assert keys["realm.pem"].startswith("-----BEGIN PUBLIC KEY-----")
    # The very key the realm signs with, as the stack exports it for the gateway.
    assert keys["realm.pem"] == plan.outputs["realmPublicKeyPem"]


def test_the_release_values_render_valid_objects(plan):
    values = plan.one("kubernetes:helm.sh/v3:Release", "decision-release")["inputs"]["values"]
    objects = render("lab-service", values, release="decision", namespace="lab-system")
    validate(objects)
    kinds = {o["kind"]: o for o in objects}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/etc/decision/policies", "/etc/decision/keys", "/data"} <= mounts
    assert pod["securityContext"]["runAsUser"] == 10001
    assert kinds["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
