"""The lab's signals on AWS (or its emulator): push consent on SNS, CAEP events on SQS.

- `push-consent` topic: the relay publishes each CIBA consent request; the `push-approvals`
  queue (raw delivery) is where the headless approver reads them.
- `caep-events` topic: the transmitter publishes each signed SET; the `caep-events` queue
  (raw delivery) feeds the receiver, with a dead-letter queue behind it.

Everything is encrypted at rest with one customer-managed KMS key. Each queue's policy admits
exactly one sender, SNS on behalf of its own topic (`aws:SourceArn`), and the key policy lets
SNS use the key for those topics only: without both, an encrypted subscription made as code
silently delivers nothing. Each lab workload gets its own IAM user limited to the calls it
makes. The AWS provider comes from the caller, so the same component builds on real AWS and
on the in-cluster emulator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# A message the receiver fails this many times moves to the dead-letter queue. Five covers a
# short outage of the deny list or the IdP (retries are spaced by the visibility timeout); a
# message that can never succeed is made visible at once, so it gets there within seconds.
MAX_RECEIVE_COUNT = 5

SNS_PRINCIPAL = "sns.amazonaws.com"
KMS_FOR_ENCRYPTED_PUBLISH = ["kms:GenerateDataKey", "kms:Decrypt"]

# What each workload may do, and on which of the component's resources: nothing more.
WORKLOAD_PERMISSIONS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    # workload: (resource, its actions, key actions)
    "push-consent-relay": ("push_topic", ("sns:Publish",), tuple(KMS_FOR_ENCRYPTED_PUBLISH)),
    "caep-transmitter": ("caep_topic", ("sns:Publish",), tuple(KMS_FOR_ENCRYPTED_PUBLISH)),
    "caep-receiver": (
        "caep_queue",
        ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"),
        ("kms:Decrypt",),
    ),
    "push-approver": (
        "approvals_queue",
        ("sqs:ReceiveMessage", "sqs:DeleteMessage"),
        ("kms:Decrypt",),
    ),
}


@dataclass(frozen=True)
class SignalsArgs:
    prefix: str
    """Prefix of every AWS name (unique per account and region), such as identity-lab-dev."""
    max_receive_count: int = MAX_RECEIVE_COUNT
    """Receives before a CAEP message moves to the dead-letter queue."""
    visibility_timeout_seconds: int = 30
    """How long a received CAEP message stays hidden before another receive may see it."""
    retention_seconds: int = 4 * 24 * 3600
    """How long an unreceived CAEP event is kept."""
    dead_letter_retention_seconds: int = 14 * 24 * 3600
    """How long a dead letter is kept for inspection and redrive (SQS maximum)."""
    approvals_retention_seconds: int = 300
    """How long a consent request waits in the approvals queue (the consent max age)."""
    key_deletion_days: int = 7
    """Waiting period before a destroyed KMS key is deleted (AWS minimum)."""


@dataclass(frozen=True)
class WorkloadCredentials:
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]
    """Secret."""


def queue_policy(queue_arn: str, topic_arn: str) -> str:
    """Only SNS, only for this topic, only over TLS may send to the queue."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "TopicDelivers",
                    "Effect": "Allow",
                    "Principal": {"Service": SNS_PRINCIPAL},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}},
                },
                {
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "sqs:*",
                    "Resource": queue_arn,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
            ],
        },
        sort_keys=True,
    )


def key_policy(account_id: str, topic_arns: list[str]) -> str:
    """The account administers the key (IAM policies grant the workloads their part); SNS may
    use it only when it acts for one of the lab's topics."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "LabTopicsEncrypt",
                    "Effect": "Allow",
                    "Principal": {"Service": SNS_PRINCIPAL},
                    "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                    "Resource": "*",
                    "Condition": {"ArnEquals": {"aws:SourceArn": sorted(topic_arns)}},
                },
            ],
        },
        sort_keys=True,
    )


def workload_policy(
    actions: tuple[str, ...], resource_arn: str, key_actions: tuple[str, ...], key_arn: str
) -> str:
    """The workload's own calls on its one resource, and the key use those calls need."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": list(actions), "Resource": resource_arn},
                {"Effect": "Allow", "Action": list(key_actions), "Resource": key_arn},
            ],
        },
        sort_keys=True,
    )


