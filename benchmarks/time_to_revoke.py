"""Time to revoke: a session-revoked SET published until the deny list refuses the session.

.venv-test/bin/python -m benchmarks.time_to_revoke [--runs 50]

Everything runs on loopback: moto's real SNS/SQS server, the transmitter publishing a signed
SET to the CAEP topic (raw delivery to the queue), the receiver's poll loop in a thread, and
the real decision service. The clock starts just before the publish and stops at the first
AuthZEN evaluation that denies a token of the revoked session. Target: p99 under 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.caep import sets
from services.caep.receiver import DenyList, JtiStore, Receiver
from services.caep.transmitter import Transmitter
from tests.signals_peers import aws_client, deny_list_service, make_pki, moto_server

ISSUER = "https://caep.lab.localhost"
AUDIENCE = "spiffe://lab.local/ns/lab-system/sa/caep-receiver"
POLL_SECONDS = 0.005


@contextmanager
def revocation_path(state: Path) -> Iterator[tuple[Transmitter, object]]:
    """moto, topic -> queue (raw), the decision service and a running receiver."""
    pki = make_pki()
    with moto_server() as endpoint, deny_list_service(state) as deny_list:
        sns, sqs = aws_client("sns", endpoint), aws_client("sqs", endpoint)
        name = f"ttr-{uuid.uuid4().hex[:8]}"
        topic = sns.create_topic(Name=name)["TopicArn"]
        queue = sqs.create_queue(QueueName=name)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=topic,
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )
        verifier = sets.SetVerifier.from_certificate(
            pki.set_cert_pem, pki.root_pem, ISSUER, AUDIENCE
        )
        receiver = Receiver(
            sqs,
            queue,
            verifier,
            DenyList(deny_list.url, deny_list.admin_token),
            None,
            JtiStore(),
            wait_seconds=1,
        )
        stop = threading.Event()
        worker = threading.Thread(target=receiver.run, args=(stop,), name="receiver")
        worker.start()
        try:
            yield Transmitter(sns, topic, ISSUER, AUDIENCE, pki.set_key_pem), deny_list
        finally:
            stop.set()
            worker.join(timeout=5)


def measure(runs: int, timeout: float = 10.0) -> list[float]:
    """Seconds from publish to the first denied evaluation, one figure per run."""
    figures = []
    with tempfile.TemporaryDirectory() as state, revocation_path(Path(state)) as (tx, deny_list):
        for i in range(runs):
            session = f"bench-{i}-{uuid.uuid4().hex[:6]}"
            if deny_list.decide(sid=session)["decision"] is not True:
                raise RuntimeError(f"session {session} was refused before it was revoked")
            subject = {
                "format": "complex",
                "user": {"format": "iss_sub", "iss": ISSUER, "sub": "alice-id"},
                "session": {"format": "opaque", "id": session},
            }
            start = time.perf_counter()
            tx.emit(sets.SESSION_REVOKED, subject)
            deadline = start + timeout
            while deny_list.decide(sid=session)["decision"] is not False:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"run {i}: session not refused within {timeout} s")
                time.sleep(POLL_SECONDS)
            figures.append(time.perf_counter() - start)
    return figures


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(fraction * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if not 1 <= args.runs <= 1000:
        parser.error("--runs: 1 to 1000")
    figures = measure(args.runs)
    summary = {
        "runs": len(figures),
        "p50_s": round(statistics.median(figures), 4),
        "p99_s": round(percentile(figures, 0.99), 4),
        "max_s": round(max(figures), 4),
        "target_p99_s": 1.0,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(
        f"time to revoke (publish -> deny list refuses), {summary['runs']} runs on loopback: "
        f"p50 {summary['p50_s'] * 1000:.1f} ms, p99 {summary['p99_s'] * 1000:.1f} ms, "
        f"max {summary['max_s'] * 1000:.1f} ms (target p99 < 1000 ms)"
    )


if __name__ == "__main__":
    main()
