"""Checks for a lab endpoint's served TLS chain, on the real certificates of a plan."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from components.vault_config import LAB_TLS_MAX_TTL
from lab.mocks import INTERNAL_KEYS

PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", re.S)
VAULT_CERT = "vault:pkiSecret/secretBackendCert:SecretBackendCert"


def served_chain(tls_crt: str) -> list[x509.Certificate]:
    assert PEM_BLOCK.sub("", tls_crt) == "", "only PEM certificate blocks, each newline-ended"
    return [x509.load_pem_x509_certificate(b.encode()) for b in PEM_BLOCK.findall(tls_crt)]


def assert_vault_issued_chain(
    plan, secret_data: dict[str, str], hosts: list[str], root_pem: str
) -> x509.Certificate:
    """tls.crt is leaf + Vault intermediate, verifying to the lab root for exactly `hosts`."""
    root = x509.load_pem_x509_certificate(root_pem.encode())
    chain = served_chain(secret_data["tls.crt"])
    assert len(chain) == 2, "the leaf and the Vault intermediate, the root left out"
    leaf, intermediate = chain
    # The intermediate is the one Vault made the key for and the root signed.
    signed = plan.one(
        "tls:index/locallySignedCert:LocallySignedCert", "vault-config-intermediate-cert"
    )
    vault_key = INTERNAL_KEYS[signed["inputs"]["certRequestPem"]]
    assert intermediate.public_key() == vault_key.public_key()
    intermediate.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(intermediate)
    # Not from the root: the root key signs no endpoint certificate.
    assert leaf.issuer == intermediate.subject != root.subject
    with pytest.raises((ValueError, InvalidSignature)):
        leaf.verify_directly_issued_by(root)

    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == hosts
    assert names.get_values_for_type(x509.IPAddress) == []
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == []
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False
    key_usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert key_usage.digital_signature and not key_usage.key_cert_sign
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime <= dt.timedelta(hours=int(LAB_TLS_MAX_TTL.removesuffix("h")), minutes=1)

    # A TLS client holding only the root accepts the chain for each name, and no other name.
    def verifier_for(host: str):
        return PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(host))

    for host in hosts:
        built = verifier_for(host).verify(leaf, [intermediate])
        assert built == [leaf, intermediate, root]
    with pytest.raises(VerificationError):
        verifier_for("evil.lab.localhost").verify(leaf, [intermediate])

    # The key in the Secret is PKCS#8 and belongs to the leaf.
    assert secret_data["tls.key"].startswith("-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(secret_data["tls.key"].encode(), password=None)
    assert key.public_key() == leaf.public_key()
    return leaf


def assert_issued_through_lab_tls(plan, name: str, hosts: list[str]) -> None:
    """The certificate resource: Vault's lab-tls role, under VaultConfig, on its provider."""
    record = plan.one(VAULT_CERT, name)
    inputs = record["inputs"]
    assert inputs["backend"] == "pki_int" and inputs["name"] == "lab-tls"
    assert [inputs["commonName"], *inputs["altNames"]] == hosts
    assert inputs["privateKeyFormat"] == "pkcs8"
    assert plan.by_urn()[record["parent"]]["name"] == "vault-config"
    assert record["provider"] == plan.one("pulumi:providers:vault", "vault")["urn"]
