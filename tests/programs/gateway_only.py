"""A small program for the gateway tests: cluster, namespaces, root and the gateway alone.

The realm's verification key is given here in PKCS#1 (`RSA PUBLIC KEY`) form on purpose:
the gateway must hand Kong the SPKI form of the same key.
"""

import pulumi
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.cluster import Cluster, ClusterArgs
from components.gateway import Gateway, GatewayArgs
from components.namespaces import Namespaces
from components.root_ca import RootCa, RootCaArgs
from lab.settings import load_settings

settings = load_settings()
cluster = Cluster("cluster", ClusterArgs.from_settings(settings), settings.image_registry)
namespaces = Namespaces("namespaces", opts=pulumi.ResourceOptions(provider=cluster.provider))
root_ca = RootCa("root-ca", RootCaArgs.from_settings(settings.root_ca))

realm_key = rsa.generate_private_key(65537, 2048).public_key()
pkcs1 = realm_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)

gateway = Gateway(
    "gateway",
    GatewayArgs.from_settings(
        settings,
        pulumi.Output.from_input(pkcs1.decode()),
        services=[("target", "service-target", 8080)],
    ),
    root_ca,
    opts=pulumi.ResourceOptions(
        providers={"kubernetes": cluster.provider}, depends_on=namespaces.ready
    ),
)

pulumi.export("realmKeyPkcs1", pkcs1.decode())
pulumi.export("gatewayUrl", gateway.url)
pulumi.export("rootCaCertPem", root_ca.cert_pem)
