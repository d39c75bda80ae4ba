"""The lab's Kubernetes cluster: a kind cluster with a local registry, or an adopted one.

kind mode creates the cluster from a kind config generated here (pinned node image, the lab's
public ports mapped to fixed NodePorts on 127.0.0.1, a containerd mirror for the registry) and
runs the registry container on the kind network. Adopt mode takes a kubeconfig instead, so the
same components can target EKS or any conformant cluster. Either way the caller gets a
Kubernetes provider, the kubeconfig (secret), the cluster's DNS domain and its service-account
issuer.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_command as command
import pulumi_docker as docker
import pulumi_kubernetes as k8s
import yaml

from lab.settings import LabSettings, Ports, Secret
from lab.versions import Tool

# The NodePort behind each published host port. Services that are reached from the host
# (gateway, IdP, Vault, AWS emulator) use these numbers; the kind config maps them to the
# host ports.
NODE_PORTS = {"gateway_https": 30443, "idp_https": 30943, "vault": 30200, "aws_emulator": 30566}

REGISTRY_INTERNAL_PORT = 5000

# Runs on the user's machine with `pulumi up`. stdout is the kubeconfig and nothing else:
# kind's own progress goes to stderr.
_CREATE_SCRIPT = """\
set -euo pipefail
kind create cluster --name "$CLUSTER" --config - --wait 180s >&2
for node in $(kind get nodes --name "$CLUSTER"); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/$MIRROR_HOST"
  printf '[host."%s"]\\n' "$MIRROR_ENDPOINT" \\
    | docker exec -i "$node" sh -c "cat > /etc/containerd/certs.d/$MIRROR_HOST/hosts.toml"
done
kind get kubeconfig --name "$CLUSTER"
"""

_DELETE_SCRIPT = 'kind delete cluster --name "$CLUSTER"'


class PrerequisiteError(RuntimeError):
    """A tool the cluster needs is missing or unusable on this machine."""


@dataclass(frozen=True)
class ClusterArgs:
    """What the cluster component needs; `from_settings` fills it from the stack config."""

    name: str
    """kind cluster name (also the prefix of the registry container)."""
    node_image: str
    """kind node image, pinned by digest."""
    ports: Ports
    """Host ports published on 127.0.0.1."""
    registry_image: str
    """Image of the local registry container."""
    dns_domain: str
    """Cluster DNS domain (kind: set through kubeadm; adopted: as configured)."""
    service_account_issuer: str
    """Issuer of service account tokens, used by SPIRE and Vault's Kubernetes auth."""
    kubeconfig: Secret | None = None
    """Adopt this cluster instead of creating one."""
    check_prerequisites: bool = True
    """Check Docker and kind before creating anything (kind mode only)."""
    kind_tool: Tool | None = None
    """The supported kind releases, for the prerequisite check."""

    @classmethod
    def from_settings(cls, settings: LabSettings) -> ClusterArgs:
        return cls(
            name=settings.cluster_name,
            node_image=settings.versions.kind_node.ref,
            ports=settings.ports,
            registry_image=settings.versions.registry.ref,
            dns_domain=settings.cluster_dns_domain,
            service_account_issuer=settings.service_account_issuer,
            kubeconfig=settings.kubeconfig,
            check_prerequisites=settings.check_prerequisites,
            kind_tool=settings.versions.kind,
        )

    @property
    def registry_container(self) -> str:
        return f"{self.name}-registry"

    @property
    def registry_host(self) -> str:
        """Where images are pushed from the host and pulled by the nodes (via the mirror)."""
        return f"localhost:{self.ports.registry}"


def kind_config(args: ClusterArgs) -> dict:
    """The kind cluster config: one node, the lab's ports, DNS domain and registry mirror."""
    mappings = [
        (NODE_PORTS["gateway_https"], args.ports.gateway_https),
        (NODE_PORTS["idp_https"], args.ports.idp_https),
        (NODE_PORTS["vault"], args.ports.vault),
        # The AWS emulator (local mode); in aws mode nothing listens behind it.
        (NODE_PORTS["aws_emulator"], args.ports.aws_emulator),
    ]
    return {
        "kind": "Cluster",
        "apiVersion": "kind.x-k8s.io/v1alpha4",
        "name": args.name,
        "nodes": [
            {
                "role": "control-plane",
                "image": args.node_image,
                "extraPortMappings": [
                    # 127.0.0.1 only: the lab is not reachable from the network.
                    {
                        "containerPort": node_port,
                        "hostPort": host_port,
                        "listenAddress": "127.0.0.1",
                        "protocol": "TCP",
                    }
                    for node_port, host_port in mappings
                ],
            }
        ],
        # kubeadm derives the service-account issuer from this domain.
        "kubeadmConfigPatches": [
            yaml.safe_dump(
                {
                    "kind": "ClusterConfiguration",
                    "networking": {"dnsDomain": args.dns_domain},
                }
            )
        ],
        # containerd reads per-registry hosts.toml files from here; the create script writes
        # the one that sends localhost:<port> to the registry container.
        "containerdConfigPatches": [
            '[plugins."io.containerd.grpc.v1.cri".registry]\n'
            '  config_path = "/etc/containerd/certs.d"\n'
        ],
    }


