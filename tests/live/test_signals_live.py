"""Live: the deployed signals: queue attributes, raw subscription, and a poison message that
the deployed receiver refuses until SQS dead-letters it."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from components.signals import MAX_RECEIVE_COUNT
from lab.settings import PROJECT

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def aws(live_lab):
    """Clients for the stack's AWS: the emulator on 127.0.0.1 (dev) or your credentials."""
    if live_lab.outputs["mode"] == "local":
        port = json.loads(
            live_lab.kubectl("-n", "aws-emulator", "get", "service", "moto", "-o", "json")
        )["spec"]["ports"][0]["nodePort"]
        assert port == 30566, "the emulator's NodePort is not the one kind publishes"
        extra = {
            "endpoint_url": live_lab.outputs["signals"]["emulatorEndpoint"],
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "region_name": "us-east-1",
        }
    else:
        extra = {}
    return {name: boto3.client(name, **extra) for name in ("sqs", "sns")}


def test_the_caep_queue_is_encrypted_and_redrives(live_lab, aws):
    signals = live_lab.outputs["signals"]
    attributes = aws["sqs"].get_queue_attributes(
        QueueUrl=signals["caepQueueUrl"], AttributeNames=["All"]
    )["Attributes"]
    assert attributes.get("KmsMasterKeyId")
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] in (
        MAX_RECEIVE_COUNT,
        str(MAX_RECEIVE_COUNT),
    )


def test_the_caep_subscription_delivers_raw(live_lab, aws):
    topic = live_lab.outputs["signals"]["caepTopicArn"]
    subscriptions = aws["sns"].list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    (sqs,) = [s for s in subscriptions if s["Protocol"] == "sqs"]
    attributes = aws["sns"].get_subscription_attributes(SubscriptionArn=sqs["SubscriptionArn"])
    assert attributes["Attributes"]["RawMessageDelivery"] == "true"


def test_a_poison_message_reaches_the_dead_letter_queue(live_lab, aws):
    signals = live_lab.outputs["signals"]
    marker = f"not-a-set-{time.time_ns()}"
    aws["sqs"].send_message(QueueUrl=signals["caepQueueUrl"], MessageBody=marker)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = aws["sqs"].receive_message(
            QueueUrl=signals["caepDeadLetterQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=5
        )
        bodies = [m["Body"] for m in got.get("Messages", [])]
        if marker in bodies:
            return
    pytest.fail(f"{marker} did not reach the DLQ within 120 s ({PROJECT} receiver running?)")
