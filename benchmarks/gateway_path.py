"""How long the gateway's own enforcement takes, per request, on this machine.

    python -m benchmarks.gateway_path [--requests 2000]

1. the whole lab-authz path: handler.lua under LuaJIT, a real RS256 token, and a decision from
   the real decision service on loopback (keep-alive connection, Cedar evaluation included);
2. the plugin's own logic without the call: parse, audience, scope and actor checks, the
   AuthZEN body and the audit record, with a decision answered in-process.

Targets: path median < 2 ms and p99 < 5 ms; logic < 0.1 ms. Here `cjson` is backed by
Python's json through lupa (Kong bundles lua-cjson in C), so the logic figure is an upper
bound of what Kong spends.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import socket
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from lab.lua_plugin import LabAuthzRuntime
from services.decision.app import create_app, service_from_config
from services.decision.config import Config
from tests.decision_peer import TokenMint, service_config
from tests.test_gateway_bypass import route_conf

PATH_TARGET = (2.0, 5.0)
LOGIC_TARGET = 0.1


def _serve(config: Config, ports: multiprocessing.Queue) -> None:
    service = service_from_config(config)
    # IPPROTO_TCP, so asyncio sets TCP_NODELAY on each connection as it does when uvicorn
    # binds its own port; without it every answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    ports.put(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), log_level="warning", access_log=False, lifespan="off")
    )
    server.run(sockets=[sock])


@contextlib.contextmanager
def decision_service(config: Config, timeout: float = 15.0) -> Iterator[str]:
    """The decision service in its own process on 127.0.0.1, as in the cluster (own pod)."""
    ports: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve, args=(config, ports), daemon=True)
    process.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=timeout)}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or not process.is_alive():
                    raise SystemExit("the decision service did not start on loopback") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.join(timeout)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(run, count: int, warmup: int = 200) -> list[float]:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def report(name: str, samples: list[float]) -> tuple[float, float]:
    median, p99 = statistics.median(samples), percentile(samples, 0.99)
    print(f"{name:44s} n={len(samples):5d}  median {median:7.3f} ms  p99 {p99:7.3f} ms")
    return median, p99


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway_path")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args(argv)

    mint = TokenMint()
    token = mint.token()
    with tempfile.TemporaryDirectory() as tmp:
        config = service_config(Path(tmp), mint)
        with decision_service(config) as url:
            runtime = LabAuthzRuntime()
            conf = route_conf(f"{url}/access/v1/evaluation")

            def path() -> None:
                outcome = runtime.handle(conf, token)
                if outcome.status != 200:
                    raise SystemExit(f"the path denied a valid token: {outcome}")

            path_median, path_p99 = report(
                "plugin + decision service (loopback)", timed(path, args.requests)
            )
            runtime.close()

    logic = LabAuthzRuntime(http_post=lambda *a: (500, b""))
    evaluate = logic.access.evaluate
    deps = logic.lua.table_from(
        {
            "post": logic.lua.eval(
                "function() return 200, "
                '\'{"decision": true, "context": {"policies": ["users-chat-by-group"]}}\' end'
            ),
            "now_ms": logic.lua.eval("function() return 0 end"),
        }
    )
    lua_conf = logic.table(route_conf("http://127.0.0.1:9/access/v1/evaluation"))
    audit_line = logic.require("kong.plugins.lab-authz.audit").line

    def logic_only() -> None:
        result = evaluate(lua_conf, token, "corr-bench-0001", deps)
        audit_line(lua_conf, result)

    logic_median, _ = report(
        "plugin logic only (answer in-process)", timed(logic_only, args.requests * 5)
    )

    ok = path_median < PATH_TARGET[0] and path_p99 < PATH_TARGET[1] and logic_median < LOGIC_TARGET
    print(
        f"targets: path median < {PATH_TARGET[0]} ms, p99 < {PATH_TARGET[1]} ms; "
        f"logic median < {LOGIC_TARGET} ms -> {'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
