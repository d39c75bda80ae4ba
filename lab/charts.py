"""Render the lab's local charts offline and check every object against Kubernetes' schemas.

Used by the tests and by anyone reviewing a chart change: helm-python-sdk runs Helm's own Go
template engine (no helm binary, no cluster), kubernetes-validate checks each object in strict
mode against the schemas of the Kubernetes version the lab pins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

from lab.versions import PINS

CHARTS = Path(__file__).resolve().parent.parent / "charts"


def schema_version(kubernetes_version: str = PINS.kubernetes_version) -> str:
    """kubernetes-validate ships one schema set per minor (x.y.0)."""
    major, minor, _ = kubernetes_version.split(".")
    return f"{major}.{minor}.0"


def render(
    chart: str | Path,
    values: dict[str, Any] | None = None,
    *,
    release: str = "lab",
    namespace: str = "default",
) -> list[dict[str, Any]]:
    """Every object the chart renders with these values, in template order."""
    loaded = helm.Chart.load(CHARTS / chart if isinstance(chart, str) else chart)
    manifests = loaded.render(values or {}, name=release, namespace=namespace, is_install=True)
    objects = []
    for path in sorted(manifests):
        if not path.endswith((".yaml", ".yml")):
            continue
        objects += [doc for doc in yaml.safe_load_all(manifests[path]) if doc]
    return objects


def validate(objects: list[dict[str, Any]], strict: bool = True) -> None:
    """Raise kubernetes_validate's ValidationError for the first object that is not valid."""
    for obj in objects:
        kubernetes_validate.validate(obj, schema_version(), strict=strict)
