"""The identity lab: stack config -> components -> exports."""

import pulumi
import pulumi_aws as aws
import pulumi_keycloak as keycloak
import pulumi_vault

from components.aws_emulator import AwsEmulator, AwsEmulatorArgs, emulator_provider_args
from components.caep_idp_access import CaepIdpAccess, CaepIdpAccessArgs
from components.cluster import NODE_PORTS, Cluster, ClusterArgs
from components.cluster_dns import ClusterDns, ClusterDnsArgs, HostRewrite
from components.demo_workloads import DemoWorkloads, DemoWorkloadsArgs
from components.gateway import Gateway, GatewayArgs
from components.identity_provider import IdentityProvider, IdentityProviderArgs
from components.keycloak_realm import KeycloakRealm, KeycloakRealmArgs
from components.model_servers import ModelServers, ModelServersArgs
from components.namespaces import Namespaces
from components.policy_store import PolicyStore, PolicyStoreArgs
from components.root_ca import RootCa, RootCaArgs
from components.signal_services import SignalServices, SignalServicesArgs
from components.signals import Signals, SignalsArgs
from components.spire import Spire, SpireArgs
from components.vault import VaultServer, VaultServerArgs
from components.vault_config import VaultConfig, VaultConfigArgs
from lab.naming import REALM, ciba_channel_url, issuers
from lab.realm import lab_realm
from lab.settings import load_settings

settings = load_settings()

cluster = Cluster("cluster", ClusterArgs.from_settings(settings), settings.image_registry)
in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
namespaces = Namespaces("namespaces", opts=in_cluster)

root_ca = RootCa("root-ca", RootCaArgs.from_settings(settings.root_ca))

idp_args = IdentityProviderArgs(
    public_host=settings.hosts.idp,
    https_port=settings.ports.idp_https,
    node_port=NODE_PORTS["idp_https"],
    cluster_dns_domain=settings.cluster_dns_domain,
    image=settings.versions.keycloak,
    chart=settings.versions.keycloak_chart,
    postgres_image=settings.versions.postgres,
    database_storage_gi=settings.idp_database_storage_gi,
    ciba_channel_url=ciba_channel_url(settings.cluster_dns_domain),
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
# Vault also issues the lab endpoints' TLS; its lab-tls role allows exactly these names.
vault_config = VaultConfig(
    "vault-config",
    VaultConfigArgs.from_settings(
        settings,
        vault_server.in_cluster_address,
        cluster.service_account_issuer,
        tls_hosts=(*idp_args.tls_hosts, settings.hosts.gateway, settings.hosts.app),
    ),
    root_ca,
    opts=pulumi.ResourceOptions(providers={"vault": vault_provider}),
)
# Keycloak serves a certificate from Vault and trusts only the lab root outbound.
idp = IdentityProvider(
    "idp",
    idp_args,
    vault_config,
    root_ca.cert_pem,
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
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
    KeycloakRealmArgs(lab_realm(settings), spiffe_bundle_endpoint=spire.jwks_url),
    root_ca,
    opts=pulumi.ResourceOptions(providers={"keycloak": keycloak_admin}, depends_on=[idp.release]),
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

# The enforcement point: Kong checks the realm's signature, then asks the decision service.
gateway = Gateway(
    "gateway",
    GatewayArgs.from_settings(settings, realm.public_key_pem, decision_url=policy_store.url),
    vault_config,
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
)
# Pods call the IdP and the gateway by their public names, as the host does.
ClusterDns(
    "cluster-dns",
    ClusterDnsArgs(
        rewrites=[
            HostRewrite(settings.hosts.idp, idp.service_host),
            HostRewrite(settings.hosts.gateway, gateway.proxy_service_host),
        ],
        dns_domain=settings.cluster_dns_domain,
        patch_corefile=not settings.adopts_cluster,
    ),
    opts=in_cluster,
)

# Signals: SNS and SQS in the AWS account (aws stack), or in moto inside the cluster (dev
# stack), reached by the provider through the NodePort on 127.0.0.1.
aws_endpoint = None
signals_opts = pulumi.ResourceOptions()
if settings.local_aws:
    emulator = AwsEmulator(
        "aws-emulator",
        AwsEmulatorArgs(
            settings.versions.aws_emulator, NODE_PORTS["aws_emulator"], settings.cluster_dns_domain
        ),
        opts=pulumi.ResourceOptions(
            providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
        ),
    )
    aws_endpoint = emulator.in_cluster_endpoint
    emulated_aws = aws.Provider(
        "aws-emulator",
        **emulator_provider_args(settings.ports.aws_emulator, settings.aws_region),
        opts=pulumi.ResourceOptions(parent=emulator, depends_on=emulator.ready),
    )
    signals_opts = pulumi.ResourceOptions(providers={"aws": emulated_aws})
signals = Signals(
    "signals",
    SignalsArgs(
        prefix=f"identity-lab-{pulumi.get_stack()}",
        approvals_retention_seconds=settings.lifetimes.consent_max_age,
    ),
    opts=signals_opts,
)
# The receiver ends IdP sessions through its own realm client (manage-users only).
caep_idp_access = CaepIdpAccess(
    "caep-idp-access",
    CaepIdpAccessArgs(realm_id=realm.realm.id, realm_name=REALM, idp_url=idp.url),
    opts=pulumi.ResourceOptions(providers={"keycloak": keycloak_admin}, depends_on=[idp.release]),
)
signal_services = SignalServices(
    "signal-services",
    SignalServicesArgs(
        registry=cluster.registry,
        trust_domain=settings.trust_domain,
        aws_region=settings.aws_region,
        caep_issuer=issuers(settings).caep,
        idp_issuer=realm.issuer,
        idp_realm_key_pem=realm.public_key_pem,
        decision_url=policy_store.url,
        decision_admin_secret=policy_store.admin_secret_name,
        aws_endpoint=aws_endpoint,
        idp_admin=caep_idp_access.access,
        clock_skew_seconds=settings.lifetimes.clock_skew,
        cluster_dns_domain=settings.cluster_dns_domain,
    ),
    root_ca,
    signals,
    after=namespaces.ready,
    opts=in_cluster,
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
pulumi.export("gatewayUrl", gateway.url)
pulumi.export(
    "signals",
    {
        "pushTopicArn": signals.push_topic_arn,
        "caepTopicArn": signals.caep_topic_arn,
        "caepQueueUrl": signals.caep_queue_url,
        "caepDeadLetterQueueUrl": signals.caep_dead_letter_queue_url,
        "approvalsQueueUrl": signals.approvals_queue_url,
        # Where the host reaches the emulator (dev); absent on real AWS.
        "emulatorEndpoint": (
            f"http://127.0.0.1:{settings.ports.aws_emulator}" if settings.local_aws else None
        ),
    },
)
pulumi.export(
    "signalsCredentials",
    pulumi.Output.secret(
        {
            "approverToken": signal_services.approver_token,
            "transmitterToken": signal_services.transmitter_token,
            "approverAwsAccessKeyId": signals.credentials["push-approver"].access_key_id,
            "approverAwsSecretAccessKey": signals.credentials["push-approver"].secret_access_key,
        }
    ),
)
