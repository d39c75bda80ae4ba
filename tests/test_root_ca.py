"""The root CA: real certificates made from the component's own parameters, then verified."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from components.root_ca import HOURS_PER_YEAR, INTERMEDIATE_CA, ROOT_USES
from components.tls_issuer import check_hosts
from lab.offline_plan import run_plan
from lab.settings import PROJECT

PROGRAM = Path(__file__).parent / "programs" / "pki_children.py"


def cert_of(record: dict) -> x509.Certificate:
    return x509.load_pem_x509_certificate(record.encode())


def self_signed_root(common_name: str = "Enterprise Root") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@pytest.fixture(scope="module")
def pki_plan():
    return run_plan("dev", program=PROGRAM)


def test_generated_root_is_a_long_lived_p384_ca(dev_plan):
    root = cert_of(dev_plan.outputs["rootCaCertPem"])
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert constraints.ca
    assert usage.key_cert_sign and usage.crl_sign
    assert set(ROOT_USES) == {"cert_signing", "crl_signing", "digital_signature"}
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp384r1"
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert lifetime >= dt.timedelta(hours=10 * HOURS_PER_YEAR)
    root.verify_directly_issued_by(root)


def test_root_key_is_secret_everywhere_in_the_plan(dev_plan):
    cert = dev_plan.one("tls:index/selfSignedCert:SelfSignedCert", "root-ca-cert")
    assert cert["secretInputs"] == ["privateKeyPem"]
    assert "PRIVATE KEY" not in json.dumps(dev_plan.to_json())


def test_intermediate_and_leaf_chain_to_the_root(pki_plan):
    root = cert_of(pki_plan.outputs["root"])
    intermediate = cert_of(pki_plan.outputs["intermediate"])
    leaf = cert_of(pki_plan.outputs["leaf"])
    intermediate.verify_directly_issued_by(root)
    leaf.verify_directly_issued_by(root)
    constraints = intermediate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == INTERMEDIATE_CA.max_path_length == 1
    leaf_constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert not leaf_constraints.ca
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["idp.lab.localhost"]
    assert "leafKey" in pki_plan.secret_outputs


def test_leaf_is_rejected_under_a_foreign_root(pki_plan):
    foreign, _ = self_signed_root()
    leaf = cert_of(pki_plan.outputs["leaf"])
    with pytest.raises((ValueError, TypeError)):
        leaf.verify_directly_issued_by(cert_of(foreign))


def test_root_as_tls_issuer_serves_the_leaf_for_exactly_its_hosts(pki_plan):
    # For stacks without Vault: the leaf straight under the root, which clients hold.
    root = cert_of(pki_plan.outputs["root"])
    chain = pki_plan.outputs["tlsChain"]
    assert chain == pki_plan.outputs["tlsLeaf"] and chain.count("BEGIN CERTIFICATE") == 1
    leaf = cert_of(chain)
    hosts = ["web.lab.localhost", "www.lab.localhost"]
    for host in hosts:
        verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(host))
        assert verifier.verify(leaf, []) == [leaf, root]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == hosts
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "tlsKey" in pki_plan.secret_outputs


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ([], "at least one host name"),
        (["*.lab.localhost"], "not lower-case DNS names"),
        (["127.0.0.1"], "not lower-case DNS names"),
        (["a.lab", "a.lab"], "repeat"),
    ],
)
def test_tls_hosts_are_checked_before_anything_is_issued(hosts, message):
    with pytest.raises(ValueError, match=message) as err:
        check_hosts("web-tls", hosts)
    assert "web-tls" in str(err.value)


def test_supplied_root_is_used_as_given_and_generates_nothing(plan_with):
    cert_pem, key_pem = self_signed_root()
    plan = plan_with(
        "dev",
        {f"{PROJECT}:rootCaCertPem": cert_pem, f"{PROJECT}:rootCaKeyPem": key_pem},
        {f"{PROJECT}:rootCaKeyPem"},
    )
    assert plan.outputs["rootCaCertPem"] == cert_pem.strip()
    # Keys issued under the root (IdP, signing keys) remain; no root of its own is made.
    assert not plan.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert "root-ca-key" not in {r["name"] for r in plan.resources}
    assert "PRIVATE KEY" not in json.dumps(plan.to_json())


def test_supplied_root_with_a_key_of_another_root_is_refused(plan_with):
    from lab.settings import SettingsError

    cert_pem, _ = self_signed_root()
    _, other_key = self_signed_root()
    with pytest.raises(SettingsError, match="does not belong to rootCaCertPem"):
        plan_with(
            "dev",
            {f"{PROJECT}:rootCaCertPem": cert_pem, f"{PROJECT}:rootCaKeyPem": other_key},
            {f"{PROJECT}:rootCaKeyPem"},
        )
