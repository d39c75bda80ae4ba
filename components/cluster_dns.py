"""The lab's public host names, resolved inside the cluster to the Services behind them.

A token's `iss` and a client's URLs must be the same strings in pods and on the host, so pods
call the IdP and the gateway by their public names too. On the host those names resolve to
127.0.0.1 (the kind port mappings); in a pod 127.0.0.1 is the pod itself, so CoreDNS rewrites
each public name to its Service, which listens on the same port number as the host port.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s


@dataclass(frozen=True)
class HostRewrite:
    public_host: str
    """The name clients use, such as idp.lab.localhost."""
    service_host: str
    """The Service it reaches in the cluster, fully qualified."""


def corefile(rewrites: Sequence[HostRewrite], dns_domain: str) -> str:
    """kind's default Corefile plus one rewrite per public name."""
    rules = "".join(
        f"    rewrite stop {{\n"
        f"       name exact {r.public_host} {r.service_host}\n"
        f"       answer name {r.service_host} {r.public_host}\n"
        f"    }}\n"
        for r in rewrites
    )
    return (
        ".:53 {\n"
        "    errors\n"
        "    health {\n"
        "       lameduck 5s\n"
        "    }\n"
        "    ready\n"
        f"{rules}"
        f"    kubernetes {dns_domain} in-addr.arpa ip6.arpa {{\n"
        "       pods insecure\n"
        "       fallthrough in-addr.arpa ip6.arpa\n"
        "       ttl 30\n"
        "    }\n"
        "    prometheus :9153\n"
        "    forward . /etc/resolv.conf {\n"
        "       max_concurrent 1000\n"
        "    }\n"
        "    cache 30\n"
        "    loop\n"
        "    reload\n"
        "    loadbalance\n"
        "}\n"
    )


@dataclass(frozen=True)
class ClusterDnsArgs:
    rewrites: Sequence[HostRewrite]
    """Every public name pods must reach, and its Service."""
    dns_domain: str
    """The cluster's DNS domain (kind's Corefile serves it)."""
    patch_corefile: bool = True
    """Replace the Corefile (kind, whose Corefile is known); off for an adopted cluster."""

    def __post_init__(self) -> None:
        hosts = [r.public_host for r in self.rewrites]
        if len(set(hosts)) != len(hosts):
            raise ValueError(f"cluster DNS: each public name once, got {hosts}")


class ClusterDns(pulumi.ComponentResource):
    """CoreDNS rewrites for the lab's public names (kind clusters, whose Corefile is known)."""

    def __init__(self, name: str, args: ClusterDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("identity-lab:cluster:ClusterDns", name, None, opts)

        if not args.patch_corefile:
            # An adopted cluster's Corefile is its owner's: say what must resolve, change nothing.
            wanted = ", ".join(f"{r.public_host} -> {r.service_host}" for r in args.rewrites)
            pulumi.log.warn(
                f"Cluster DNS is not changed on an adopted cluster; make these names resolve "
                f"in pods, or in-cluster calls to the lab's public URLs will fail: {wanted}",
                resource=self,
            )
            self.register_outputs({})
            return

        # CoreDNS reloads its Corefile by itself (the `reload` plugin).
        k8s.core.v1.ConfigMapPatch(
            f"{name}-coredns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="coredns",
                namespace="kube-system",
                annotations={"pulumi.com/patchForce": "true"},
            ),
            data={"Corefile": corefile(args.rewrites, args.dns_domain)},
            # Deleting the patch would drop the whole Corefile; the rewrites are harmless to keep.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
        )
        self.register_outputs({})
