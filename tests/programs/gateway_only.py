"""A small program for the gateway tests: cluster, namespaces, root, Vault's PKI (the
gateway's TLS issuer, through a Vault provider as the lab builds one) and the gateway.

The realm's verification key is given here in PKCS#1 (`RSA PUBLIC KEY`) form on purpose:
the gateway must hand Kong the SPKI form of the same key.
"""

import pulumi
import pulumi_vault
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.cluster import Cluster, ClusterArgs
from components.gateway import Gateway, GatewayArgs
from components.namespaces import Namespaces
from components.root_ca import RootCa, RootCaArgs
from components.vault_config import VaultConfig, VaultConfigArgs
from lab.settings import load_settings

settings = load_settings()
cluster = Cluster("cluster", ClusterArgs.from_settings(settings), settings.image_registry)
namespaces = Namespaces("namespaces", opts=pulumi.ResourceOptions(provider=cluster.provider))
root_ca = RootCa("root-ca", RootCaArgs.from_settings(settings.root_ca))

realm_key = rsa.generate_private_key(65537, 2048).public_key()
pkcs1 = realm_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
gateway_args = GatewayArgs.from_settings(
    settings,
    pulumi.Output.from_input(pkcs1.decode()),
    services=[("target", "service-target", 8080)],
)
vault = pulumi_vault.Provider(
    "vault", address="http://127.0.0.1:8200", token=pulumi.Output.secret("gateway-test-token")
)
vault_config = VaultConfig(
    "vault-config",
    VaultConfigArgs.from_settings(
        settings,
        "http://vault.vault.svc.cluster.local:8200",
        "https://kubernetes.default.svc.cluster.local",
        tls_hosts=gateway_args.tls_hosts,
    ),
    root_ca,
    opts=pulumi.ResourceOptions(providers={"vault": vault}),
)

gateway = Gateway(
    "gateway",
    gateway_args,
    vault_config,
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
)

pulumi.export("realmKeyPkcs1", pkcs1.decode())
pulumi.export("gatewayUrl", gateway.url)
pulumi.export("rootCaCertPem", root_ca.cert_pem)
pulumi.export("vaultCaChainPem", vault_config.ca_chain_pem)
