"""The signals in the plans of both stacks: encryption, queue and key policies, redrive, least
privilege, the emulator and its provider (dev), and the wiring of relay, receiver and IdP."""

from __future__ import annotations

import json

import pytest

from components.aws_emulator import EMULATED_SERVICES
from components.cluster import NODE_PORTS
from components.signals import MAX_RECEIVE_COUNT, SNS_PRINCIPAL, WORKLOAD_PERMISSIONS
from lab.charts import render, validate
from lab.naming import PUSH_CONSENT_RELAY, ciba_channel_url, spiffe_id
from lab.settings import PROJECT, ConfigSource, SettingsError, load_settings
from lab.versions import PINS

STACKS = ["dev", "aws"]
SUBSCRIPTIONS = {  # subscription -> (topic, queue, queue policy)
    "signals-caep-subscription": (
        "signals-caep-topic",
        "signals-caep-queue",
        "signals-caep-queue-policy",
    ),
    "signals-approvals-subscription": (
        "signals-push-topic",
        "signals-approvals-queue",
        "signals-approvals-queue-policy",
    ),
}


@pytest.fixture(params=STACKS)
def plan(request, dev_plan, aws_plan):
    return {"dev": dev_plan, "aws": aws_plan}[request.param]


def arn(plan, type_: str, name: str) -> str:
    """The ARN the mock provider gave a resource, as the plan's other inputs carry it."""
    prefix = {"aws:sns/topic:Topic": "sns", "aws:sqs/queue:Queue": "sqs"}[type_]
    return f"arn:aws:{prefix}:us-east-1:000000000000:{plan.one(type_, name)['inputs']['name']}"


def key_arn(plan) -> str:
    return plan.one("aws:sqs/queue:Queue", "signals-caep-queue")["inputs"]["kmsMasterKeyId"]


@pytest.mark.parametrize("subscription", sorted(SUBSCRIPTIONS))
def test_each_queue_admits_only_its_topic_through_sns(plan, subscription):
    topic_name, queue_name, policy_name = SUBSCRIPTIONS[subscription]
    topic = arn(plan, "aws:sns/topic:Topic", topic_name)
    queue = arn(plan, "aws:sqs/queue:Queue", queue_name)
    policy = json.loads(
        plan.one("aws:sqs/queuePolicy:QueuePolicy", policy_name)["inputs"]["policy"]
    )
    allows = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "TopicDelivers",
            "Effect": "Allow",
            "Principal": {"Service": SNS_PRINCIPAL},
            "Action": "sqs:SendMessage",
            "Resource": queue,
            "Condition": {"ArnEquals": {"aws:SourceArn": topic}},
        }
    ]
    (deny,) = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("subscription", sorted(SUBSCRIPTIONS))
def test_each_subscription_is_raw_and_waits_for_its_queue_policy(plan, subscription):
    topic_name, queue_name, policy_name = SUBSCRIPTIONS[subscription]
    made = plan.one("aws:sns/topicSubscription:TopicSubscription", subscription)
    assert made["inputs"] == {
        "topic": arn(plan, "aws:sns/topic:Topic", topic_name),
        "protocol": "sqs",
        "endpoint": arn(plan, "aws:sqs/queue:Queue", queue_name),
        "rawMessageDelivery": True,
    }
    policy = plan.one("aws:sqs/queuePolicy:QueuePolicy", policy_name)
    assert policy["urn"] in made["dependsOn"]


def test_every_topic_and_queue_is_encrypted_with_the_rotating_lab_key(plan):
    key = plan.one("aws:kms/key:Key", "signals-key")
    assert key["inputs"]["enableKeyRotation"] is True
    encrypted = plan.of_type("aws:sns/topic:Topic") + plan.of_type("aws:sqs/queue:Queue")
    assert len(encrypted) == 5
    assert {r["inputs"].get("kmsMasterKeyId") for r in encrypted} == {key_arn(plan)}


