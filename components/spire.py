"""Workload identity: SPIRE from the upstream hardened charts, its CA signed by Vault's PKI.

Two releases: the CRDs alone, then server, agents, controller manager, SPIFFE CSI driver and
OIDC discovery provider (which depends on the CRDs). The server's upstream authority is the
Vault PKI intermediate, reached with Kubernetes auth, so every SVID chains to the lab root.
One ClusterSPIFFEID per workload class gives SPIFFE IDs from the one template in
lab/naming.py; system namespaces get none. The JWT issuer is set explicitly and is the same
string in the server and the discovery provider, and the provider serves only host names.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pulumi
import pulumi_kubernetes as k8s

from components.vault_config import VAULT_AUDIENCE
from lab.naming import CLASS_NAMESPACES, SPIFFE_ID_TEMPLATE, Namespace, WorkloadClass, issuers
from lab.settings import LabSettings
from lab.versions import Chart

RELEASE = "spire"

# SPIRE's own CA (signed by Vault): its key type, lifetime and the subject it asks for.
CA_KEY_TYPE = "ec-p256"
CA_TTL_HOURS = 24
CA_SUBJECT = {"country": "US", "organization": "Identity Lab", "commonName": "SPIRE CA"}

# Namespaces that never get an SVID, whatever a selector says.
SYSTEM_NAMESPACES = (
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
    Namespace.VAULT.value,
    Namespace.IDP.value,
)

# The Go template the controller manager fills per pod: the lab's one SPIFFE ID template.
CONTROLLER_ID_TEMPLATE = SPIFFE_ID_TEMPLATE.format(
    trust_domain="{{ .TrustDomain }}",
    namespace="{{ .PodMeta.Namespace }}",
    service_account="{{ .PodSpec.ServiceAccountName }}",
)

# The Secret-or-ConfigMap the chart mounts as Vault's CA (`ca.crt`).
VAULT_CA_CONFIGMAP = "vault-ca"

OIDC_SERVICE = f"{RELEASE}-spiffe-oidc-discovery-provider"


def oidc_served_domains(issuer: str) -> list[str]:
    """The host names the discovery provider answers for: the issuer's host, never a URL."""
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(
            f"SPIRE JWT issuer {issuer!r}: expected an https:// URL such as https://oidc.lab.local"
        )
    return [parts.hostname]


@dataclass(frozen=True)
class SpireArgs:
    """What SPIRE needs; `from_settings` fills it from the config and Vault's layout."""

    trust_domain: str
    cluster_name: str
    cluster_dns_domain: str
    """The cluster's DNS domain; also the chart's cluster domain."""
    jwt_issuer: str
    """`iss` of every JWT-SVID and the discovery document's issuer (full https URL)."""
    jwt_svid_ttl: int
    """Seconds; at most 300."""
    x509_svid_ttl: int
    """Seconds; at most 3600."""
    vault_address: str
    """Vault's in-cluster address."""
    vault_pki_mount: str
    vault_auth_path: str
    vault_role: str
    """Kubernetes auth role SPIRE's server logs in with."""
    crds_chart: Chart
    chart: Chart
    server_namespace: str = Namespace.SPIRE_SERVER.value
    system_namespace: str = Namespace.SPIRE_SYSTEM.value

    def __post_init__(self) -> None:
        if not 0 < self.jwt_svid_ttl <= 300:
            raise ValueError(f"JWT-SVID TTL {self.jwt_svid_ttl} s: allowed 1 to 300 s")
        if not 0 < self.x509_svid_ttl <= 3600:
            raise ValueError(f"X.509-SVID TTL {self.x509_svid_ttl} s: allowed 1 to 3600 s")
        if self.x509_svid_ttl >= CA_TTL_HOURS * 3600:
            raise ValueError("an X.509-SVID may not outlive SPIRE's CA")
        oidc_served_domains(self.jwt_issuer)

    @classmethod
    def from_settings(
        cls,
        settings: LabSettings,
        vault_address: str,
        vault_pki_mount: str,
        vault_auth_path: str,
        vault_role: str,
    ) -> SpireArgs:
        return cls(
            trust_domain=settings.trust_domain,
            cluster_name=settings.cluster_name,
            cluster_dns_domain=settings.cluster_dns_domain,
            jwt_issuer=issuers(settings).spire,
            jwt_svid_ttl=settings.lifetimes.jwt_svid,
            x509_svid_ttl=settings.lifetimes.x509_svid,
            vault_address=vault_address,
            vault_pki_mount=vault_pki_mount,
            vault_auth_path=vault_auth_path,
            vault_role=vault_role,
            crds_chart=settings.versions.spire_crds,
            chart=settings.versions.spire,
        )

    @property
    def oidc_base_url(self) -> str:
        return f"https://{OIDC_SERVICE}.{self.server_namespace}.svc.{self.cluster_dns_domain}"

    def spiffe_id_pattern(self, workload_class: WorkloadClass) -> str:
        """The class's SPIFFE ID with `{service_account}` left to fill."""
        return SPIFFE_ID_TEMPLATE.format(
            trust_domain=self.trust_domain,
            namespace=CLASS_NAMESPACES[workload_class].value,
            service_account="{service_account}",
        )


