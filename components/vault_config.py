"""What the lab puts inside Vault, through a pulumi-vault provider the caller passes in opts.

- PKI intermediate: Vault makes the key and CSR (the key never leaves Vault), the lab root
  certifies it, and the signed certificate is uploaded together with the root, so every chain
  Vault hands out (to SPIRE, to TLS clients) ends at the lab root.
- Two PKI roles: the SAN rule for SPIRE's CA (URI SAN spiffe://TRUST_DOMAIN) and lab TLS,
  which allows exactly the lab endpoints' host names. `issue_tls` (a `TlsIssuer`) issues
  their server certificates through that role, so every lab endpoint's chain is leaf ->
  Vault intermediate -> lab root and the root key signs nothing but the intermediate there.
- KV v2 for the few static secrets the lab still needs.
- Kubernetes auth against the in-cluster API and the cluster's service-account issuer, one
  role per consumer service account, each with its own least-privilege policy read from
  policies/vault/<consumer>.hcl and short token lifetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_vault as vault

from components.root_ca import INTERMEDIATE_CA, RootCa
from components.tls_issuer import IssuedTls, chain_of, check_hosts
from lab.naming import Namespace
from lab.settings import LabSettings
from lab.vault_acl import load_policy

PKI_MOUNT = "pki_int"
KV_MOUNT = "kv"
KUBERNETES_AUTH_PATH = "kubernetes"

# The intermediate's key, made inside Vault. P-256 is what SPIRE and every TLS stack accept.
INTERMEDIATE_KEY_TYPE = "ec"
INTERMEDIATE_KEY_BITS = 256
INTERMEDIATE_COMMON_NAME = "Identity Lab Vault Intermediate CA"

SPIRE_UPSTREAM_ROLE = "spire-upstream"
LAB_TLS_ROLE = "lab-tls"
# Endpoint certificates are issued by `pulumi up`, not renewed by an agent in the cluster:
# they last 30 days, and a run in their last 7 days replaces them (auto_renew).
# TODO: a lab left alone past 30 days serves expired certificates; this can go when an
# in-cluster issuer (such as cert-manager's Vault issuer) renews them through lab-tls.
LAB_TLS_TTL = "720h"
LAB_TLS_MAX_TTL = "720h"
LAB_TLS_RENEW_SECONDS = 7 * 24 * 3600

# The audience every consumer's projected service-account token carries for Vault (SPIRE's
# chart projects its server token with this audience by default).
VAULT_AUDIENCE = "vault"


@dataclass(frozen=True)
class VaultConsumer:
    """A workload that logs into Vault with its service account."""

    name: str
    """Role and policy name; its rules are policies/vault/<name>.hcl."""
    namespace: str
    service_account: str
    token_ttl: int = 300
    """Seconds a Vault token lives before it must be renewed."""
    token_max_ttl: int = 900
    """Seconds after which the workload must log in again."""


# Who talks to Vault, and as which service account. The SPIRE server renews its token while it
# signs its CA, so its token may live a little longer.
DEFAULT_CONSUMERS = (
    VaultConsumer("spire-server", Namespace.SPIRE_SERVER.value, "spire-server", 900, 3600),
    VaultConsumer("demo-app", Namespace.APPS.value, "demo-app"),
    VaultConsumer("decision-service", Namespace.LAB_SYSTEM.value, "decision-service"),
    VaultConsumer("caep-receiver", Namespace.LAB_SYSTEM.value, "caep-receiver"),
)


def pem_bundle(*pems: str) -> str:
    """PEM blocks one after the other, each ending in a newline (Vault reads them in order)."""
    return chain_of(*pems)


@dataclass(frozen=True)
class VaultConfigArgs:
    trust_domain: str
    """SPIFFE trust domain: the URI SAN SPIRE's CA carries."""
    cluster_dns_domain: str
    """Cluster DNS domain: Kubernetes API host and in-cluster TLS names."""
    service_account_issuer: str
    """`iss` of the cluster's service-account tokens, checked by Kubernetes auth."""
    in_cluster_address: str
    """Vault's in-cluster address, published in certificates' AIA and CRL URLs."""
    tls_hosts: tuple[str, ...]
    """Every host name a lab endpoint serves TLS for: the lab-tls role allows these, no more."""
    consumers: tuple[VaultConsumer, ...] = field(default=DEFAULT_CONSUMERS)

    def __post_init__(self) -> None:
        check_hosts("VaultConfigArgs.tls_hosts", self.tls_hosts)

    @classmethod
    def from_settings(
        cls,
        settings: LabSettings,
        in_cluster_address: str,
        service_account_issuer: str,
        tls_hosts: Sequence[str],
    ) -> VaultConfigArgs:
        return cls(
            trust_domain=settings.trust_domain,
            cluster_dns_domain=settings.cluster_dns_domain,
            service_account_issuer=service_account_issuer,
            in_cluster_address=in_cluster_address,
            tls_hosts=tuple(tls_hosts),
        )

    @property
    def kubernetes_host(self) -> str:
        return f"https://kubernetes.default.svc.{self.cluster_dns_domain}"


