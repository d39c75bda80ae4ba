"""The protected resources: Ollama (chat, small CPU model) and, opt-in, Stable Diffusion.

Ollama comes from the otwld chart, which pulls the configured model when the container starts.
Its readiness probe asks Ollama's OpenAI-style `GET /v1/models/<model>`, which answers 404
until the model is in the server's local list (the list `/api/tags` shows) and 200 after, so
the pod is Ready only once the model can answer; the chart's probe is an HTTP GET, and this is
the one GET route whose status depends on the model being present. Stable Diffusion runs in
LocalAI (an OpenAI-style images API, CPU or NVIDIA GPU build). Both admit ingress from the
gateway's namespace only: nothing else in the cluster reaches a model directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from lab.naming import GATEWAY_PROXY_LABELS, Namespace
from lab.settings import LabSettings
from lab.versions import Chart, Image

OLLAMA_PORT = 11434
IMAGE_SERVER_PORT = 8080

# Requests count toward the laptop budget (4 CPUs, 8 GiB for the whole default lab); limits
# let a CPU model use more cores while it answers.
OLLAMA_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"cpu": "2", "memory": "3Gi"},
}
IMAGE_SERVER_RESOURCES = {
    "requests": {"cpu": "1", "memory": "3Gi"},
    "limits": {"cpu": "4", "memory": "8Gi"},
}


@dataclass(frozen=True)
class ModelServersArgs:
    """What the model servers need; `from_settings` fills it from the stack config."""

    chart: Chart
    """The Ollama chart (repository, name, version)."""
    ollama_image: Image
    """The Ollama image the chart runs."""
    chat_model: str
    """Ollama model pulled at start, with a pinned tag (such as qwen2.5:0.5b)."""
    storage_gi: int
    """Size of Ollama's model volume, GiB."""
    stable_diffusion: bool = False
    """Also deploy the image model server."""
    gpu: bool = False
    """Run the image model server on an NVIDIA GPU (CUDA image, one nvidia.com/gpu)."""
    image_server: Image | None = None
    """LocalAI CPU image (needed with stable_diffusion)."""
    image_server_gpu: Image | None = None
    """LocalAI CUDA image (needed with gpu)."""
    image_model: str = "stablediffusion"
    """LocalAI gallery model the image server installs and serves at start."""
    namespace: str = Namespace.MODELS.value
    """Namespace of the model servers (created by the Namespaces component)."""
    gateway_namespace: str = Namespace.GATEWAY.value
    """The only namespace admitted to the model servers' ports."""

    def __post_init__(self) -> None:
        # Checked here, before any resource exists, not when the image server is created.
        needed = self.image_server_gpu if self.gpu else self.image_server
        if self.stable_diffusion and needed is None:
            raise ValueError(
                "ModelServersArgs: stable_diffusion needs image_server (and image_server_gpu "
                "with gpu); ModelServersArgs.from_settings fills both from lab/versions.py"
            )

    @classmethod
    def from_settings(cls, settings: LabSettings) -> ModelServersArgs:
        pins = settings.versions
        return cls(
            chart=pins.ollama,
            ollama_image=pins.ollama_image,
            chat_model=settings.ollama_model,
            storage_gi=settings.ollama_storage_gi,
            stable_diffusion=settings.stable_diffusion,
            gpu=settings.gpu,
            image_server=pins.image_server,
            image_server_gpu=pins.image_server_gpu,
        )


def readiness_path(model: str) -> str:
    """The GET path that answers 200 only once `model` is in Ollama's local model list."""
    if "/" in model:
        # TODO: models from a namespace (user/model:tag) need an exec probe, which the chart
        # does not offer; it can go when the chart takes a custom probe.
        raise ValueError(
            f"ollamaModel={model!r}: the readiness probe needs a library model without '/' "
            f"(such as qwen2.5:0.5b)"
        )
    return f"/v1/models/{model}"