def cluster_spiffe_ids(args: SpireArgs) -> dict:
    """The chart's identities: one per workload class, the chart's defaults switched off."""
    identities: dict = {
        # The catch-all would give every pod an ID; the lab names its classes instead.
        "default": {"enabled": False},
        "test-keys": {"enabled": False},
    }
    for workload_class in WorkloadClass:
        identities[workload_class.value] = {
            "enabled": True,
            "spiffeIDTemplate": CONTROLLER_ID_TEMPLATE,
            "namespaceSelector": {
                "matchLabels": {
                    "kubernetes.io/metadata.name": CLASS_NAMESPACES[workload_class].value
                }
            },
            "podSelector": {},
            "ttl": f"{args.x509_svid_ttl}s",
            "jwtTTL": f"{args.jwt_svid_ttl}s",
        }
    return identities


def _sized(cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> dict:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


# Every SPIRE container is sized, so the laptop footprint read off a plan is the real one.
RESOURCES = {
    "server": _sized("50m", "128Mi", "500m", "256Mi"),
    "controller_manager": _sized("25m", "64Mi", "250m", "128Mi"),
    "agent": _sized("25m", "64Mi", "250m", "128Mi"),
    "csi_driver": _sized("10m", "32Mi", "100m", "64Mi"),
    "oidc": _sized("10m", "32Mi", "100m", "64Mi"),
}


def chart_values(args: SpireArgs) -> dict:
    return {
        "global": {
            "k8s": {"clusterDomain": args.cluster_dns_domain},
            "spire": {
                "clusterName": args.cluster_name,
                "trustDomain": args.trust_domain,
                "jwtIssuer": args.jwt_issuer,
                "caSubject": CA_SUBJECT,
                # The recommended layout puts the server and the node agents in separate
                # namespaces (created by the lab, hence create: false) and checks the values.
                "recommendations": {"enabled": True, "prometheus": False},
                "namespaces": {
                    "create": False,
                    "server": {"name": args.server_namespace},
                    "system": {"name": args.system_namespace},
                },
            },
        },
        "spire-server": {
            "resources": RESOURCES["server"],
            "caKeyType": CA_KEY_TYPE,
            "caTTL": f"{CA_TTL_HOURS}h",
            "defaultX509SvidTTL": f"{args.x509_svid_ttl}s",
            "defaultJwtSvidTTL": f"{args.jwt_svid_ttl}s",
            "upstreamAuthority": {
                "vault": {
                    "enabled": True,
                    "vaultAddr": args.vault_address,
                    "pkiMountPoint": args.vault_pki_mount,
                    "insecureSkipVerify": False,
                    "caCert": {"type": "Configmap", "name": VAULT_CA_CONFIGMAP},
                    "k8sAuth": {
                        "enabled": True,
                        "k8sAuthMountPoint": args.vault_auth_path,
                        "k8sAuthRoleName": args.vault_role,
                        "token": {"audience": VAULT_AUDIENCE, "expiry": 7200},
                    },
                }
            },
            "controllerManager": {
                "enabled": True,
                "resources": RESOURCES["controller_manager"],
                "ignoreNamespaces": list(SYSTEM_NAMESPACES),
                "identities": {"clusterSPIFFEIDs": cluster_spiffe_ids(args)},
            },
        },
        "spire-agent": {"enabled": True, "resources": RESOURCES["agent"]},
        # charts/lab-service mounts the Workload API through this driver (csi.spiffe.io).
        "spiffe-csi-driver": {"enabled": True, "resources": RESOURCES["csi_driver"]},
        "spiffe-oidc-discovery-provider": {
            "enabled": True,
            "resources": RESOURCES["oidc"],
            "config": {
                "jwtDomain": oidc_served_domains(args.jwt_issuer)[0],
                "additionalDomains": [],
                # Publish `use: sig` on each key: some relying parties skip keys without it.
                "setKeyUse": True,
            },
        },
    }


class Spire(pulumi.ComponentResource):
    """SPIRE server, agents, controller manager, CSI driver and OIDC discovery provider."""

    trust_bundle_pem: pulumi.Output[str]
    """The root every X.509-SVID chains to (the lab root)."""
    jwt_issuer: str
    """`iss` of JWT-SVIDs."""
    oidc_discovery_url: str
    """In-cluster discovery document URL."""
    jwks_url: str
    """In-cluster JWKS (the IdP's bundle endpoint for SPIFFE client authentication)."""
    spiffe_ids: dict[str, str]
    """Workload class -> SPIFFE ID with `{service_account}` to fill."""
    crds: k8s.helm.v3.Release
    release: k8s.helm.v3.Release

    def __init__(
        self,
        name: str,
        args: SpireArgs,
        trust_bundle_pem: pulumi.Input[str],
        namespaces_ready: list[pulumi.Resource],
        vault_ready: list[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("identity-lab:identity:Spire", name, None, opts)
        self.trust_bundle_pem = pulumi.Output.from_input(trust_bundle_pem)
        self.jwt_issuer = args.jwt_issuer
        self.oidc_discovery_url = f"{args.oidc_base_url}/.well-known/openid-configuration"
        self.jwks_url = f"{args.oidc_base_url}/keys"
        self.spiffe_ids = {c.value: args.spiffe_id_pattern(c) for c in WorkloadClass}

        self.crds = k8s.helm.v3.Release(
            f"{name}-crds",
            name=f"{RELEASE}-crds",
            chart=args.crds_chart.name,
            version=args.crds_chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.crds_chart.repo),
            namespace=args.server_namespace,
            opts=pulumi.ResourceOptions(parent=self, depends_on=namespaces_ready),
        )
        vault_ca = k8s.core.v1.ConfigMap(
            f"{name}-vault-ca",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=VAULT_CA_CONFIGMAP, namespace=args.server_namespace
            ),
            data={"ca.crt": self.trust_bundle_pem},
            opts=pulumi.ResourceOptions(parent=self, depends_on=namespaces_ready),
        )
        # Everything here uses the CRDs (ClusterSPIFFEID, ...), and the server needs Vault
        # configured before its first CA rotation.
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE,
            chart=args.chart.name,
            version=args.chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.chart.repo),
            namespace=args.server_namespace,
            values=chart_values(args),
            timeout=600,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.crds, vault_ca, *vault_ready]
            ),
        )
        self.register_outputs(
            {
                "jwtIssuer": self.jwt_issuer,
                "oidcDiscoveryUrl": self.oidc_discovery_url,
                "spiffeIds": self.spiffe_ids,
            }
        )
