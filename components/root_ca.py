"""The lab's single trust anchor: a generated root CA, or a supplied one (an enterprise root).

Everything the lab trusts chains to this root. In the lab the root signs only three things:
Vault's PKI intermediate (under which Vault issues SPIRE's CA and the lab endpoints' TLS
certificates, see `VaultConfig.issue_tls`), the IdP realm's signing key and the CAEP
transmitter's key. `certify` signs a CSR made elsewhere (Vault makes its own); `issue` makes a
key pair here and certifies it, for keys the lab must know at deploy time. `issue_tls` makes
the root a `TlsIssuer` too, for stacks that reuse the components without Vault; it keeps the
root key online for every leaf, which is why the lab itself issues TLS from Vault.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_tls as tls

from components.tls_issuer import IssuedTls, chain_of, check_hosts
from lab.settings import RootCaSettings, Secret

HOURS_PER_YEAR = 8766  # 365.25 days

# The root's own key and usages. A P-384 root outlives any leaf it signs by a wide margin.
ROOT_KEY_ALGORITHM = "ECDSA"
ROOT_ECDSA_CURVE = "P384"
ROOT_USES = ("cert_signing", "crl_signing", "digital_signature")


@dataclass(frozen=True)
class CertProfile:
    """What a certificate signed by the root may do; tests rebuild chains from these."""

    allowed_uses: tuple[str, ...]
    validity_hours: int
    is_ca: bool = False
    max_path_length: int | None = None
    """For a CA: how many CAs may follow it (0: it signs leaves only)."""


# Vault's PKI intermediate: SPIRE's CA sits under it, so one more CA may follow.
INTERMEDIATE_CA = CertProfile(
    allowed_uses=("cert_signing", "crl_signing", "digital_signature"),
    validity_hours=5 * HOURS_PER_YEAR,
    is_ca=True,
    max_path_length=1,
)

# A key that signs tokens (the IdP realm key, the CAEP transmitter key). The certificate only
# binds the public key to the lab root; nothing negotiates TLS with it.
TOKEN_SIGNING = CertProfile(
    allowed_uses=("digital_signature",),
    validity_hours=1 * HOURS_PER_YEAR,
)

# TLS server certificates straight under the root (`issue_tls`; the lab uses Vault's instead).
TLS_SERVER = CertProfile(
    allowed_uses=("digital_signature", "key_encipherment", "server_auth"),
    validity_hours=1 * HOURS_PER_YEAR,
)


@dataclass(frozen=True)
class KeySpec:
    """Key type for `RootCa.issue`: RSA (bits) or ECDSA (curve), as pulumi-tls names them."""

    algorithm: str = "RSA"
    rsa_bits: int = 2048
    ecdsa_curve: str = "P256"


@dataclass(frozen=True)
class Subject:
    common_name: str
    organization: str = "Identity Lab"
    dns_names: Sequence[str] = field(default_factory=tuple)
    uris: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class RootCaArgs:
    common_name: str
    """Subject CN of a generated root."""
    organization: str
    """Subject O of a generated root."""
    validity_years: int
    """Lifetime of a generated root."""
    supplied_cert_pem: str | None = None
    """Bring your own root: its certificate. Nothing is generated when set."""
    supplied_key_pem: Secret | None = None
    """Bring your own root: its private key."""

    @classmethod
    def from_settings(cls, settings: RootCaSettings) -> RootCaArgs:
        return cls(
            common_name=settings.common_name,
            organization=settings.organization,
            validity_years=settings.validity_years,
            supplied_cert_pem=settings.supplied_cert_pem,
            supplied_key_pem=settings.supplied_key_pem,
        )


class RootCa(pulumi.ComponentResource):
    """The lab root, and the means to certify keys under it."""

    cert_pem: pulumi.Output[str]
    """The root certificate, PEM: the one trust anchor every component is given."""
    private_key_pem: pulumi.Output[str]
    """The root key, PEM (secret)."""

    def __init__(self, name: str, args: RootCaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("identity-lab:pki:RootCa", name, None, opts)
        self._name = name

        if args.supplied_cert_pem is not None and args.supplied_key_pem is not None:
            self.cert_pem = pulumi.Output.from_input(args.supplied_cert_pem)
            self.private_key_pem = pulumi.Output.secret(args.supplied_key_pem.reveal())
        else:
            key = tls.PrivateKey(
                f"{name}-key",
                algorithm=ROOT_KEY_ALGORITHM,
                ecdsa_curve=ROOT_ECDSA_CURVE,
                opts=pulumi.ResourceOptions(parent=self),
            )
            cert = tls.SelfSignedCert(
                f"{name}-cert",
                private_key_pem=key.private_key_pem,
                is_ca_certificate=True,
                allowed_uses=list(ROOT_USES),
                validity_period_hours=args.validity_years * HOURS_PER_YEAR,
                set_subject_key_id=True,
                subject=tls.SelfSignedCertSubjectArgs(
                    common_name=args.common_name, organization=args.organization
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.cert_pem = cert.cert_pem
            self.private_key_pem = key.private_key_pem

        self.register_outputs({"certPem": self.cert_pem})

    def certify(
        self,
        name: str,
        cert_request_pem: pulumi.Input[str],
        profile: CertProfile,
        opts: pulumi.ResourceOptions | None = None,
    ) -> tls.LocallySignedCert:
        """Sign a CSR made elsewhere (for example by Vault) with the root."""
        return tls.LocallySignedCert(
            name,
            cert_request_pem=cert_request_pem,
            ca_cert_pem=self.cert_pem,
            ca_private_key_pem=self.private_key_pem,
            allowed_uses=list(profile.allowed_uses),
            validity_period_hours=profile.validity_hours,
            is_ca_certificate=profile.is_ca,
            max_path_length=profile.max_path_length if profile.is_ca else None,
            set_subject_key_id=True,
            opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), opts),
        )

    def issue(
        self,
        name: str,
        subject: Subject,
        profile: CertProfile,
        key: KeySpec = KeySpec(),
        opts: pulumi.ResourceOptions | None = None,
    ) -> tuple[tls.PrivateKey, tls.LocallySignedCert]:
        """Make a key pair and certify it under the root; the key's PEM is secret."""
        child = pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=self), opts)
        private_key = tls.PrivateKey(
            f"{name}-key",
            algorithm=key.algorithm,
            rsa_bits=key.rsa_bits if key.algorithm == "RSA" else None,
            ecdsa_curve=key.ecdsa_curve if key.algorithm == "ECDSA" else None,
            opts=child,
        )
        request = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=private_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(
                common_name=subject.common_name, organization=subject.organization
            ),
            dns_names=list(subject.dns_names) or None,
            uris=list(subject.uris) or None,
            opts=child,
        )
        cert = self.certify(f"{name}-cert", request.cert_request_pem, profile, opts)
        return private_key, cert

    def issue_tls(self, name: str, hosts: Sequence[str]) -> IssuedTls:
        """A TLS server certificate straight under the root, for a stack without Vault."""
        names = check_hosts(name, hosts)
        key, cert = self.issue(
            name,
            Subject(common_name=names[0], dns_names=names),
            TLS_SERVER,
            KeySpec("ECDSA", ecdsa_curve="P256"),
        )
        return IssuedTls(
            cert_chain_pem=cert.cert_pem.apply(chain_of),
            key_pem=pulumi.Output.secret(key.private_key_pem_pkcs8),
        )
