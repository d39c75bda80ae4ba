"""The lab's namespaces, with Pod Security levels and a default-deny ingress policy.

Lab namespaces run only the lab's own hardened workloads: Pod Security `restricted`, and no
ingress unless a workload's chart admits a named caller. Platform namespaces (SPIRE, Vault,
the IdP, the gateway, the emulator) run upstream charts; they get the level each chart needs.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from lab.naming import Namespace

# Pod Security Standard per namespace. The SPIRE agent mounts a host socket directory.
POD_SECURITY = {
    Namespace.VAULT: "baseline",
    Namespace.SPIRE_SERVER: "baseline",
    Namespace.SPIRE_SYSTEM: "privileged",
    Namespace.IDP: "baseline",
    Namespace.GATEWAY: "baseline",
    Namespace.LAB_SYSTEM: "restricted",
    Namespace.AGENTS: "restricted",
    Namespace.SERVICES: "restricted",
    Namespace.APPS: "restricted",
    Namespace.MODELS: "baseline",
    Namespace.AWS_EMULATOR: "baseline",
}

# Namespaces that deny all ingress by default; their workloads admit callers one by one.
DEFAULT_DENY = (
    Namespace.LAB_SYSTEM,
    Namespace.AGENTS,
    Namespace.SERVICES,
    Namespace.APPS,
    Namespace.MODELS,
)


class Namespaces(pulumi.ComponentResource):
    """Every namespace of the lab; components depend on `ready` before deploying into one."""

    ready: list[pulumi.Resource]
    """The namespaces and their policies: depend on these."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("identity-lab:cluster:Namespaces", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.ready = []

        for namespace, level in POD_SECURITY.items():
            created = k8s.core.v1.Namespace(
                f"{name}-{namespace.value}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=namespace.value,
                    labels={
                        "app.kubernetes.io/part-of": "identity-lab",
                        "pod-security.kubernetes.io/enforce": level,
                        "pod-security.kubernetes.io/warn": "restricted",
                    },
                ),
                opts=child,
            )
            self.ready.append(created)
            if namespace in DEFAULT_DENY:
                self.ready.append(self._deny_ingress(name, namespace, created))

        self.register_outputs({})

    def _deny_ingress(
        self, name: str, namespace: Namespace, created: k8s.core.v1.Namespace
    ) -> k8s.networking.v1.NetworkPolicy:
        return k8s.networking.v1.NetworkPolicy(
            f"{name}-{namespace.value}-default-deny",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="default-deny-ingress", namespace=created.metadata.name
            ),
            spec=k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(),
                policy_types=["Ingress"],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