def _version(text: str) -> tuple[int, int, int] | None:
    match = re.search(r"v(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in match.groups()) if match else None


def check_prerequisites(
    kind_tool: Tool,
    which: Callable[[str], str | None] = shutil.which,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> None:
    """Raise PrerequisiteError naming every missing tool and how to get it."""
    problems = []
    if which("docker") is None:
        problems.append(
            "docker: not found on PATH; install Docker: https://docs.docker.com/get-docker/"
        )
    else:
        info = run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if info.returncode != 0:
            said = info.stderr.strip().splitlines()[-1] if info.stderr.strip() else "no output"
            problems.append(
                f"docker: the client is installed but no Docker engine answers ({said}); "
                "start Docker Desktop or the docker service"
            )
    if which(kind_tool.name) is None:
        problems.append(f"kind: not found on PATH; {kind_tool.install_hint}")
    else:
        out = run(
            [kind_tool.name, "version"], capture_output=True, text=True, timeout=20, check=False
        )
        found = _version(out.stdout)
        low, high = kind_tool.minimum, kind_tool.below
        if found is None or not low <= found < high:
            shown = ".".join(map(str, found)) if found else out.stdout.strip() or "unknown"
            problems.append(
                f"kind: version {shown} is not supported (need >= {'.'.join(map(str, low))}, "
                f"< {'.'.join(map(str, high))}); {kind_tool.install_hint}"
            )
    if problems:
        raise PrerequisiteError(
            "The lab cannot create its kind cluster:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nTo use an existing cluster instead, set identity-lab:kubeconfig (--secret)."
        )


class Cluster(pulumi.ComponentResource):
    """A kind cluster with a local registry, or an adopted cluster, and its provider."""

    provider: k8s.Provider
    """Kubernetes provider for every other component."""
    kubeconfig: pulumi.Output[str]
    """The cluster's kubeconfig (secret)."""
    dns_domain: str
    """DNS domain of services, such as cluster.local."""
    service_account_issuer: str
    """The `iss` of projected service account tokens."""
    registry: str
    """Image registry prefix for the lab's own images."""

    def __init__(
        self,
        name: str,
        args: ClusterArgs,
        image_registry: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("identity-lab:cluster:Cluster", name, None, opts)
        self.dns_domain = args.dns_domain
        self.service_account_issuer = args.service_account_issuer

        if args.kubeconfig is not None:
            self.kubeconfig = pulumi.Output.secret(args.kubeconfig.reveal())
            self.registry = image_registry or args.registry_host
            depends: list[pulumi.Resource] = []
        else:
            if args.check_prerequisites and args.kind_tool is not None:
                check_prerequisites(args.kind_tool)
            kind = self._create_kind(name, args)
            # Secret by construction, whatever the engine does with additional_secret_outputs.
            self.kubeconfig = pulumi.Output.secret(kind.stdout)
            self.registry = args.registry_host
            depends = [kind, self._create_registry(name, args, kind)]

        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )

        if args.kubeconfig is None:
            self._announce_registry(name, args)

        self.register_outputs(
            {"dnsDomain": self.dns_domain, "serviceAccountIssuer": self.service_account_issuer}
        )

    def _create_kind(self, name: str, args: ClusterArgs) -> command.local.Command:
        config = yaml.safe_dump(kind_config(args), sort_keys=False)
        return command.local.Command(
            f"{name}-kind",
            create=_CREATE_SCRIPT,
            delete=_DELETE_SCRIPT,
            interpreter=["/bin/bash", "-c"],
            stdin=config,
            # stdout is the kubeconfig with the cluster admin's key: never stream it.
            logging=command.local.Logging.STDERR,
            environment={
                "CLUSTER": args.name,
                "MIRROR_HOST": args.registry_host,
                "MIRROR_ENDPOINT": f"http://{args.registry_container}:{REGISTRY_INTERNAL_PORT}",
            },
            # A changed kind config means a new cluster: kind cannot reconfigure one in place.
            triggers=[config],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["stdout"]),
        )

    def _create_registry(
        self, name: str, args: ClusterArgs, kind: command.local.Command
    ) -> docker.Container:
        image = docker.RemoteImage(
            f"{name}-registry-image",
            name=args.registry_image,
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # The "kind" network exists once kind has created its first cluster.
        return docker.Container(
            f"{name}-registry",
            name=args.registry_container,
            image=image.image_id,
            restart="always",
            ports=[
                docker.ContainerPortArgs(
                    internal=REGISTRY_INTERNAL_PORT, external=args.ports.registry, ip="127.0.0.1"
                )
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name="kind")],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[kind]),
        )

    def _announce_registry(self, name: str, args: ClusterArgs) -> None:
        # The standard way to tell tools where a cluster's local registry is (KEP-1755).
        k8s.core.v1.ConfigMap(
            f"{name}-local-registry-hosting",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="local-registry-hosting", namespace="kube-public"
            ),
            data={"localRegistryHosting.v1": yaml.safe_dump({"host": args.registry_host})},
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