def test_the_key_policy_lets_sns_use_the_key_only_for_the_lab_topics(plan):
    policy = json.loads(
        plan.one("aws:kms/keyPolicy:KeyPolicy", "signals-key-policy")["inputs"]["policy"]
    )
    (sns,) = [s for s in policy["Statement"] if s.get("Principal") == {"Service": SNS_PRINCIPAL}]
    topics = sorted(
        arn(plan, "aws:sns/topic:Topic", n) for n in ("signals-push-topic", "signals-caep-topic")
    )
    assert sns["Condition"] == {"ArnEquals": {"aws:SourceArn": topics}}
    assert sns["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    (admin,) = [s for s in policy["Statement"] if s["Sid"] == "AccountAdministers"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::000000000000:root"}


def test_caep_events_redrive_to_the_dead_letter_queue_after_the_documented_receives(plan):
    queue = plan.one("aws:sqs/queue:Queue", "signals-caep-queue")["inputs"]
    dlq = arn(plan, "aws:sqs/queue:Queue", "signals-caep-dlq")
    assert json.loads(queue["redrivePolicy"]) == {
        "deadLetterTargetArn": dlq,
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    }
    allow = plan.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "signals-caep-dlq-sources")
    assert json.loads(allow["inputs"]["redriveAllowPolicy"]) == {
        "redrivePermission": "byQueue",
        "sourceQueueArns": [arn(plan, "aws:sqs/queue:Queue", "signals-caep-queue")],
    }
    dead = plan.one("aws:sqs/queue:Queue", "signals-caep-dlq")["inputs"]
    assert dead["messageRetentionSeconds"] > queue["messageRetentionSeconds"]


EXPECTED_GRANTS = {
    "push-consent-relay": ("signals-push-topic", ["sns:Publish"]),
    "caep-transmitter": ("signals-caep-topic", ["sns:Publish"]),
    "caep-receiver": (
        "signals-caep-queue",
        ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
    ),
    "push-approver": ("signals-approvals-queue", ["sqs:ReceiveMessage", "sqs:DeleteMessage"]),
}


@pytest.mark.parametrize("workload", sorted(EXPECTED_GRANTS))
def test_each_workload_may_do_only_its_own_calls(plan, workload):
    assert set(EXPECTED_GRANTS) == set(WORKLOAD_PERMISSIONS)
    target, actions = EXPECTED_GRANTS[workload]
    type_ = "aws:sns/topic:Topic" if "topic" in target else "aws:sqs/queue:Queue"
    policy = plan.one("aws:iam/userPolicy:UserPolicy", f"signals-{workload}-policy")
    document = json.loads(policy["inputs"]["policy"])
    own, key = document["Statement"]
    assert own == {"Effect": "Allow", "Action": actions, "Resource": arn(plan, type_, target)}
    assert key["Resource"] == key_arn(plan)
    assert set(key["Action"]) <= {"kms:GenerateDataKey", "kms:Decrypt"}
    text = json.dumps(document)
    assert '"*"' not in text and ":*" not in text, f"{workload}: a wildcard in {text}"
    user = plan.one("aws:iam/user:User", f"signals-{workload}")
    assert policy["inputs"]["user"] == user["inputs"]["name"]


def test_dev_points_a_dedicated_provider_at_moto_on_loopback(dev_plan):
    provider = dev_plan.one("pulumi:providers:aws", "aws-emulator")
    inputs = provider["inputs"]
    (endpoints,) = json.loads(inputs["endpoints"])
    assert endpoints == dict.fromkeys(EMULATED_SERVICES, "http://127.0.0.1:4566")
    # moto's documented dummy credentials; the provider keeps even these as secrets.
    assert {"accessKey", "secretKey"} <= set(provider["secretInputs"])
    for flag in ("skipCredentialsValidation", "skipRequestingAccountId", "skipMetadataApiCheck"):
        assert inputs[flag] == "true", flag
    deployment = dev_plan.one("kubernetes:apps/v1:Deployment", "aws-emulator-deployment")
    assert set(provider["dependsOn"]) >= {deployment["urn"]}
    signals = dev_plan.one("identity-lab:aws:Signals")
    aws_children = [r for r in dev_plan.descendants(signals) if r["type"].startswith("aws:")]
    assert {r["provider"] for r in aws_children} == {provider["urn"]}


