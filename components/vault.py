"""The lab's secrets server: HashiCorp Vault (or OpenBao, same API) from its upstream chart.

Standalone with a persistent volume by default, so the lab's PKI and KV survive a pod restart;
dev mode (in memory, fixed root token) only when asked. The lab initialises and unseals the
server itself with a script run by pulumi-command on the user's machine, through the kind
port mapping; the unseal key and root token exist only as Pulumi secrets. The caller builds a
pulumi-vault provider from `address` and `root_token` and hands it to `VaultConfig`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_command as command
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.cluster import NODE_PORTS
from lab.naming import Namespace
from lab.settings import LabSettings
from lab.versions import Chart, Image

INIT_SCRIPT = Path(__file__).resolve().parent.parent / "lab" / "vault_init.py"

API_PORT = 8200

# Ready while sealed or uninitialised: otherwise Helm waits for a pod that only the lab's own
# init step (which runs after the release) can make ready.
READINESS_PATH = "/v1/sys/health?standbyok=true&sealedcode=204&uninitcode=204"


@dataclass(frozen=True)
class VaultServerArgs:
    """What the server needs; `from_settings` fills it from the stack config."""

    flavor: str
    """"vault" (HashiCorp Vault) or "openbao"."""
    chart: Chart
    """The flavor's upstream chart, pinned."""
    image: Image
    """The flavor's server image, pinned."""
    dev_mode: bool
    """In memory, unsealed, fixed root token: quick but lost on restart."""
    storage_gi: int
    """Size of the data volume (standalone mode)."""
    host_port: int
    """Port on 127.0.0.1 that kind maps to the NodePort; the provider and init step use it."""
    cluster_dns_domain: str
    """For the in-cluster address."""
    namespace: str = Namespace.VAULT.value
    node_port: int = NODE_PORTS["vault"]

    @classmethod
    def from_settings(cls, settings: LabSettings) -> VaultServerArgs:
        pins = settings.versions
        openbao = settings.vault_flavor == "openbao"
        return cls(
            flavor=settings.vault_flavor,
            chart=pins.openbao if openbao else pins.vault,
            image=pins.openbao_image if openbao else pins.vault_image,
            dev_mode=settings.vault_dev_mode,
            storage_gi=settings.vault_storage_gi,
            host_port=settings.ports.vault,
            cluster_dns_domain=settings.cluster_dns_domain,
        )

    @property
    def release_name(self) -> str:
        # The chart's full name equals the release name when the release contains the chart's
        # name, so the Service is simply "vault" or "openbao".
        return self.flavor

    @property
    def host_address(self) -> str:
        return f"http://127.0.0.1:{self.host_port}"

    @property
    def in_cluster_address(self) -> str:
        return (
            f"http://{self.release_name}.{self.namespace}.svc.{self.cluster_dns_domain}:{API_PORT}"
        )


def image_values(args: VaultServerArgs) -> dict[str, Any]:
    if args.flavor == "openbao":
        # The OpenBao chart splits registry and repository.
        registry, _, repository = args.image.repository.partition("/")
        return {"registry": registry, "repository": repository, "tag": args.image.tag}
    return {"repository": args.image.repository, "tag": args.image.tag}


def chart_values(args: VaultServerArgs, dev_root_token: pulumi.Input[str] | None) -> dict:
    """The release's values; identical keys in the Vault and OpenBao charts except the image."""
    # TODO: the charts' default listener is plain HTTP (loopback on the host, service in the
    # cluster); it can go once Vault serves a certificate under the lab root and the provider
    # and SPIRE's `vault-ca` ConfigMap verify it.
    server: dict[str, Any] = {
        "image": image_values(args),
        "readinessProbe": {"enabled": True, "path": READINESS_PATH},
        # Vault's Kubernetes auth reviews service-account tokens with its own account.
        "authDelegator": {"enabled": True},
        "service": {"type": "NodePort", "nodePort": args.node_port},
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
    }
    if args.dev_mode:
        server["dev"] = {"enabled": True, "devRootToken": dev_root_token}
        server["dataStorage"] = {"enabled": False}
    else:
        server["standalone"] = {"enabled": True}
        server["dataStorage"] = {"enabled": True, "size": f"{args.storage_gi}Gi"}
    return {
        "injector": {"enabled": False},
        "csi": {"enabled": False},
        "ui": {"enabled": True},
        "server": server,
    }


class VaultServer(pulumi.ComponentResource):
    """Vault (or OpenBao) released into its namespace, initialised and unsealed."""

    address: pulumi.Output[str]
    """Host address (127.0.0.1, kind port mapping); resolves once the server is unsealed."""
    in_cluster_address: str
    """Address for workloads inside the cluster (SPIRE's upstream authority)."""
    root_token: pulumi.Output[str]
    """Root token (secret), for the caller's pulumi-vault provider only."""
    release: k8s.helm.v3.Release
    """The chart release (values visible in plans)."""

    def __init__(
        self,
        name: str,
        args: VaultServerArgs,
        depends_on: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("identity-lab:secrets:VaultServer", name, None, opts)
        self.in_cluster_address = args.in_cluster_address

        dev_token = self._create_dev_token(name) if args.dev_mode else None
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=args.release_name,
            chart=args.chart.name,
            version=args.chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.chart.repo),
            namespace=args.namespace,
            values=chart_values(args, dev_token.result if dev_token else None),
            timeout=600,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on or []),
        )

        if dev_token is not None:
            self.root_token = pulumi.Output.secret(dev_token.result)
            # Dev mode starts unsealed: the address is usable once the release is up.
            self.address = self.release.status.apply(lambda _: args.host_address)
        else:
            self._create_init_and_unseal(name, args)

        self.register_outputs(
            {"address": self.address, "inClusterAddress": args.in_cluster_address}
        )

    def _create_dev_token(self, name: str) -> random.RandomPassword:
        return random.RandomPassword(
            f"{name}-dev-root-token",
            length=32,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_init_and_unseal(self, name: str, args: VaultServerArgs) -> None:
        script = INIT_SCRIPT.read_text()
        base_env = {"VAULT_ADDR": args.host_address, "LAB_VAULT_WAIT_SECONDS": "300"}
        # Runs once: a second init on the same volume is refused by the script, since the
        # keys from the first exist only in this stack's state.
        init = command.local.Command(
            f"{name}-init",
            create=script,
            interpreter=["python3", "-c"],
            environment={**base_env, "LAB_VAULT_STEP": "init"},
            # stdout carries the unseal keys and root token: never stream it to the console.
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.release],
                additional_secret_outputs=["stdout"],
            ),
        )
        document = pulumi.Output.secret(init.stdout).apply(json.loads)
        self.root_token = pulumi.Output.secret(document.apply(lambda d: d["root_token"]))
        keys = pulumi.Output.secret(document.apply(lambda d: json.dumps(d["unseal_keys_b64"])))

        # TODO: a restarted Vault pod stays sealed until this step runs again
        # (`pulumi up --target-replace <its URN>`); it can go once the lab has an auto-unseal
        # (OpenBao's static seal, or a transit/KMS seal) that keeps the key out of the cluster.
        unseal = command.local.Command(
            f"{name}-unseal",
            create=script,
            interpreter=["python3", "-c"],
            environment=keys.apply(
                lambda k: {**base_env, "LAB_VAULT_STEP": "unseal", "UNSEAL_KEYS_JSON": k}
            ),
            logging=command.local.Logging.STDERR,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[init]),
        )
        self.address = unseal.stdout.apply(lambda _: args.host_address)