class Signals(pulumi.ComponentResource):
    """Topics, queues, the key and the workload identities of the lab's signals."""

    push_topic_arn: pulumi.Output[str]
    caep_topic_arn: pulumi.Output[str]
    caep_queue_url: pulumi.Output[str]
    caep_dead_letter_queue_url: pulumi.Output[str]
    approvals_queue_url: pulumi.Output[str]
    """Where the headless approver reads pushed consent requests."""
    key_arn: pulumi.Output[str]
    credentials: dict[str, WorkloadCredentials]
    """Per workload in WORKLOAD_PERMISSIONS: its access key (the secret half is secret)."""
    max_receive_count: int

    def __init__(self, name: str, args: SignalsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("identity-lab:aws:Signals", name, None, opts)
        self._name = name
        self.max_receive_count = args.max_receive_count
        child = pulumi.ResourceOptions(parent=self)

        key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.prefix}: encrypts the lab's signals at rest",
            deletion_window_in_days=args.key_deletion_days,
            enable_key_rotation=True,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/{args.prefix}-signals",
            target_key_id=key.key_id,
            opts=child,
        )
        self.key_arn = key.arn

        push_topic = self._topic(f"{args.prefix}-push-consent", "push-topic", key)
        caep_topic = self._topic(f"{args.prefix}-caep-events", "caep-topic", key)
        self.push_topic_arn, self.caep_topic_arn = push_topic.arn, caep_topic.arn
        # Set after the topics exist: the policy names them, and they are encrypted with it.
        self._create_key_policy(name, key, [push_topic, caep_topic])

        dead_letters = aws.sqs.Queue(
            f"{name}-caep-dlq",
            name=f"{args.prefix}-caep-events-dlq",
            kms_master_key_id=key.arn,
            message_retention_seconds=args.dead_letter_retention_seconds,
            opts=child,
        )
        caep_queue = aws.sqs.Queue(
            f"{name}-caep-queue",
            name=f"{args.prefix}-caep-events",
            kms_master_key_id=key.arn,
            visibility_timeout_seconds=args.visibility_timeout_seconds,
            message_retention_seconds=args.retention_seconds,
            # Long polling: the receiver waits for events instead of spinning.
            receive_wait_time_seconds=20,
            redrive_policy=dead_letters.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": args.max_receive_count}
                )
            ),
            opts=child,
        )
        aws.sqs.RedriveAllowPolicy(
            f"{name}-caep-dlq-sources",
            queue_url=dead_letters.url,
            redrive_allow_policy=caep_queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=child,
        )
        approvals = aws.sqs.Queue(
            f"{name}-approvals-queue",
            name=f"{args.prefix}-push-approvals",
            kms_master_key_id=key.arn,
            message_retention_seconds=max(60, args.approvals_retention_seconds),
            receive_wait_time_seconds=20,
            opts=child,
        )
        self._subscribe(f"{name}-caep", caep_topic, caep_queue)
        self._subscribe(f"{name}-approvals", push_topic, approvals)
        self.caep_queue_url = caep_queue.url
        self.caep_dead_letter_queue_url = dead_letters.url
        self.approvals_queue_url = approvals.url

        targets = {
            "push_topic": push_topic.arn,
            "caep_topic": caep_topic.arn,
            "caep_queue": caep_queue.arn,
            "approvals_queue": approvals.arn,
        }
        self.credentials = {
            workload: self._create_workload_identity(name, args.prefix, workload, targets, key)
            for workload in WORKLOAD_PERMISSIONS
        }
        self.register_outputs(
            {
                "pushTopicArn": self.push_topic_arn,
                "caepTopicArn": self.caep_topic_arn,
                "caepQueueUrl": self.caep_queue_url,
                "caepDeadLetterQueueUrl": self.caep_dead_letter_queue_url,
            }
        )

    def _topic(self, topic_name: str, suffix: str, key: aws.kms.Key) -> aws.sns.Topic:
        return aws.sns.Topic(
            f"{self._name}-{suffix}",
            name=topic_name,
            kms_master_key_id=key.arn,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_key_policy(
        self, name: str, key: aws.kms.Key, topics: list[aws.sns.Topic]
    ) -> aws.kms.KeyPolicy:
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        return aws.kms.KeyPolicy(
            f"{name}-key-policy",
            key_id=key.key_id,
            policy=pulumi.Output.all(account.account_id, *[t.arn for t in topics]).apply(
                lambda values: key_policy(values[0], list(values[1:]))
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _subscribe(self, name: str, topic: aws.sns.Topic, queue: aws.sqs.Queue) -> None:
        policy = aws.sqs.QueuePolicy(
            f"{name}-queue-policy",
            queue_url=queue.url,
            policy=pulumi.Output.all(queue.arn, topic.arn).apply(
                lambda arns: queue_policy(arns[0], arns[1])
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # After the policy: a subscription without it drops every message it is given.
        aws.sns.TopicSubscription(
            f"{name}-subscription",
            topic=topic.arn,
            protocol="sqs",
            endpoint=queue.arn,
            raw_message_delivery=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )

    def _create_workload_identity(
        self,
        name: str,
        prefix: str,
        workload: str,
        targets: dict[str, pulumi.Output[str]],
        key: aws.kms.Key,
    ) -> WorkloadCredentials:
        child = pulumi.ResourceOptions(parent=self)
        resource, actions, key_actions = WORKLOAD_PERMISSIONS[workload]
        # TODO: kind has no AWS workload identity, so each workload holds a static access key;
        # on EKS use IAM roles for service accounts (or Pod Identity) and drop the keys.
        user = aws.iam.User(
            f"{name}-{workload}", name=f"{prefix}-{workload}", path="/identity-lab/", opts=child
        )
        aws.iam.UserPolicy(
            f"{name}-{workload}-policy",
            user=user.name,
            policy=pulumi.Output.all(targets[resource], key.arn).apply(
                lambda arns: workload_policy(actions, arns[0], key_actions, arns[1])
            ),
            opts=child,
        )
        access_key = aws.iam.AccessKey(f"{name}-{workload}-key", user=user.name, opts=child)
        return WorkloadCredentials(
            access_key_id=access_key.id,
            secret_access_key=pulumi.Output.secret(access_key.secret),
        )
