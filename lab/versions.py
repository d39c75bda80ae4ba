"""Every upstream chart, image and tool version the lab uses, pinned in this one place.

Components never spell a version themselves: they read it from `PINS`. Charts are pinned by
chart version (the chart pins its app image); images the lab deploys outside a chart are pinned
by tag, and by digest where the upstream project publishes one per release. A test checks
that no pin is empty or floating (`latest`, `main`, `stable`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chart:
    """A Helm chart from an upstream repository."""

    repo: str
    name: str
    version: str


@dataclass(frozen=True)
class Image:
    """A container image, by repository and tag (optionally with a digest)."""

    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class Tool:
    """A command-line tool the user installs, with the releases the lab accepts."""

    name: str
    minimum: tuple[int, int, int]
    below: tuple[int, int, int]
    install_hint: str


@dataclass(frozen=True)
class Pins:
    kubernetes_version: str
    kind: Tool
    kind_node: Image
    registry: Image
    vault: Chart
    vault_image: Image
    openbao: Chart
    openbao_image: Image
    spire_crds: Chart
    spire: Chart
    keycloak: Image
    keycloak_chart: Chart
    postgres: Image
    kong: Chart
    kong_crds: Chart
    kong_image: Image
    kong_controller_image: Image
    ollama: Chart
    ollama_image: Image
    image_server: Image
    image_server_gpu: Image
    aws_emulator: Image
    python_base: Image


PINS = Pins(
    # The Kubernetes minor the node image runs; manifests are validated against its schemas.
    kubernetes_version="1.36.4",
    kind=Tool(
        name="kind",
        minimum=(0, 33, 0),
        below=(0, 34, 0),
        install_hint="install kind v0.33.x: https://kind.sigs.k8s.io/docs/user/quick-start/",
    ),
    # kind only supports node images built for its release: pin by digest from its notes.
    kind_node=Image(
        "kindest/node",
        "v1.36.4@sha256:099e049362a1526b2db71494e1947aae99bd16290d7c895f2b7ea312e3cbfaed",
    ),
    registry=Image("registry", "3.0.0"),
    vault=Chart("https://helm.releases.hashicorp.com", "vault", "0.31.0"),
    vault_image=Image("hashicorp/vault", "1.21.1"),
    openbao=Chart("https://openbao.github.io/openbao-helm", "openbao", "0.19.1"),
    openbao_image=Image("quay.io/openbao/openbao", "2.4.3"),
    spire_crds=Chart("https://spiffe.github.io/helm-charts-hardened", "spire-crds", "0.6.0"),
    spire=Chart("https://spiffe.github.io/helm-charts-hardened", "spire", "0.30.0"),
    # 26.8.0: token-exchange delegation (act) as a preview with the routing fix that keeps
    # delegated tokens out of plain exchange; SPIFFE client auth incl. SVIDs with `iss`.
    keycloak=Image("quay.io/keycloak/keycloak", "26.8.0"),
    # The codecentric chart runs the upstream image as given; the lab sets its tag above.
    keycloak_chart=Chart("https://codecentric.github.io/helm-charts", "keycloakx", "7.1.11"),
    postgres=Image("postgres", "17.6-alpine"),
    # Kong Gateway OSS: 3.9 is the last open-source line. The `ingress` chart releases the
    # controller and the gateway as two aliases of the `kong` chart, whose CRDs are applied
    # on their own from the same chart version (kong_crds) before anything uses them.
    kong=Chart("https://charts.konghq.com", "ingress", "0.24.0"),
    kong_crds=Chart("https://charts.konghq.com", "kong", "3.2.0"),
    kong_image=Image("kong", "3.9.3"),
    kong_controller_image=Image("kong/kubernetes-ingress-controller", "3.5.13"),
    ollama=Chart("https://helm.otwld.com", "ollama", "1.35.0"),
    # The image the chart release was built and tested with (its appVersion).
    ollama_image=Image("ollama/ollama", "0.13.0"),
    # Stable Diffusion (opt-in): LocalAI serves it behind an OpenAI-style images API, on CPU
    # or, with the CUDA build, on an NVIDIA GPU.
    image_server=Image("localai/localai", "v3.11.0"),
    image_server_gpu=Image("localai/localai", "v3.11.0-gpu-nvidia-cuda-12"),
    aws_emulator=Image("motoserver/moto", "5.2.5"),
    python_base=Image("python", "3.12.12-slim-bookworm"),
)