def test_dev_runs_the_pinned_moto_on_the_published_node_port(dev_plan):
    deployment = dev_plan.one("kubernetes:apps/v1:Deployment", "aws-emulator-deployment")
    (container,) = deployment["inputs"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == PINS.aws_emulator.ref == "motoserver/moto:5.2.5"
    assert deployment["inputs"]["metadata"]["namespace"] == "aws-emulator"
    service = dev_plan.one("kubernetes:core/v1:Service", "aws-emulator-service")["inputs"]
    assert service["spec"]["type"] == "NodePort"
    assert service["spec"]["ports"][0]["nodePort"] == NODE_PORTS["aws_emulator"]


def test_aws_uses_the_default_provider_and_no_emulator(aws_plan):
    assert aws_plan.of_type("identity-lab:aws:AwsEmulator") == []
    assert aws_plan.of_type("pulumi:providers:aws") == []
    signals = aws_plan.one("identity-lab:aws:Signals")
    assert {r["provider"] for r in aws_plan.descendants(signals)} == {None}


def release_values(plan, workload: str) -> dict:
    return plan.one("kubernetes:helm.sh/v3:Release", f"{workload}-release")["inputs"]["values"]


def test_the_relay_is_where_the_idp_sends_ciba_requests_and_only_the_idp_may(plan):
    release = plan.one("kubernetes:helm.sh/v3:Release", f"{PUSH_CONSENT_RELAY}-release")
    assert (release["inputs"]["name"], release["inputs"]["namespace"]) == (
        PUSH_CONSENT_RELAY,
        "lab-system",
    )
    values = release["inputs"]["values"]
    assert values["port"] == 8080
    assert values["networkPolicy"] == {"ingressFrom": [{"namespace": "idp"}]}
    assert values["env"]["PUSH_TOPIC_ARN"] == arn(plan, "aws:sns/topic:Topic", "signals-push-topic")
    assert values["env"]["IDP_ISSUER"] == "https://idp.lab.localhost:9443/realms/lab"
    # The IdP was given exactly this service's URL as its CIBA authentication channel.
    channel = ciba_channel_url("cluster.local")
    assert channel == "http://push-consent-relay.lab-system.svc.cluster.local:8080/ciba"
    assert channel in json.dumps(plan.one("kubernetes:helm.sh/v3:Release", "idp-keycloak"))


def test_the_receiver_reads_the_queue_and_writes_the_decision_services_deny_list(plan):
    values = release_values(plan, "caep-receiver")
    env = values["env"]
    assert env["CAEP_QUEUE_URL"].endswith(f"/identity-lab-{plan.stack}-caep-events")
    assert env["CAEP_AUDIENCE"] == spiffe_id("lab.local", "lab-system", "caep-receiver")
    assert env["CAEP_ISSUER"] == "https://caep.lab.localhost"
    assert env["IDP_ISSUER"] == "https://idp.lab.localhost:9443/realms/lab"
    decision = plan.one("kubernetes:helm.sh/v3:Release", "decision-release")["inputs"]
    assert env["DECISION_URL"] == f"http://{decision['name']}.{decision['namespace']}.svc:8080"
    admin = decision["values"]["secretEnv"]["DECISION_ADMIN_TOKEN"]
    assert values["secretEnv"]["DECISION_ADMIN_TOKEN"] == admin
    assert values["networkPolicy"] == {"ingressFrom": []}
    assert values["persistence"]["enabled"] is True
    assert ("AWS_ENDPOINT_URL" in env) is (plan.stack == "dev")


def test_the_transmitter_signs_with_a_key_certified_under_the_root(plan):
    env = release_values(plan, "caep-transmitter")["env"]
    assert env["CAEP_TOPIC_ARN"] == arn(plan, "aws:sns/topic:Topic", "signals-caep-topic")
    cert = plan.one(
        "tls:index/locallySignedCert:LocallySignedCert", "signal-services-set-signing-cert"
    )
    assert cert["inputs"]["allowedUses"] == ["digital_signature"]
    secret = plan.one("kubernetes:core/v1:Secret", "signal-services-caep-transmitter-secret")
    assert secret["inputs"]["stringData"] == "[secret]"
    assert secret["secretInputs"] == ["stringData"]


@pytest.mark.parametrize("workload", ["push-consent-relay", "caep-transmitter", "caep-receiver"])
def test_each_service_chart_renders_valid_objects(dev_plan, workload):
    values = release_values(dev_plan, workload)
    objects = render("lab-service", values, release=workload, namespace="lab-system")
    validate(objects)
    (deployment,) = [o for o in objects if o["kind"] == "Deployment"]
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": workload,
        "key": "AWS_SECRET_ACCESS_KEY",
    }


