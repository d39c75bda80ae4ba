"""The identity lab: stack config -> components -> exports."""

import pulumi
import pulumi_vault

from components.cluster import Cluster, ClusterArgs
from components.namespaces import Namespaces
from components.root_ca import RootCa, RootCaArgs
from components.spire import Spire, SpireArgs
from components.vault import VaultServer, VaultServerArgs
from components.vault_config import VaultConfig, VaultConfigArgs
from lab.settings import load_settings

settings = load_settings()

cluster = Cluster("cluster", ClusterArgs.from_settings(settings), settings.image_registry)
in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
namespaces = Namespaces("namespaces", opts=in_cluster)

root_ca = RootCa("root-ca", RootCaArgs.from_settings(settings.root_ca))

# One trust anchor: Vault's PKI intermediate under the root, SPIRE's CA under Vault.
vault_server = VaultServer(
    "vault", VaultServerArgs.from_settings(settings), namespaces.ready, opts=in_cluster
)
vault_provider = pulumi_vault.Provider(
    "vault",
    address=vault_server.address,
    token=vault_server.root_token,
    # The root token is the lab's admin credential; no child token per run.
    skip_child_token=True,
    opts=pulumi.ResourceOptions(parent=vault_server),
)
vault_config = VaultConfig(
    "vault-config",
    VaultConfigArgs.from_settings(
        settings, vault_server.in_cluster_address, cluster.service_account_issuer
    ),
    root_ca,
    opts=pulumi.ResourceOptions(providers={"vault": vault_provider}),
)
spire = Spire(
    "spire",
    SpireArgs.from_settings(
        settings,
        vault_server.in_cluster_address,
        vault_config.pki_mount,
        vault_config.kubernetes_auth_path,
        vault_config.roles["spire-server"],
    ),
    trust_bundle_pem=root_ca.cert_pem,
    namespaces_ready=namespaces.ready,
    vault_ready=vault_config.ready,
    opts=in_cluster,
)

pulumi.export("mode", settings.mode)
pulumi.export("trustDomain", settings.trust_domain)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("clusterDnsDomain", cluster.dns_domain)
pulumi.export("serviceAccountIssuer", cluster.service_account_issuer)
pulumi.export("imageRegistry", cluster.registry)
pulumi.export("rootCaCertPem", root_ca.cert_pem)
pulumi.export("vaultAddress", vault_server.address)
pulumi.export("trustBundlePem", spire.trust_bundle_pem)
pulumi.export("spireJwtIssuer", spire.jwt_issuer)
pulumi.export("spireOidcDiscoveryUrl", spire.oidc_discovery_url)
pulumi.export("spireJwksUrl", spire.jwks_url)
pulumi.export("spiffeIds", spire.spiffe_ids)
