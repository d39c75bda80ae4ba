"""The identity lab: stack config -> components -> exports."""

import pulumi

from components.cluster import Cluster, ClusterArgs
from components.namespaces import Namespaces
from components.root_ca import RootCa, RootCaArgs
from lab.settings import load_settings

settings = load_settings()

cluster = Cluster("cluster", ClusterArgs.from_settings(settings), settings.image_registry)
in_cluster = pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
namespaces = Namespaces("namespaces", opts=in_cluster)

root_ca = RootCa("root-ca", RootCaArgs.from_settings(settings.root_ca))

pulumi.export("mode", settings.mode)
pulumi.export("trustDomain", settings.trust_domain)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("clusterDnsDomain", cluster.dns_domain)
pulumi.export("serviceAccountIssuer", cluster.service_account_issuer)
pulumi.export("imageRegistry", cluster.registry)
pulumi.export("rootCaCertPem", root_ca.cert_pem)