def ollama_values(args: ModelServersArgs) -> dict:
    """Chart values: pinned image, the model pulled at start, readiness on the model."""
    return {
        "fullnameOverride": "ollama",
        "image": {"repository": args.ollama_image.repository, "tag": args.ollama_image.tag},
        "ollama": {"port": OLLAMA_PORT, "models": {"pull": [args.chat_model]}},
        # The server answers "/" as soon as it listens: alive, not yet ready.
        "livenessProbe": {"enabled": True, "path": "/"},
        "readinessProbe": {
            "enabled": True,
            "path": readiness_path(args.chat_model),
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
        "resources": OLLAMA_RESOURCES,
        "persistentVolume": {"enabled": True, "size": f"{args.storage_gi}Gi"},
        # Models reach the network only through the gateway's ai-proxy.
        "service": {"type": "ClusterIP", "port": OLLAMA_PORT},
        "ingress": {"enabled": False},
        "serviceAccount": {"automount": False},
    }


class ModelServers(pulumi.ComponentResource):
    """Ollama (always) and Stable Diffusion (opt-in), reachable only from the gateway."""

    chat_upstream: pulumi.Output[str]
    """host:port of Ollama inside the cluster, for the gateway's ai-proxy."""
    image_upstream: pulumi.Output[str] | None
    """host:port of the image server, or None when Stable Diffusion is off."""
    ollama: k8s.helm.v3.Release
    """Ollama's release (values visible in plans)."""

    def __init__(
        self, name: str, args: ModelServersArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("identity-lab:models:ModelServers", name, None, opts)
        self._name = name
        self._args = args

        self.ollama = self._create_ollama()
        self.chat_upstream = pulumi.Output.concat(
            self.ollama.name, ".", args.namespace, ".svc:", str(OLLAMA_PORT)
        )
        self._create_gateway_only_policy()
        self.image_upstream = self._create_image_server() if args.stable_diffusion else None
        self.register_outputs(
            {"chatUpstream": self.chat_upstream, "imageUpstream": self.image_upstream}
        )

    def _create_ollama(self) -> k8s.helm.v3.Release:
        chart = self._args.chart
        return k8s.helm.v3.Release(
            f"{self._name}-ollama",
            name="ollama",
            chart=chart.name,
            version=chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
            namespace=self._args.namespace,
            values=ollama_values(self._args),
            # Helm waits for readiness, which waits for the model pull (hundreds of MB).
            timeout=1200,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_gateway_only_policy(self) -> k8s.networking.v1.NetworkPolicy:
        ports = [OLLAMA_PORT] + ([IMAGE_SERVER_PORT] if self._args.stable_diffusion else [])
        return k8s.networking.v1.NetworkPolicy(
            f"{self._name}-from-gateway",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="models-from-gateway", namespace=self._args.namespace
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress"],
                ingress=[
                    k8s.networking.v1.NetworkPolicyIngressRuleArgs(
                        from_=[
                            k8s.networking.v1.NetworkPolicyPeerArgs(
                                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels={
                                        "kubernetes.io/metadata.name": self._args.gateway_namespace
                                    }
                                ),
                                # Kong's proxy only, not every pod of its namespace.
                                pod_selector=k8s.meta.v1.LabelSelectorArgs(
                                    match_labels=dict(GATEWAY_PROXY_LABELS)
                                ),
                            )
                        ],
                        ports=[
                            k8s.networking.v1.NetworkPolicyPortArgs(port=p, protocol="TCP")
                            for p in ports
                        ],
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_image_server(self) -> pulumi.Output[str]:
        args = self._args
        image = args.image_server_gpu if args.gpu else args.image_server
        assert image is not None  # ModelServersArgs refuses stable_diffusion without it
        labels = {"app.kubernetes.io/name": "stable-diffusion", "app.kubernetes.io/part-of": "lab"}
        resources = {
            "requests": dict(IMAGE_SERVER_RESOURCES["requests"]),
            "limits": dict(IMAGE_SERVER_RESOURCES["limits"]),
        }
        if args.gpu:
            resources["limits"]["nvidia.com/gpu"] = "1"

        volume = k8s.core.v1.PersistentVolumeClaim(
            f"{self._name}-sd-models",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="stable-diffusion-models", namespace=args.namespace
            ),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteOnce"],
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": "10Gi"}),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        deployment = k8s.apps.v1.Deployment(
            f"{self._name}-sd",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="stable-diffusion", namespace=args.namespace, labels=labels
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                # One writer of the model volume at a time.
                strategy=k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"),
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="localai",
                                image=image.ref,
                                # LocalAI installs the gallery model given as an argument.
                                args=[args.image_model],
                                env=[k8s.core.v1.EnvVarArgs(name="MODELS_PATH", value="/models")],
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name="http", container_port=IMAGE_SERVER_PORT
                                    )
                                ],
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    http_get=k8s.core.v1.HTTPGetActionArgs(
                                        path="/readyz", port="http"
                                    ),
                                    period_seconds=10,
                                ),
                                # The first start downloads the model: allow it 30 minutes.
                                startup_probe=k8s.core.v1.ProbeArgs(
                                    http_get=k8s.core.v1.HTTPGetActionArgs(
                                        path="/healthz", port="http"
                                    ),
                                    period_seconds=10,
                                    failure_threshold=180,
                                ),
                                resources=k8s.core.v1.ResourceRequirementsArgs(**resources),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(name="models", mount_path="/models")
                                ],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(
                                name="models",
                                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(
                                    claim_name=volume.metadata.name
                                ),
                            )
                        ],
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        service = k8s.core.v1.Service(
            f"{self._name}-sd-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="stable-diffusion", namespace=args.namespace),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http", port=IMAGE_SERVER_PORT, target_port="http"
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[deployment]),
        )
        return pulumi.Output.concat(
            service.metadata.name, ".", args.namespace, ".svc:", str(IMAGE_SERVER_PORT)
        )