class VaultConfig(pulumi.ComponentResource):
    """PKI intermediate under the lab root, roles, KV, Kubernetes auth and policies.

    Also the lab's `TlsIssuer`: `issue_tls` gets endpoint certificates from the intermediate.
    """

    pki_mount: str
    """Path of the PKI intermediate mount (SPIRE's `pkiMountPoint`)."""
    kv_mount: str
    """Path of the KV v2 mount."""
    kubernetes_auth_path: str
    """Mount path of the Kubernetes auth method."""
    ca_chain_pem: pulumi.Output[str]
    """The uploaded chain: the Vault intermediate, then the lab root."""
    roles: dict[str, str]
    """Consumer name -> Kubernetes auth role name."""
    ready: list[pulumi.Resource]
    """Depend on these before anything logs in or asks for a certificate."""

    def __init__(
        self,
        name: str,
        args: VaultConfigArgs,
        root_ca: RootCa,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("identity-lab:secrets:VaultConfig", name, None, opts)
        self._tls_hosts = args.tls_hosts
        self.pki_mount = PKI_MOUNT
        self.kv_mount = KV_MOUNT
        self.kubernetes_auth_path = KUBERNETES_AUTH_PATH

        signed = self._create_pki(name, args, root_ca)
        kv = vault.Mount(
            f"{name}-kv",
            path=KV_MOUNT,
            type="kv",
            options={"version": "2"},
            description="Static secrets the lab still needs",
            opts=pulumi.ResourceOptions(parent=self),
        )
        auth = self._create_kubernetes_auth(name, args)

        self.ready = [signed, kv, *auth]
        self.roles = {c.name: c.name for c in args.consumers}
        self.register_outputs({"caChainPem": self.ca_chain_pem, "pkiMount": PKI_MOUNT})

    def issue_tls(self, name: str, hosts: Sequence[str]) -> IssuedTls:
        """A server certificate from the intermediate through the lab-tls role.

        A child of this component, so it uses the Vault provider the caller gave it. Vault
        makes the key (the role's type) and returns it once; Pulumi keeps it as a secret.
        """
        names = check_hosts(name, hosts)
        refused = [h for h in names if h not in self._tls_hosts]
        if refused:
            raise ValueError(
                f"{name}: the {LAB_TLS_ROLE} role does not allow {refused}; add them to "
                "VaultConfigArgs.tls_hosts"
            )
        cert = vault.pkisecret.SecretBackendCert(
            name,
            backend=self.pki_mount,
            name=self._tls_role.name,
            common_name=names[0],
            alt_names=list(names[1:]),
            ttl=LAB_TLS_TTL,
            private_key_format="pkcs8",
            auto_renew=True,
            min_seconds_remaining=LAB_TLS_RENEW_SECONDS,
            # A replaced or destroyed endpoint certificate goes on the intermediate's CRL.
            revoke=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self._tls_role, *self.ready]),
        )
        # What the server sends: the leaf and the intermediate; clients hold the root.
        chain = pulumi.Output.all(cert.certificate, cert.issuing_ca).apply(
            lambda pems: chain_of(*pems)
        )
        return IssuedTls(cert_chain_pem=chain, key_pem=pulumi.Output.secret(cert.private_key))

    def _create_pki(
        self, name: str, args: VaultConfigArgs, root_ca: RootCa
    ) -> vault.pkisecret.SecretBackendIntermediateSetSigned:
        child = pulumi.ResourceOptions(parent=self)
        mount = vault.Mount(
            f"{name}-pki",
            path=PKI_MOUNT,
            type="pki",
            description="Lab intermediate CA under the lab root",
            # Nothing Vault signs may outlive the intermediate itself.
            max_lease_ttl_seconds=INTERMEDIATE_CA.validity_hours * 3600,
            opts=child,
        )
        request = vault.pkisecret.SecretBackendIntermediateCertRequest(
            f"{name}-intermediate-csr",
            backend=mount.path,
            type="internal",
            common_name=INTERMEDIATE_COMMON_NAME,
            organization="Identity Lab",
            key_type=INTERMEDIATE_KEY_TYPE,
            key_bits=INTERMEDIATE_KEY_BITS,
            opts=child,
        )
        certificate = root_ca.certify(
            f"{name}-intermediate-cert", request.csr, INTERMEDIATE_CA, opts=child
        )
        # Uploaded with the root: Vault then returns the full chain (intermediate, root) as
        # `ca_chain`, and SPIRE takes the chain's last certificate as its trust bundle.
        self.ca_chain_pem = pulumi.Output.all(certificate.cert_pem, root_ca.cert_pem).apply(
            lambda pems: pem_bundle(*pems)
        )
        signed = vault.pkisecret.SecretBackendIntermediateSetSigned(
            f"{name}-intermediate",
            backend=mount.path,
            certificate=self.ca_chain_pem,
            opts=child,
        )
        vault.pkisecret.SecretBackendConfigUrls(
            f"{name}-pki-urls",
            backend=mount.path,
            issuing_certificates=[f"{args.in_cluster_address}/v1/{PKI_MOUNT}/ca"],
            crl_distribution_points=[f"{args.in_cluster_address}/v1/{PKI_MOUNT}/crl"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[signed]),
        )
        self._create_roles(name, args, mount, signed)
        return signed

    def _create_roles(
        self,
        name: str,
        args: VaultConfigArgs,
        mount: vault.Mount,
        signed: pulumi.Resource,
    ) -> None:
        after = pulumi.ResourceOptions(parent=self, depends_on=[signed])
        # The SAN rule for SPIRE's CA: only the trust domain's own ID, no DNS names. SPIRE's
        # plugin signs through root/sign-intermediate, which takes no role; its policy is what
        # confines it to that endpoint.
        # TODO: that endpoint copies no SANs from SPIRE's CSR, so a live SPIRE CA has no URI SAN;
        # it can go when SPIRE's plugin passes `uri_sans` (or Vault a role for intermediates).
        # TODO: nor does it add name constraints, so SPIRE's CA could sign a certificate for a
        # lab host name that the root's trusters accept; goes with the one above, once SPIRE's
        # CA can be constrained to URI spiffe://<trust domain>.
        vault.pkisecret.SecretBackendRole(
            f"{name}-role-{SPIRE_UPSTREAM_ROLE}",
            backend=mount.path,
            name=SPIRE_UPSTREAM_ROLE,
            allowed_uri_sans=[f"spiffe://{args.trust_domain}"],
            allowed_domains=[],
            allow_any_name=False,
            allow_bare_domains=False,
            allow_subdomains=False,
            allow_ip_sans=False,
            allow_localhost=False,
            require_cn=False,
            key_type=INTERMEDIATE_KEY_TYPE,
            key_bits=INTERMEDIATE_KEY_BITS,
            max_ttl="48h",
            opts=after,
        )
        # Lab endpoints: exactly their host names (bare, no subdomains, no globs), server use.
        self._tls_role = vault.pkisecret.SecretBackendRole(
            f"{name}-role-{LAB_TLS_ROLE}",
            backend=mount.path,
            name=LAB_TLS_ROLE,
            allowed_domains=list(args.tls_hosts),
            allow_bare_domains=True,
            allow_subdomains=False,
            allow_glob_domains=False,
            allow_any_name=False,
            allow_wildcard_certificates=False,
            allow_ip_sans=False,
            allow_localhost=False,
            enforce_hostnames=True,
            server_flag=True,
            client_flag=False,
            code_signing_flag=False,
            email_protection_flag=False,
            key_type="ec",
            key_bits=256,
            key_usages=["DigitalSignature"],
            ttl=LAB_TLS_TTL,
            max_ttl=LAB_TLS_MAX_TTL,
            opts=after,
        )

    def _create_kubernetes_auth(self, name: str, args: VaultConfigArgs) -> list[pulumi.Resource]:
        child = pulumi.ResourceOptions(parent=self)
        backend = vault.AuthBackend(
            f"{name}-kubernetes-auth",
            type="kubernetes",
            path=KUBERNETES_AUTH_PATH,
            opts=child,
        )
        # Vault runs in the cluster: it reviews tokens with its own service account and CA.
        config = vault.kubernetes.AuthBackendConfig(
            f"{name}-kubernetes-auth-config",
            backend=backend.path,
            kubernetes_host=args.kubernetes_host,
            issuer=args.service_account_issuer,
            disable_local_ca_jwt=False,
            opts=child,
        )
        created: list[pulumi.Resource] = [config]
        for consumer in args.consumers:
            policy = vault.Policy(
                f"{name}-policy-{consumer.name}",
                name=consumer.name,
                policy=load_policy(consumer.name).text,
                opts=child,
            )
            role = vault.kubernetes.AuthBackendRole(
                f"{name}-role-k8s-{consumer.name}",
                backend=backend.path,
                role_name=consumer.name,
                bound_service_account_names=[consumer.service_account],
                bound_service_account_namespaces=[consumer.namespace],
                audience=VAULT_AUDIENCE,
                token_policies=[policy.name],
                token_ttl=consumer.token_ttl,
                token_max_ttl=consumer.token_max_ttl,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[config]),
            )
            created += [policy, role]
        return created
