"""The lab's demo workloads, one per sequence: demo app, agent, and a service pair.

Each is a LabWorkload (image built from services/, released with charts/lab-service) whose
service account is the one its IdP client and SPIFFE ID are named after, so the SPIFFE ID SPIRE
issues, the IdP client id and the Cedar entity are one string. The workloads reach the IdP and
the gateway by their public names and trust only the lab root (mounted from a ConfigMap).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.lab_workload import LabWorkload, LabWorkloadArgs
from lab.naming import GATEWAY_PROXY_LABELS, Audience, Namespace, Scope, issuers, spiffe_id
from lab.settings import LabSettings

# Service accounts; the realm (lab/realm.py) names its clients after the same accounts.
DEMO_APP = "demo-app"
AGENT = "research-agent"
SERVICE_CALLER = "report-service"
SERVICE_TARGET = "service-target"
PORT = 8080

# Gateway paths (components/gateway.py): the chat route, and the target's /services/<segment>.
CHAT_PATH = "/models/chat"
TARGET_PATH = "/services/target"

CA_DIR = "/etc/lab-ca"
# The demo workloads are small: together they request 0.1 CPU and 256 MiB.
RESOURCES = {
    "requests": {"cpu": "25m", "memory": "64Mi"},
    "limits": {"cpu": "250m", "memory": "192Mi"},
}


@dataclass(frozen=True)
class DemoWorkloadsArgs:
    """What the demo workloads need; `from_settings` fills it from the stack config."""

    trust_domain: str
    registry: str
    """Registry prefix the images are pushed to."""
    issuer: str
    """The realm issuer: where the workloads reach the IdP and the JWT-SVID audience."""
    gateway_url: str
    """The gateway's public URL."""
    app_url: str
    """The demo app's public URL (its redirect URI is <app_url>/callback)."""
    chat_model: str
    """Model name sent in chat requests (the gateway's ai-proxy pins the real one)."""
    gateway_namespace: str = Namespace.GATEWAY.value
    gateway_pod_labels: dict[str, str] = field(default_factory=lambda: dict(GATEWAY_PROXY_LABELS))
    """Labels of the gateway's proxy pods, the only pods of its namespace admitted."""

    @classmethod
    def from_settings(
        cls, settings: LabSettings, gateway_pod_labels: dict[str, str] | None = None
    ) -> DemoWorkloadsArgs:
        return cls(
            trust_domain=settings.trust_domain,
            registry=settings.image_registry,
            issuer=issuers(settings).idp,
            # Pods reach this public name too: components/cluster_dns.py rewrites it to Kong.
            gateway_url=settings.hosts.gateway_url,
            app_url=f"https://{settings.hosts.app}:{settings.hosts.gateway_https_port}",
            chat_model=settings.ollama_model,
            gateway_pod_labels=dict(gateway_pod_labels or GATEWAY_PROXY_LABELS),
        )

    def spiffe_id(self, namespace: Namespace, account: str) -> str:
        return spiffe_id(self.trust_domain, namespace.value, account)


