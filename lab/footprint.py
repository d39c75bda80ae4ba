"""The laptop footprint: CPU and memory the lab's workloads request, read off a plan's inputs.

Every `resources: {requests: ...}` block in a plan counts once: Kubernetes objects the lab
writes itself and the values it gives upstream charts. A chart's own default for a container
the lab does not size is not visible here, so components size every container they deploy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lab.offline_plan import Plan

_MEMORY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def cpu_cores(quantity: str | int | float) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(quantity: str | int) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i|[kMG])?", str(quantity))
    if match is None:
        raise ValueError(f"not a Kubernetes memory quantity: {quantity!r}")
    number, unit = match.groups()
    return int(float(number) * _MEMORY.get(unit or "", 1))


@dataclass(frozen=True)
class Request:
    resource: str
    path: str
    cpu: float
    memory: int


def _requests(value: Any, path: str) -> Iterator[tuple[str, dict]]:
    if isinstance(value, dict):
        requests = (
            value.get("resources", {}).get("requests")
            if isinstance(value.get("resources"), dict)
            else None
        )
        # A volume claim's `resources.requests` holds storage, not a container's CPU or memory.
        if isinstance(requests, dict) and ({"cpu", "memory"} & set(requests)):
            yield path, requests
        for key, child in value.items():
            yield from _requests(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _requests(child, f"{path}[{i}]")


def requests_in(plan: Plan) -> list[Request]:
    found = []
    for resource in plan.resources:
        for path, requests in _requests(resource["inputs"] or {}, ""):
            found.append(
                Request(
                    resource=resource["name"],
                    path=path,
                    cpu=cpu_cores(requests.get("cpu", 0)),
                    memory=memory_bytes(requests.get("memory", 0)),
                )
            )
    return found


def totals(plan: Plan) -> tuple[float, int]:
    """Total requested CPU cores and memory bytes."""
    found = requests_in(plan)
    return sum(r.cpu for r in found), sum(r.memory for r in found)
