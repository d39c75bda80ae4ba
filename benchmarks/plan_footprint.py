"""Offline-plan speed and the lab's laptop footprint, printed as figures.

.venv-test/bin/python -m benchmarks.plan_footprint [--stack dev] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from lab.footprint import requests_in, totals
from lab.offline_plan import run_plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    run_plan(args.stack)  # warm imports, so the figure is the plan, not Python start-up
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        plan = run_plan(args.stack)
        times.append(time.perf_counter() - start)

    cpu, memory = totals(plan)
    print(f"stack: {args.stack}")
    print(
        f"offline plan wall time: median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {args.runs} runs"
    )
    print(f"resources: {len(plan.resources)}")
    print(
        f"workload requests: {cpu:.2f} CPU, {memory / 2**30:.2f} GiB memory "
        f"({len(requests_in(plan))} containers sized)"
    )
    for request in sorted(requests_in(plan), key=lambda r: -r.memory):
        print(
            f"  {request.resource:<32} {request.cpu:>5.2f} CPU {request.memory / 2**20:>7.0f} MiB"
            f"  {request.path}"
        )


if __name__ == "__main__":
    main()
