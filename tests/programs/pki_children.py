"""A small program for the PKI tests: the lab root certifying an intermediate and a leaf, and
issuing a TLS server certificate as a `TlsIssuer` (a stack without Vault)."""

import pulumi
import pulumi_tls as tls

from components.root_ca import (
    INTERMEDIATE_CA,
    TOKEN_SIGNING,
    KeySpec,
    RootCa,
    RootCaArgs,
    Subject,
)
from lab.settings import load_settings

settings = load_settings()
root = RootCa("root-ca", RootCaArgs.from_settings(settings.root_ca))

intermediate_key = tls.PrivateKey("intermediate-key", algorithm="ECDSA", ecdsa_curve="P256")
intermediate_csr = tls.CertRequest(
    "intermediate-csr",
    private_key_pem=intermediate_key.private_key_pem,
    subject=tls.CertRequestSubjectArgs(common_name="Lab Intermediate"),
)
intermediate = root.certify("intermediate", intermediate_csr.cert_request_pem, INTERMEDIATE_CA)

key, cert = root.issue(
    "realm-signing",
    Subject("realm signing key", dns_names=["idp.lab.localhost"]),
    TOKEN_SIGNING,
    KeySpec("RSA", rsa_bits=2048),
)

tls_server = root.issue_tls("web-tls", ["web.lab.localhost", "www.lab.localhost"])

pulumi.export("root", root.cert_pem)
pulumi.export("intermediate", intermediate.cert_pem)
pulumi.export("leaf", cert.cert_pem)
pulumi.export("leafKey", key.private_key_pem)
pulumi.export("tlsChain", tls_server.cert_chain_pem)
pulumi.export("tlsLeaf", tls_server.cert_pem)
pulumi.export("tlsKey", tls_server.key_pem)
