"""Cedar decision speed: the local backend, request building, and AuthZEN over HTTP.

.venv-test/bin/python -m benchmarks.cedar_decisions [--count 20000] [--http-count 2000]

Prints decisions per second and p50/p99 latency for: (1) cedarpy deciding a built request
with policies, schema and entities parsed once; (2) the local backend as the service runs it
(the request's entities parsed per call), and (2b) with each request also checked against the
schema, as the tests do; (3) building the
Cedar request from verified claims, then deciding; (4) the whole evaluation path without
HTTP (token verified again, deny list, build, decide); (5) AuthZEN requests through the
service's HTTP API on 127.0.0.1. Parts 1-4 run pinned to one core. Other load on the machine
lowers every figure: read the load average printed first.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cedarpy
import httpx

from services.decision.backends import LocalBackend
from services.decision.request_builder import AuthzenRequest, Directory, Revocation, build
from tests.decision_peer import TokenMint, agent_id, running_decision_service, service_config

TARGET_PER_SECOND = 10_000


def measure(label: str, count: int, step: Callable[[], object]) -> float:
    for _ in range(min(500, count)):
        step()  # warm caches and the allocator
    samples = []
    clock = time.perf_counter
    started = clock()
    for _ in range(count):
        t0 = clock()
        step()
        samples.append(clock() - t0)
    elapsed = clock() - started
    samples.sort()
    rate = count / elapsed
    p50 = samples[len(samples) // 2] * 1e6
    p99 = samples[int(len(samples) * 0.99)] * 1e6
    print(f"{label:<48} {rate:>10,.0f}/s   p50 {p50:8.1f} us   p99 {p99:8.1f} us   (n={count})")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--http-count", type=int, default=2_000)
    args = parser.parse_args()
    count = max(1, min(args.count, 1_000_000))
    http_count = max(1, min(args.http_count, 100_000))
    logging.getLogger("services.decision").setLevel(logging.WARNING)

    mint = TokenMint()
    with tempfile.TemporaryDirectory() as tmp:
        config = service_config(Path(tmp), mint)
        with running_decision_service(config) as running:
            service = running.service
            body = {
                "subject": {"type": "user", "id": "alice-id"},
                "action": {"name": "invoke_chat_model"},
                "resource": {"type": "model", "id": "chat"},
                "context": {
                    "token": mint.token(
                        azp=agent_id(), act={"sub": agent_id()}, aud=["chat-models"]
                    ),
                },
            }
            prepared = service.prepare(body)
            assert prepared.request is not None and prepared.claims is not None
            backend = service.backend
            assert isinstance(backend, LocalBackend)
            assert backend.decide(prepared.request).allowed, "the benchmark request is allowed"
            parsed = AuthzenRequest.parse(body)
            directory = Directory(config.trust_domain, config.service_targets)
            revocation = Revocation(False, False)

            print(f"cpu: {_cpu()}; load average: {os.getloadavg()[0]:.2f} over 1 min")
            print("request: sequence 3 (an agent for a user), allowed")
            affinity = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {min(affinity)})
            try:
                bundle = backend.bundle
                entities = cedarpy.Entities.from_json_str(
                    json.dumps([*prepared.request.entities, *bundle.action_entities])
                )
                cedar_request = prepared.request.to_cedarpy()
                local = measure(
                    "1 cedarpy decision, all pre-parsed",
                    count,
                    lambda: cedarpy.is_authorized(cedar_request, bundle.policy_set, entities),
                )
                measure(
                    "2 local backend (entities parsed per call)",
                    count,
                    lambda: backend.decide(prepared.request),
                )
                checked = LocalBackend(bundle, validate_requests=True)
                measure(
                    "2b same, each request checked against the schema",
                    count,
                    lambda: checked.decide(prepared.request),
                )
                measure(
                    "3 build request + local backend",
                    count,
                    lambda: backend.decide(
                        build(prepared.claims, parsed, directory, revocation, int(time.time()), 300)
                    ),
                )
                measure(
                    "4 verify token + deny list + build + decide",
                    count // 2,
                    lambda: backend.decide(service.prepare(body).request),
                )
            finally:
                os.sched_setaffinity(0, affinity)

            with httpx.Client(base_url=running.url, timeout=5) as client:
                url = "/access/v1/evaluation"
                measure(
                    "5 AuthZEN over HTTP on 127.0.0.1 (sequential)",
                    http_count,
                    lambda: client.post(url, json=body).raise_for_status(),
                )
    verdict = "meets" if local >= TARGET_PER_SECOND else "MISSES"
    print(f"target: >= {TARGET_PER_SECOND:,} local decisions/s on one core: {verdict}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