class DemoWorkloads(pulumi.ComponentResource):
    """Demo app (lab-apps), agent (lab-agents), service caller and target (lab-services)."""

    workloads: dict[str, LabWorkload]
    """By service account name."""

    def __init__(
        self,
        name: str,
        args: DemoWorkloadsArgs,
        root_ca_pem: pulumi.Input[str],
        demo_app_client_secret: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("identity-lab:workloads:DemoWorkloads", name, None, opts)
        self._name = name
        self._args = args
        for namespace in (Namespace.APPS, Namespace.AGENTS, Namespace.SERVICES):
            self._create_ca_config(namespace, root_ca_pem)
        secret = self._create_client_secret(demo_app_client_secret)

        self.workloads = {
            DEMO_APP: self._create_demo_app(secret),
            AGENT: self._create_agent(),
            SERVICE_CALLER: self._create_caller(),
            SERVICE_TARGET: self._create_target(),
        }
        self.register_outputs({})

    def _create_ca_config(self, namespace: Namespace, pem: pulumi.Input[str]) -> None:
        k8s.core.v1.ConfigMap(
            f"{self._name}-ca-{namespace.value}",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="lab-root-ca", namespace=namespace.value),
            data={"ca.crt": pem},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_client_secret(self, value: pulumi.Input[str]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{self._name}-demo-app-client",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="demo-app-client", namespace=Namespace.APPS.value
            ),
            string_data={"secret": pulumi.Output.secret(value)},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _values(self, account: str, env: dict[str, str], **extra) -> dict:
        """Chart values every demo workload shares: its account, the lab root, sizes."""
        return {
            "serviceAccount": {"name": account},
            "env": {"HOST": "0.0.0.0", "CA_BUNDLE": f"{CA_DIR}/ca.crt", **env},  # noqa: S104
            "configMounts": [{"name": "ca", "configMapName": "lab-root-ca", "mountPath": CA_DIR}],
            "resources": RESOURCES,
            "port": PORT,
            **extra,
        }

    def _from_gateway(self) -> dict:
        if not self._args.gateway_pod_labels:
            raise ValueError(
                "DemoWorkloadsArgs.gateway_pod_labels: give the gateway proxy's labels; an empty "
                "selector would admit every pod of the gateway's namespace"
            )
        peer = {
            "namespace": self._args.gateway_namespace,
            "podLabels": dict(self._args.gateway_pod_labels),
        }
        return {"ingressFrom": [peer]}

    def _workload(self, service: str, namespace: Namespace, values: dict) -> LabWorkload:
        # The release, and so the Deployment and Service, is named after the account: the
        # gateway's routes name their upstream Service.
        return LabWorkload(
            values["serviceAccount"]["name"],
            LabWorkloadArgs(
                service=service,
                namespace=namespace.value,
                registry=self._args.registry,
                values=values,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_demo_app(self, secret: k8s.core.v1.Secret) -> LabWorkload:
        a = self._args
        env = {
            "IDP_ISSUER": a.issuer,
            "CLIENT_ID": DEMO_APP,
            "PUBLIC_URL": a.app_url,
            "GATEWAY_URL": a.gateway_url,
            "CHAT_PATH": CHAT_PATH,
            "CHAT_MODEL": a.chat_model,
            "SCOPE": f"openid {Scope.CHAT}",
        }
        values = self._values(
            DEMO_APP,
            env,
            secretEnv={"CLIENT_SECRET": {"secret": "demo-app-client", "key": "secret"}},
            # The browser reaches the app through the gateway's TLS listener only.
            networkPolicy=self._from_gateway(),
        )
        return self._workload("demo_app", Namespace.APPS, values)

    def _create_agent(self) -> LabWorkload:
        a = self._args
        env = {
            "IDP_ISSUER": a.issuer,
            "CLIENT_ID": a.spiffe_id(Namespace.AGENTS, AGENT),
            "GATEWAY_URL": a.gateway_url,
            "CHAT_PATH": CHAT_PATH,
            "CHAT_MODEL": a.chat_model,
            "DELEGATED_AUDIENCE": Audience.CHAT.value,
            "DELEGATED_SCOPE": Scope.CHAT.value,
        }
        values = self._values(AGENT, env, spiffe={"enabled": True})
        # TODO: users reach the agent with kubectl exec; it can go when the gateway
        # routes an agent path with user tokens.
        return self._workload("agent", Namespace.AGENTS, values)

    def _create_caller(self) -> LabWorkload:
        a = self._args
        env = {
            "IDP_ISSUER": a.issuer,
            "CLIENT_ID": a.spiffe_id(Namespace.SERVICES, SERVICE_CALLER),
            "GATEWAY_URL": a.gateway_url,
            "TARGET_PATH": TARGET_PATH,
            "SCOPE": Scope.SERVICE.value,
        }
        values = self._values(SERVICE_CALLER, env, spiffe={"enabled": True})
        return self._workload("service_caller", Namespace.SERVICES, values)

    def _create_target(self) -> LabWorkload:
        values = self._values(SERVICE_TARGET, {}, networkPolicy=self._from_gateway())
        return self._workload("service_target", Namespace.SERVICES, values)
