"""A headless approver for tests and demos: reads pushed consent requests, answers by rule.

It stands in for the user's phone. It reads the push topic's messages from the approvals
queue, approves a request only when the asking agent and every scope are on its allow lists,
denies it otherwise, and answers the relay with the request's action hash echoed back.

    python -m services.push_consent_relay.approver --queue-url URL \\
        --approve-agent spiffe://lab.local/ns/lab-agents/sa/agent --approve-scope chat:invoke

The approver token is read from APPROVER_TOKEN. It stops after --max-messages answers or
--timeout seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("push_consent_relay.approver")


@dataclass
class Approver:
    sqs: Any
    queue_url: str
    approver_token: str = field(repr=False)
    agents: Collection[str] = ()
    scopes: Collection[str] = ()
    relay_url: str | None = None
    """Answer here instead of the push's answer_url (e.g. through a port-forward)."""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def decide(self, push: dict[str, Any]) -> str:
        agent_ok = push.get("agent") in self.agents
        scopes_ok = set(push.get("scopes") or []) <= set(self.scopes)
        return "approve" if agent_ok and scopes_ok else "deny"

    def answer_once(self, wait_seconds: int = 1) -> list[tuple[dict[str, Any], str, int]]:
        """Answer every push in one receive; returns (push, decision, relay status) each."""
        got = self.sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds
        )
        done = []
        for message in got.get("Messages", []):
            push = json.loads(message["Body"])
            decision = self.decide(push)
            url = push["answer_url"]
            if self.relay_url:
                url = f"{self.relay_url.rstrip('/')}/ciba/answers/{push['request_id']}"
            response = self.http.post(
                url,
                json={"decision": decision, "action_hash": push["action_hash"]},
                headers={"Authorization": f"Bearer {self.approver_token}"},
            )
            # 404: answered or expired already; keeping the message would only repeat that.
            if response.status_code in (200, 404, 409):
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
            log.info("%s %s -> %s", decision, push["request_id"], response.status_code)
            done.append((push, decision, response.status_code))
        return done


def main(argv: list[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(prog="python -m services.push_consent_relay.approver")
    parser.add_argument("--queue-url", required=True)
    parser.add_argument("--relay-url", help="answer here instead of the push's answer_url")
    parser.add_argument("--approve-agent", action="append", default=[])
    parser.add_argument("--approve-scope", action="append", default=[])
    parser.add_argument("--max-messages", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    args = parser.parse_args(argv)
    token = os.environ.get("APPROVER_TOKEN")
    if not token:
        parser.error("APPROVER_TOKEN is not set (the relay's approver token)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    approver = Approver(
        boto3.client("sqs", region_name=args.region),
        args.queue_url,
        token,
        agents=args.approve_agent,
        scopes=args.approve_scope,
        relay_url=args.relay_url,
    )
    answered = 0
    deadline = time.monotonic() + args.timeout
    while answered < args.max_messages and time.monotonic() < deadline:
        answered += len(approver.answer_once(wait_seconds=5))
    return 0 if answered >= args.max_messages else 1


if __name__ == "__main__":
    sys.exit(main())
