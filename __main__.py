"""The identity lab: stack config -> components -> exports."""

import pulumi
import pulumi_keycloak as keycloak
import pulumi_vault

from components.cluster import NODE_PORTS, Cluster, ClusterArgs
from components.demo_workloads import DemoWorkloads, DemoWorkloadsArgs
from components.identity_provider import IdentityProvider, IdentityProviderArgs
from components.keycloak_realm import KeycloakRealm, KeycloakRealmArgs
from components.model_servers import ModelServers, ModelServersArgs
from components.namespaces import Namespaces
from components.policy_store import PolicyStore, PolicyStoreArgs
from components.root_ca import RootCa, RootCaArgs
from components.spire import Spire, SpireArgs
from components.vault import VaultServer, VaultServerArgs
from components.vault_config import VaultConfig, VaultConfigArgs
from lab.naming import ciba_channel_url
from lab.realm import lab_realm
from lab.settings import load_settings

settings = load_settings()

cluster = Cluster("cluster", ClusterArgs.from_settings(settings), settings.image_registry)
in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
namespaces = Namespaces("namespaces", opts=in_cluster)

root_ca = RootCa("root-ca", RootCaArgs.from_settings(settings.root_ca))

idp = IdentityProvider(
    "idp",
    IdentityProviderArgs(
        public_host=settings.hosts.idp,
        https_port=settings.ports.idp_https,
        node_port=NODE_PORTS["idp_https"],
        cluster_dns_domain=settings.cluster_dns_domain,
        image=settings.versions.keycloak,
        chart=settings.versions.keycloak_chart,
        postgres_image=settings.versions.postgres,
        database_storage_gi=settings.idp_database_storage_gi,
        ciba_channel_url=ciba_channel_url(settings.cluster_dns_domain),
        rewrite_cluster_dns=not settings.adopts_cluster,
    ),
    root_ca,
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
)
# The realm is configured over the admin API at the public URL, trusting only the lab root.
keycloak_admin = keycloak.Provider(
    "keycloak",
    url=idp.url,
    base_path="",
    realm="master",
    client_id="admin-cli",
    username=idp.admin_username,
    password=idp.admin_password,
    root_ca_certificate=root_ca.cert_pem,
    initial_login=False,
    opts=pulumi.ResourceOptions(parent=idp, depends_on=[idp.release]),
)
realm = KeycloakRealm(
    "realm",
    KeycloakRealmArgs(lab_realm(settings)),
    root_ca,
    opts=pulumi.ResourceOptions(providers={"keycloak": keycloak_admin}, depends_on=[idp.release]),
)

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

# The protected resources, reachable from the gateway's namespace only.
models = ModelServers(
    "models",
    ModelServersArgs.from_settings(settings),
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
)
# One workload per sequence, each under the account its SPIFFE ID and IdP client are named for.
demo = DemoWorkloads(
    "demo",
    DemoWorkloadsArgs.from_settings(settings),
    root_ca.cert_pem,
    realm.client_secrets["demo-app"],
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
)

# The one place the gateway asks: Cedar decisions on the repo's policy files, and the deny list.
policy_store = PolicyStore(
    "authz",
    PolicyStoreArgs.from_settings(settings, realm.public_key_pem),
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
)

pulumi.export("mode", settings.mode)
pulumi.export("trustDomain", settings.trust_domain)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("clusterDnsDomain", cluster.dns_domain)
pulumi.export("serviceAccountIssuer", cluster.service_account_issuer)
pulumi.export("imageRegistry", cluster.registry)
pulumi.export("rootCaCertPem", root_ca.cert_pem)
pulumi.export("idpUrl", idp.url)
pulumi.export("realmIssuer", realm.issuer)
pulumi.export("realmPublicKeyPem", realm.public_key_pem)
pulumi.export("demoUserPasswords", pulumi.Output.secret(realm.user_passwords))
pulumi.export("demoAppClientSecret", realm.client_secrets["demo-app"])
pulumi.export("vaultAddress", vault_server.address)
pulumi.export("trustBundlePem", spire.trust_bundle_pem)
pulumi.export("spireJwtIssuer", spire.jwt_issuer)
pulumi.export("spireOidcDiscoveryUrl", spire.oidc_discovery_url)
pulumi.export("spireJwksUrl", spire.jwks_url)
pulumi.export("spiffeIds", spire.spiffe_ids)
pulumi.export("chatUpstream", models.chat_upstream)
