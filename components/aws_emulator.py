"""The in-cluster AWS emulator of the dev stack: moto's server, for SNS, SQS, IAM, KMS and STS.

moto is the emulator because it is maintained (monthly releases), answers the real AWS wire
protocols for every service the signals use, and is the same engine the tests run on loopback,
so what the tests prove is what the lab runs. It listens inside the cluster for the lab's
workloads and on a NodePort that the kind config publishes on 127.0.0.1, where the AWS
provider of `pulumi up` reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from lab.naming import Namespace
from lab.versions import Image

EMULATOR_PORT = 5000
SERVICE_NAME = "moto"

# moto keeps everything in memory; a few hundred MiB cover the lab's topics and queues.
RESOURCES = {
    "requests": {"cpu": "50m", "memory": "128Mi"},
    "limits": {"cpu": "500m", "memory": "512Mi"},
}


@dataclass(frozen=True)
class AwsEmulatorArgs:
    image: Image
    """moto's server image (motoserver/moto), pinned."""
    node_port: int
    """Fixed NodePort that the kind config maps to the host port on 127.0.0.1."""
    cluster_dns_domain: str
    """DNS domain of in-cluster services, for the endpoint the workloads use."""
    namespace: str = Namespace.AWS_EMULATOR.value
    """Namespace (created by the Namespaces component)."""


class AwsEmulator(pulumi.ComponentResource):
    """moto's server as a Deployment, with a NodePort Service."""

    in_cluster_endpoint: str
    """Where the lab's workloads reach the emulator (AWS_ENDPOINT_URL)."""
    ready: list[pulumi.Resource]
    """Depend on these before calling the emulator (the AWS provider does)."""

    def __init__(
        self, name: str, args: AwsEmulatorArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("identity-lab:aws:AwsEmulator", name, None, opts)
        labels = {
            "app.kubernetes.io/name": SERVICE_NAME,
            "app.kubernetes.io/part-of": "identity-lab",
        }
        self.in_cluster_endpoint = (
            f"http://{SERVICE_NAME}.{args.namespace}.svc.{args.cluster_dns_domain}:{EMULATOR_PORT}"
        )
        deployment = self._create_deployment(name, args, labels)
        service = self._create_service(name, args, labels)
        self.ready = [deployment, service]
        self.register_outputs({"inClusterEndpoint": self.in_cluster_endpoint})

    def _create_deployment(
        self, name: str, args: AwsEmulatorArgs, labels: dict[str, str]
    ) -> k8s.apps.v1.Deployment:
        probe = k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port=EMULATOR_PORT), period_seconds=5
        )
        container = k8s.core.v1.ContainerArgs(
            name=SERVICE_NAME,
            image=args.image.ref,
            ports=[k8s.core.v1.ContainerPortArgs(container_port=EMULATOR_PORT, name="http")],
            readiness_probe=probe,
            liveness_probe=probe,
            resources=RESOURCES,
            # moto keeps its state in memory and writes nothing under its install, so it runs
            # as an unprivileged user like every other lab workload.
            security_context=k8s.core.v1.SecurityContextArgs(
                run_as_non_root=True,
                run_as_user=10001,
                run_as_group=10001,
                allow_privilege_escalation=False,
                capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            ),
        )
        # The default rollout wait keeps the AWS provider from calling before moto listens.
        # TODO: moto keeps its state in memory; a restarted pod has no topics or queues until
        # `pulumi refresh && pulumi up` recreates them. Mount a volume once moto persists.
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SERVICE_NAME, namespace=args.namespace, labels=labels
            ),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[container],
                        automount_service_account_token=False,
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")
                        ),
                    ),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_service(
        self, name: str, args: AwsEmulatorArgs, labels: dict[str, str]
    ) -> k8s.core.v1.Service:
        return k8s.core.v1.Service(
            f"{name}-service",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=SERVICE_NAME, namespace=args.namespace, labels=labels
            ),
            spec=k8s.core.v1.ServiceSpecArgs(
                type="NodePort",
                selector=labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http",
                        port=EMULATOR_PORT,
                        target_port=EMULATOR_PORT,
                        node_port=args.node_port,
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


# The dummy credentials moto's documentation uses; moto accepts any and checks none.
EMULATOR_CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}
EMULATED_SERVICES = ("iam", "kms", "sns", "sqs", "sts")


def emulator_provider_args(host_port: int, region: str) -> dict:
    """Arguments of the AWS provider that talks to the emulator from the user's machine.

    Every service the signals use points at the NodePort on 127.0.0.1; the skip flags stop
    the provider from validating the dummy credentials, looking up an account or asking the
    EC2 metadata service, none of which an emulator answers like AWS.
    """
    url = f"http://127.0.0.1:{host_port}"
    return {
        "region": region,
        **EMULATOR_CREDENTIALS,
        "skip_credentials_validation": True,
        "skip_requesting_account_id": True,
        "skip_metadata_api_check": True,
        "skip_region_validation": True,
        "endpoints": [aws.ProviderEndpointArgs(**dict.fromkeys(EMULATED_SERVICES, url))],
    }
