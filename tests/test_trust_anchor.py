"""Vault and SPIRE on both stacks' plans; the real chain root -> Vault -> SPIRE CA -> SVID."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from components.root_ca import INTERMEDIATE_CA
from components.spire import (
    CA_KEY_TYPE,
    CA_SUBJECT,
    CA_TTL_HOURS,
    SYSTEM_NAMESPACES,
    SpireArgs,
    oidc_served_domains,
)
from components.vault import VaultServerArgs, chart_values
from components.vault_config import (
    INTERMEDIATE_KEY_BITS,
    INTERMEDIATE_KEY_TYPE,
    LAB_TLS_MAX_TTL,
    LAB_TLS_RENEW_SECONDS,
    PKI_MOUNT,
    VAULT_AUDIENCE,
)
from lab.mocks import COMPUTED, INTERNAL_KEYS, VAULT_PKI
from lab.naming import CLASS_NAMESPACES, WorkloadClass, spiffe_id
from lab.settings import PROJECT, ConfigSource, load_settings

PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", re.S)
RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.fixture(params=["dev", "aws"])
def plan(request, dev_plan, aws_plan):
    return {"dev": dev_plan, "aws": aws_plan}[request.param]


def spire_values(plan) -> dict:
    return plan.one(RELEASE, "spire-release")["inputs"]["values"]


def uploaded_chain(plan) -> list[x509.Certificate]:
    record = plan.one(
        "vault:pkiSecret/secretBackendIntermediateSetSigned:SecretBackendIntermediateSetSigned"
    )
    bundle = record["inputs"]["certificate"]
    assert PEM_BLOCK.sub("", bundle) == "", "only PEM certificate blocks, each newline-ended"
    return [x509.load_pem_x509_certificate(b.encode()) for b in PEM_BLOCK.findall(bundle)]


# --- the graph --------------------------------------------------------------------------------


def test_vault_and_spire_are_wired_to_the_root_in_both_stacks(plan):
    by_urn = plan.by_urn()
    signed = plan.one(
        "tls:index/locallySignedCert:LocallySignedCert", "vault-config-intermediate-cert"
    )
    assert by_urn[signed["parent"]]["name"] == "vault-config"
    # Vault made the CSR; the root signs exactly that CSR.
    csr = plan.one(
        "vault:pkiSecret/secretBackendIntermediateCertRequest:SecretBackendIntermediateCertRequest"
    )
    assert csr["inputs"]["type"] == "internal"
    assert csr["inputs"]["backend"] == PKI_MOUNT
    assert signed["inputs"]["certRequestPem"] in INTERNAL_KEYS
    assert signed["inputs"]["isCaCertificate"] is True
    assert signed["inputs"]["maxPathLength"] == INTERMEDIATE_CA.max_path_length
    release = plan.one(RELEASE, "spire-release")
    depends = {by_urn[u]["name"] for u in release["dependsOn"]}
    assert {"spire-crds", "spire-vault-ca", "vault-config-intermediate"} <= depends
    assert "vault-config-role-k8s-spire-server" in depends


def test_every_vault_resource_uses_the_callers_provider(plan):
    provider = plan.one("pulumi:providers:vault", "vault")
    assert provider["secretInputs"] == ["token"]
    assert provider["inputs"]["address"] == "http://127.0.0.1:8200"
    vault_resources = [r for r in plan.resources if r["type"].startswith("vault:")]
    assert len(vault_resources) >= 15
    assert {r["provider"] for r in vault_resources} == {provider["urn"]}


def test_unseal_material_and_root_token_stay_secret(plan):
    assert "mock-root" not in json.dumps(plan.to_json())
    assert "mock-unseal-key" not in json.dumps(plan.to_json())
    unseal = plan.one("command:local:Command", "vault-unseal")
    assert unseal["secretInputs"] == ["environment"]
    init = plan.one("command:local:Command", "vault-init")
    assert init["inputs"]["environment"]["VAULT_ADDR"] == "http://127.0.0.1:8200"


def test_vault_is_standalone_with_storage_on_the_kind_node_port(plan):
    values = plan.one(RELEASE, "vault-release")["inputs"]["values"]["server"]
    assert values["standalone"] == {"enabled": True}
    assert values["dataStorage"] == {"enabled": True, "size": "1Gi"}
    assert "dev" not in values
    assert values["service"] == {"type": "NodePort", "nodePort": 30200}
    assert "sealedcode=204" in values["readinessProbe"]["path"]


def test_dev_mode_and_openbao_are_opt_in(plan_with):
    plan = plan_with(
        "dev", {f"{PROJECT}:vaultDevMode": "true", f"{PROJECT}:vaultFlavor": "openbao"}
    )
    release = plan.one(RELEASE, "vault-release")
    # The dev root token is inside the values, so the engine keeps all of them secret.
    assert release["inputs"]["values"] == "[secret]"
    assert release["secretInputs"] == ["values"]
    args = VaultServerArgs.from_settings(
        load_settings(
            ConfigSource(
                {
                    f"{PROJECT}:mode": "local",
                    f"{PROJECT}:trustDomain": "lab.local",
                    f"{PROJECT}:vaultDevMode": "true",
                    f"{PROJECT}:vaultFlavor": "openbao",
                }
            )
        )
    )
    values = chart_values(args, "dev-token")["server"]
    assert values["dev"] == {"enabled": True, "devRootToken": "dev-token"}
    assert values["dataStorage"] == {"enabled": False}
    assert values["image"] == {
        "registry": "quay.io",
        "repository": "openbao/openbao",
        "tag": "2.4.3",
    }
    assert release["inputs"]["chart"] == "openbao"
    assert not [r for r in plan.of_type("command:local:Command") if r["name"].startswith("vault")]
    assert plan.outputs["vaultAddress"] == "http://127.0.0.1:8200"


def test_kubernetes_auth_uses_the_clusters_issuer_and_short_ttls(plan):
    config = plan.one("vault:kubernetes/authBackendConfig:AuthBackendConfig")["inputs"]
    assert config["issuer"] == plan.outputs["serviceAccountIssuer"]
    assert config["kubernetesHost"] == "https://kubernetes.default.svc.cluster.local"
    roles = plan.of_type("vault:kubernetes/authBackendRole:AuthBackendRole")
    # No gateway role: endpoint TLS is issued by the deployment, not by a workload.
    assert sorted(r["inputs"]["roleName"] for r in roles) == [
        "caep-receiver",
        "decision-service",
        "demo-app",
        "spire-server",
    ]
    for role in roles:
        inputs = role["inputs"]
        assert inputs["tokenPolicies"] == [inputs["roleName"]]
        assert inputs["audience"] == VAULT_AUDIENCE
        assert len(inputs["boundServiceAccountNames"]) == 1
        assert len(inputs["boundServiceAccountNamespaces"]) == 1
        assert inputs["tokenTtl"] <= 900 and inputs["tokenMaxTtl"] <= 3600


def test_pki_roles_hold_the_san_rules(plan):
    roles = {
        r["inputs"]["name"]: r["inputs"]
        for r in plan.of_type("vault:pkiSecret/secretBackendRole:SecretBackendRole")
    }
    assert roles["spire-upstream"]["allowedUriSans"] == ["spiffe://lab.local"]
    assert roles["spire-upstream"]["allowAnyName"] is False
    tls = roles["lab-tls"]
    # Exactly the lab endpoints' names: bare, no subdomains, globs, wildcards, IPs or localhost.
    assert sorted(tls["allowedDomains"]) == [
        "api.lab.localhost",
        "app.lab.localhost",
        "idp.lab.localhost",
        "keycloak-http.idp.svc.cluster.local",
    ]
    assert tls["allowBareDomains"] is True
    for flag in ("allowSubdomains", "allowGlobDomains", "allowAnyName", "allowIpSans"):
        assert tls[flag] is False, flag
    assert tls["allowWildcardCertificates"] is False and tls["allowLocalhost"] is False
    assert tls["enforceHostnames"] is True
    assert tls["serverFlag"] is True and tls["clientFlag"] is False
    assert tls["codeSigningFlag"] is False and tls["emailProtectionFlag"] is False
    assert tls["keyUsages"] == ["DigitalSignature"]
    assert tls["ttl"] == tls["maxTtl"] == LAB_TLS_MAX_TTL


def test_vault_issues_every_lab_endpoint_certificate_through_lab_tls(plan):
    certs = {
        r["name"]: r["inputs"]
        for r in plan.of_type("vault:pkiSecret/secretBackendCert:SecretBackendCert")
    }
    assert sorted(certs) == ["gateway-proxy-tls", "idp-tls"]
    for inputs in certs.values():
        assert inputs["name"] == "lab-tls" and inputs["backend"] == PKI_MOUNT
        assert inputs["autoRenew"] is True
        assert inputs["minSecondsRemaining"] == LAB_TLS_RENEW_SECONDS
        assert inputs["revoke"] is True
    # The root's key signs Vault's intermediate and token-signing keys only, no TLS leaf.
    signed = plan.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert [u for r in signed for u in r["inputs"]["allowedUses"] if u == "server_auth"] == []


def test_mocked_vault_issues_only_what_the_lab_tls_role_allows(dev_plan):
    # The mock follows the role as Vault would, so a plan that issues the endpoints'
    # certificates proves the role admits their names; here it must refuse the rest.
    role = dev_plan.one(
        "vault:pkiSecret/secretBackendRole:SecretBackendRole", "vault-config-role-lab-tls"
    )["inputs"]
    bundle = dev_plan.one(
        "vault:pkiSecret/secretBackendIntermediateSetSigned:SecretBackendIntermediateSetSigned"
    )["inputs"]["certificate"]
    backend = "pki_refusal_test"
    vault = "vault:pkiSecret/"
    COMPUTED[f"{vault}secretBackendIntermediateSetSigned:SecretBackendIntermediateSetSigned"](
        {"backend": backend, "certificate": bundle}
    )
    COMPUTED[f"{vault}secretBackendRole:SecretBackendRole"]({**role, "backend": backend})

    def issue(alt_names, ttl="720h"):
        request = {
            "backend": backend,
            "name": "lab-tls",
            "commonName": "api.lab.localhost",
            "altNames": alt_names,
            "ttl": ttl,
        }
        pem = COMPUTED[f"{vault}secretBackendCert:SecretBackendCert"](request)["certificate"]
        return x509.load_pem_x509_certificate(pem.encode())

    try:
        cert = issue(["app.lab.localhost"], ttl="8760h")
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["api.lab.localhost", "app.lab.localhost"]
        # Vault caps a longer request at the role's max_ttl.
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        assert lifetime <= dt.timedelta(hours=720, seconds=30)
        for host in (
            "evil.lab.localhost",
            "x.api.lab.localhost",
            "*.lab.localhost",
            "lab.localhost",
            "localhost",
            "vault.vault.svc.cluster.local",
        ):
            with pytest.raises(ValueError, match="does not allow"):
                issue([host])
    finally:
        VAULT_PKI.pop(backend, None)


def test_spire_values(plan):
    values = spire_values(plan)
    spire = values["global"]["spire"]
    assert spire["trustDomain"] == "lab.local"
    assert spire["clusterName"] == "identity-lab"
    assert values["global"]["k8s"]["clusterDomain"] == plan.outputs["clusterDnsDomain"]
    # One issuer string: the server and the discovery provider both read global.spire.jwtIssuer.
    assert spire["jwtIssuer"] == plan.outputs["spireJwtIssuer"] == "https://oidc.lab.localhost"
    oidc = values["spiffe-oidc-discovery-provider"]
    assert oidc["config"]["jwtDomain"] == "oidc.lab.localhost"
    assert not [
        d for d in [oidc["config"]["jwtDomain"], *oidc["config"]["additionalDomains"]] if "://" in d
    ]
    assert oidc["config"]["setKeyUse"] is True
    assert values["spiffe-csi-driver"]["enabled"] is True
    server = values["spire-server"]
    assert server["defaultJwtSvidTTL"] == "300s" and server["defaultX509SvidTTL"] == "3600s"
    upstream = server["upstreamAuthority"]["vault"]
    assert upstream["vaultAddr"] == "http://vault.vault.svc.cluster.local:8200"
    assert upstream["pkiMountPoint"] == PKI_MOUNT
    assert upstream["k8sAuth"]["k8sAuthRoleName"] == "spire-server"


def test_one_cluster_spiffe_id_per_workload_class_and_none_for_system_namespaces(plan):
    manager = spire_values(plan)["spire-server"]["controllerManager"]
    identities = manager["identities"]["clusterSPIFFEIDs"]
    enabled = {k for k, v in identities.items() if v.get("enabled")}
    assert enabled == {c.value for c in WorkloadClass}
    for workload_class in WorkloadClass:
        identity = identities[workload_class.value]
        selector = identity["namespaceSelector"]["matchLabels"]
        assert selector == {"kubernetes.io/metadata.name": CLASS_NAMESPACES[workload_class]}
        assert identity["spiffeIDTemplate"] == (
            "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}"
            "/sa/{{ .PodSpec.ServiceAccountName }}"
        )
        assert identity["jwtTTL"] == "300s" and identity["ttl"] == "3600s"
    assert {"kube-system", "vault", "idp"} <= set(manager["ignoreNamespaces"])
    assert set(SYSTEM_NAMESPACES) <= set(manager["ignoreNamespaces"])
    assert not set(CLASS_NAMESPACES.values()) & set(manager["ignoreNamespaces"])


def test_exports(plan):
    outputs = plan.outputs
    assert outputs["trustBundlePem"] == outputs["rootCaCertPem"]
    assert outputs["spireOidcDiscoveryUrl"] == (
        "https://spire-spiffe-oidc-discovery-provider.spire-server.svc.cluster.local"
        "/.well-known/openid-configuration"
    )
    assert outputs["spireJwksUrl"].endswith("svc.cluster.local/keys")
    ids = outputs["spiffeIds"]
    assert ids["agents"].format(service_account="agent") == spiffe_id(
        "lab.local", "lab-agents", "agent"
    )
    assert set(ids) == {c.value for c in WorkloadClass}


# --- the cases from public reports ------------------------------------------------------------


def test_oidc_served_domains_hold_the_host_not_the_issuer_url():
    assert oidc_served_domains("https://oidc.lab.local") == ["oidc.lab.local"]
    assert oidc_served_domains("https://oidc.lab.local:8443/") == ["oidc.lab.local"]
    with pytest.raises(ValueError, match="expected an https:// URL"):
        oidc_served_domains("oidc.lab.local")


def test_spire_args_refuse_long_svid_lifetimes():
    base = dict(
        trust_domain="lab.local",
        cluster_name="c",
        cluster_dns_domain="cluster.local",
        jwt_issuer="https://oidc.lab.local",
        vault_address="http://vault:8200",
        vault_pki_mount="pki_int",
        vault_auth_path="kubernetes",
        vault_role="spire-server",
        crds_chart=None,
        chart=None,
    )
    with pytest.raises(ValueError, match="JWT-SVID TTL 301 s"):
        SpireArgs(**base, jwt_svid_ttl=301, x509_svid_ttl=3600)
    with pytest.raises(ValueError, match=r"X\.509-SVID TTL 3601 s"):
        SpireArgs(**base, jwt_svid_ttl=300, x509_svid_ttl=3601)


def test_set_signed_bundle_has_the_intermediate_then_the_root(plan):
    chain = uploaded_chain(plan)
    assert len(chain) == 2
    intermediate, root = chain
    root_out = x509.load_pem_x509_certificate(plan.outputs["rootCaCertPem"].encode())
    assert root == root_out
    intermediate.verify_directly_issued_by(root)
    # What Vault then returns as ca_chain for an issued certificate: the uploaded chain, so its
    # last certificate is the lab root.
    assert chain[-1].fingerprint(hashes.SHA256()) == root_out.fingerprint(hashes.SHA256())


# --- the real chain ---------------------------------------------------------------------------


def _key_for(ca_key_type: str):
    curve = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1}[ca_key_type]
    return ec.generate_private_key(curve())


def _sign(subject, public_key, issuer_cert, issuer_key, *, ca, path_length, hours, uris, eku):
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(seconds=10))
        .not_valid_after(now + dt.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in uris]),
            critical=False,
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def svid_chain(request):
    """Root and Vault intermediate from the dev plan; SPIRE CA and SVID signed like SPIRE does."""
    dev_plan = request.getfixturevalue("dev_plan")
    intermediate, root = uploaded_chain(dev_plan)
    csr_pem = dev_plan.one(
        "tls:index/locallySignedCert:LocallySignedCert", "vault-config-intermediate-cert"
    )["inputs"]["certRequestPem"]
    vault_key = INTERNAL_KEYS[csr_pem]
    assert INTERMEDIATE_KEY_TYPE == "ec" and vault_key.curve.key_size == INTERMEDIATE_KEY_BITS

    roles = {
        r["inputs"]["name"]: r["inputs"]
        for r in dev_plan.of_type("vault:pkiSecret/secretBackendRole:SecretBackendRole")
    }
    trust_domain_id = roles["spire-upstream"]["allowedUriSans"][0]
    spire_key = _key_for(CA_KEY_TYPE)
    spire_ca = _sign(
        x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, CA_SUBJECT["country"]),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, CA_SUBJECT["organization"]),
                x509.NameAttribute(NameOID.COMMON_NAME, CA_SUBJECT["commonName"]),
            ]
        ),
        spire_key.public_key(),
        intermediate,
        vault_key,
        ca=True,
        path_length=0,
        hours=CA_TTL_HOURS,
        uris=[trust_domain_id],
        eku=None,
    )
    values = spire_values(dev_plan)["spire-server"]
    svid_seconds = int(values["defaultX509SvidTTL"].removesuffix("s"))
    workload_key = ec.generate_private_key(ec.SECP256R1())
    workload_id = spiffe_id("lab.local", CLASS_NAMESPACES[WorkloadClass.AGENTS], "agent")
    svid = _sign(
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE")]),
        workload_key.public_key(),
        spire_ca,
        spire_key,
        ca=False,
        path_length=None,
        hours=svid_seconds / 3600,
        uris=[workload_id],
        eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    return {"root": root, "intermediate": intermediate, "spire_ca": spire_ca, "svid": svid}


def test_svid_verifies_to_the_lab_root(svid_chain):
    verifier = PolicyBuilder().store(Store([svid_chain["root"]])).build_client_verifier()
    verified = verifier.verify(
        svid_chain["svid"], [svid_chain["spire_ca"], svid_chain["intermediate"]]
    )
    assert verified.chain[-1] == svid_chain["root"]
    assert len(verified.chain) == 4
    sans = svid_chain["svid"].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://lab.local/ns/lab-agents/sa/agent"
    ]
    ca_sans = svid_chain["spire_ca"].extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ca_sans.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://lab.local"
    ]
    lifetime = svid_chain["svid"].not_valid_after_utc - svid_chain["svid"].not_valid_before_utc
    assert lifetime <= dt.timedelta(hours=1, seconds=10)


def test_svid_is_rejected_under_a_foreign_root(svid_chain):
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Foreign Root")])
    now = dt.datetime.now(dt.UTC)
    foreign = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    verifier = PolicyBuilder().store(Store([foreign])).build_client_verifier()
    with pytest.raises(VerificationError):
        verifier.verify(svid_chain["svid"], [svid_chain["spire_ca"], svid_chain["intermediate"]])


def test_path_length_forbids_a_ca_under_spires_ca(svid_chain):
    # SPIRE's CA (path length 0) may sign only leaves: a CA it signed cannot vouch for an SVID.
    spire_ca = svid_chain["spire_ca"]
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    holder_key = ec.generate_private_key(ec.SECP256R1())
    # Vault's key cannot sign a rogue CA here, so the same constraints go on a chain we hold.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Holder")])
    now = dt.datetime.now(dt.UTC)
    holder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(holder_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(holder_key.public_key()), False)
        .sign(holder_key, hashes.SHA256())
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    common = dict(hours=1, eku=None)
    ca = _sign(
        spire_ca.subject,
        ca_key.public_key(),
        holder,
        holder_key,
        ca=True,
        path_length=0,
        uris=["spiffe://lab.local"],
        **common,
    )
    rogue = _sign(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Rogue")]),
        rogue_key.public_key(),
        ca,
        ca_key,
        ca=True,
        path_length=None,
        uris=["spiffe://lab.local"],
        **common,
    )
    leaf = _sign(
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SPIRE")]),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        rogue,
        rogue_key,
        ca=False,
        path_length=None,
        uris=["spiffe://lab.local/ns/x/sa/y"],
        hours=1,
        eku=[ExtendedKeyUsageOID.CLIENT_AUTH],
    )
    verifier = PolicyBuilder().store(Store([holder])).build_client_verifier()
    with pytest.raises(VerificationError):
        verifier.verify(leaf, [rogue, ca])
    constraints = spire_ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
