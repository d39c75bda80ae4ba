"""One of the lab's own services: its image built and pushed, then its local chart released.

The image is built from `services/` (so services can share code) with the one
`services/Dockerfile`, the service's folder as a build argument, tagged with a hash of the
sources it is built from, and pushed to the lab's registry; the chart is `charts/lab-service`
unless the workload has its own.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s
import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "services"


DOCKERFILE = SERVICES / "Dockerfile"
CHARTS = ROOT / "charts"


@functools.cache
def _chart_values(chart: str) -> dict[str, Any]:
    return yaml.safe_load((CHARTS / chart / "values.yaml").read_text())


def chart_default_resources(chart: str) -> dict[str, Any]:
    """The chart's own requests and limits, for a workload that does not size itself."""
    # Read once per chart, copied per workload so no release shares (or changes) the cache.
    return copy.deepcopy(_chart_values(chart)["resources"])


def source_tag(*sources: Path) -> str:
    """A tag that changes exactly when a file the image is built from changes."""
    digest = hashlib.sha256()
    for source in sources:
        files = [source] if source.is_file() else source.rglob("*")
        for path in sorted(p for p in files if p.is_file()):
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(SERVICES)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class LabWorkloadArgs:
    service: str
    """Folder under services/ with the code and its requirements.txt."""
    namespace: str
    """Namespace to release into (created by the Namespaces component)."""
    registry: str
    """Registry prefix the image is pushed to, such as localhost:5001."""
    values: dict[str, Any] = field(default_factory=dict)
    """Chart values; `image` is filled in here."""
    chart: str = "lab-service"
    """Chart folder under charts/."""
    shared: tuple[str, ...] = ("common",)
    """Other folders under services/ whose changes rebuild the image."""


class LabWorkload(pulumi.ComponentResource):
    """A lab service: image plus Helm release."""

    image_ref: pulumi.Output[str]
    """The pushed image, by digest."""
    release: k8s.helm.v3.Release
    """The service's release (values visible in plans)."""

    def __init__(
        self, name: str, args: LabWorkloadArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("identity-lab:workloads:LabWorkload", name, None, opts)
        sources = [DOCKERFILE, SERVICES / "__init__.py", SERVICES / args.service] + [
            SERVICES / s for s in args.shared if (SERVICES / s).exists()
        ]
        tag = source_tag(*sources)
        repository = f"{args.registry}/{args.service}"

        image = docker.Image(
            f"{name}-image",
            image_name=f"{repository}:{tag}",
            build=docker.DockerBuildArgs(
                context=str(SERVICES.relative_to(ROOT)),
                dockerfile=str(DOCKERFILE.relative_to(ROOT)),
                args={"SERVICE": args.service},
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_ref = image.repo_digest

        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=name,
            chart=f"charts/{args.chart}",
            namespace=args.namespace,
            # The chart's default resources are written out, so a plan shows what the pod asks.
            values={
                "resources": chart_default_resources(args.chart),
                **args.values,
                "image": {"repository": repository, "tag": tag},
            },
            # A pod that never gets ready fails the update instead of hanging it.
            timeout=300,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[image]),
        )
        self.register_outputs({"imageRef": self.image_ref})