def test_the_emulator_port_must_differ_from_the_other_host_ports():
    values = {
        f"{PROJECT}:mode": "local",
        f"{PROJECT}:trustDomain": "lab.local",
        f"{PROJECT}:awsEmulatorPort": "5001",
    }
    with pytest.raises(SettingsError, match="host ports must differ"):
        load_settings(ConfigSource(values))
    values[f"{PROJECT}:awsEmulatorPort"] = "4777"
    assert load_settings(ConfigSource(values)).ports.aws_emulator == 4777


def test_the_receiver_ends_idp_sessions_with_a_manage_users_only_client(plan):
    client = plan.one("keycloak:openid/client:Client", "caep-idp-access-client")
    assert client["provider"] == plan.one("pulumi:providers:keycloak", "keycloak")["urn"]
    inputs = client["inputs"]
    assert (inputs["clientId"], inputs["accessType"]) == ("caep-receiver", "CONFIDENTIAL")
    assert inputs["serviceAccountsEnabled"] is True
    for flow in ("standardFlowEnabled", "implicitFlowEnabled", "directAccessGrantsEnabled"):
        assert inputs[flow] is False, flow
    assert "clientSecret" in client["secretInputs"]
    (role,) = plan.of_type("keycloak:openid/clientServiceAccountRole:ClientServiceAccountRole")
    assert (role["inputs"]["role"], role["inputs"]["clientId"]) == (
        "manage-users",
        "realm-management-id",
    )
    values = release_values(plan, "caep-receiver")
    assert (values["env"]["IDP_URL"], values["env"]["IDP_REALM"]) == (
        "https://idp.lab.localhost:9443",
        "lab",
    )
    assert values["env"]["IDP_TOKEN_URL"] == (
        "https://idp.lab.localhost:9443/realms/lab/protocol/openid-connect/token"
    )
    assert values["env"]["IDP_ADMIN_CLIENT_ID"] == "caep-receiver"
    assert values["secretEnv"]["IDP_ADMIN_CLIENT_SECRET"] == {
        "secret": "caep-receiver",
        "key": "IDP_ADMIN_CLIENT_SECRET",
    }


def test_the_gateway_asks_the_same_decision_service_the_receiver_revokes_in(plan):
    decision_url = release_values(plan, "caep-receiver")["env"]["DECISION_URL"]
    gateway = plan.one("identity-lab:gateway:Gateway")
    configured = json.dumps([r["inputs"] for r in plan.descendants(gateway)])
    assert f"{decision_url}/access/v1/evaluation" in configured


def test_the_stack_says_where_the_emulator_answers(dev_plan, aws_plan):
    assert dev_plan.outputs["signals"]["emulatorEndpoint"] == "http://127.0.0.1:4566"
    assert aws_plan.outputs["signals"]["emulatorEndpoint"] is None
    assert "signalsCredentials" in dev_plan.secret_outputs
