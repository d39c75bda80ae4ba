"""Pulumi mocks for the offline plan and the tests.

Every resource echoes its inputs as outputs (camelCase, as the engine returns them) plus the
outputs its provider would compute. pulumi-tls resources are computed for real with
`cryptography` from the component's own parameters, so the certificates in a plan are real
and the tests can verify the chains the components ask for. Other providers' computed outputs
are registered per type in `COMPUTED`; components add theirs next to the tests that need them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import string
import threading
from collections.abc import Callable
from typing import Any

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pulumi.runtime import rpc

Computed = Callable[[dict[str, Any]], dict[str, Any]]

_CURVES = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}

_EXTENDED_USES = {
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}
_KEY_USES = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
}


def unwrap_secrets(value: Any) -> Any:
    """Inputs as the provider would see them: secret markers removed, values kept."""
    if rpc.is_rpc_secret(value):
        return unwrap_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def mask_secrets(value: Any, path: str = "", found: list[str] | None = None) -> Any:
    """Inputs as the plan shows them: every secret value replaced by "[secret]"."""
    if rpc.is_rpc_secret(value):
        if found is not None:
            found.append(path)
        return "[secret]"
    if isinstance(value, dict):
        return {k: mask_secrets(v, f"{path}.{k}" if path else k, found) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def secret_strings(value: Any) -> set[str]:
    """Every string that is itself a secret (a key, password, token, kubeconfig).

    Strings inside a secret object or list are left out: a whole map is secret when one of
    its values is (an environment with a key in it), and its other values are public.
    """
    if rpc.is_rpc_secret(value):
        inner = rpc.unwrap_rpc_secret(value)
        return {inner} if isinstance(inner, str) else set()
    if isinstance(value, dict):
        return set().union(*(secret_strings(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(secret_strings(v) for v in value))
    return set()


def _pem_key(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8
        if isinstance(key, ed25519.Ed25519PrivateKey)
        else serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def _private_key(inputs: dict) -> dict:
    algorithm = inputs.get("algorithm", "RSA")
    if algorithm == "RSA":
        key = rsa.generate_private_key(65537, int(inputs.get("rsaBits") or 2048))
    elif algorithm == "ECDSA":
        key = ec.generate_private_key(_CURVES[inputs.get("ecdsaCurve") or "P224"]())
    elif algorithm == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"pulumi-tls has no key algorithm {algorithm!r}")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "privateKeyPem": _pem_key(key),
        "privateKeyPemPkcs8": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "publicKeyPem": public.decode(),
        "publicKeyFingerprintSha256": hashlib.sha256(public).hexdigest(),
    }


def _name(subject: dict | None) -> x509.Name:
    subject = subject or {}
    attributes = [
        (NameOID.COMMON_NAME, subject.get("commonName")),
        (NameOID.ORGANIZATION_NAME, subject.get("organization")),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, subject.get("organizationalUnit")),
        (NameOID.COUNTRY_NAME, subject.get("country")),
    ]
    return x509.Name([x509.NameAttribute(oid, v) for oid, v in attributes if v])


def _sans(inputs: dict) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in inputs.get("dnsNames") or []]
    names += [x509.UniformResourceIdentifier(u) for u in inputs.get("uris") or []]
    return names


def _build_cert(inputs: dict, subject: x509.Name, public_key, issuer: x509.Name, signer) -> str:
    uses = inputs.get("allowedUses") or []
    unknown = [u for u in uses if u not in _KEY_USES and u not in _EXTENDED_USES]
    if unknown:
        raise ValueError(f"pulumi-tls has no allowed use {unknown}")
    now = dt.datetime.now(dt.UTC)
    is_ca = bool(inputs.get("isCaCertificate"))
    path_length = inputs.get("maxPathLength")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=int(inputs["validityPeriodHours"])))
        .add_extension(
            x509.BasicConstraints(
                ca=is_ca,
                path_length=int(path_length)
                if is_ca and path_length is not None and int(path_length) >= 0
                else None,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    key_usage = {v: False for v in _KEY_USES.values()}
    key_usage.update({_KEY_USES[u]: True for u in uses if u in _KEY_USES})
    builder = builder.add_extension(
        x509.KeyUsage(**key_usage, encipher_only=False, decipher_only=False), critical=True
    )
    extended = [_EXTENDED_USES[u] for u in uses if u in _EXTENDED_USES]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    if _sans(inputs):
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(inputs)), critical=False)
    if signer.public_key() != public_key:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    cert = builder.sign(signer, algorithm)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _load_key(pem: str):
    return serialization.load_pem_private_key(pem.encode(), password=None)


def _self_signed_cert(inputs: dict) -> dict:
    key = _load_key(inputs["privateKeyPem"])
    name = _name(inputs.get("subject"))
    return {"certPem": _build_cert(inputs, name, key.public_key(), name, key)}


def _cert_request(inputs: dict) -> dict:
    key = _load_key(inputs["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(_name(inputs.get("subject")))
    if _sans(inputs):
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(inputs)), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return {"certRequestPem": csr.public_bytes(serialization.Encoding.PEM).decode()}


def _locally_signed_cert(inputs: dict) -> dict:
    csr = x509.load_pem_x509_csr(inputs["certRequestPem"].encode())
    if not csr.is_signature_valid:
        raise ValueError("the certificate request's signature is invalid")
    ca_cert = x509.load_pem_x509_certificate(inputs["caCertPem"].encode())
    ca_key = _load_key(inputs["caPrivateKeyPem"])
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = {
            "dnsNames": sans.get_values_for_type(x509.DNSName),
            "uris": sans.get_values_for_type(x509.UniformResourceIdentifier),
        }
    except x509.ExtensionNotFound:
        names = {}
    pem = _build_cert({**inputs, **names}, csr.subject, csr.public_key(), ca_cert.subject, ca_key)
    return {"certPem": pem, "caKeyAlgorithm": type(ca_key).__name__}


# Keys a provider keeps to itself (Vault's "internal" PKI keys), by the CSR they signed. The
# tests use them to sign the next link of a chain as that provider would.
INTERNAL_KEYS: dict[str, Any] = {}


def _vault_intermediate_csr(inputs: dict) -> dict:
    key_type, bits = inputs.get("keyType") or "rsa", int(inputs.get("keyBits") or 2048)
    if key_type == "ec":
        curves = {256: ec.SECP256R1, 384: ec.SECP384R1, 521: ec.SECP521R1}
        key = ec.generate_private_key(curves[bits]())
    elif key_type == "rsa":
        key = rsa.generate_private_key(65537, bits)
    else:
        raise ValueError(f"the mock makes ec or rsa intermediate keys, not {key_type!r}")
    subject = _name(
        {"commonName": inputs.get("commonName"), "organization": inputs.get("organization")}
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    INTERNAL_KEYS[pem] = key
    return {"csr": pem}


# What the mocked Vault knows per PKI mount: the intermediate's key and the chain uploaded
# for it, and the mount's roles, so certificates issued through a role are real and signed
# by the intermediate, and a request the role would refuse fails the plan as Vault would.
VAULT_PKI: dict[str, dict[str, Any]] = {}

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)
_VAULT_KEY_USAGES = {
    "DigitalSignature": "digital_signature",
    "ContentCommitment": "content_commitment",
    "KeyEncipherment": "key_encipherment",
    "DataEncipherment": "data_encipherment",
    "KeyAgreement": "key_agreement",
    "CertSign": "key_cert_sign",
    "CRLSign": "crl_sign",
}
# Vault's role defaults for the fields the lab may leave unset.
_VAULT_ROLE_DEFAULTS = {
    "allowBareDomains": False,
    "allowSubdomains": False,
    "allowGlobDomains": False,
    "allowAnyName": False,
    "allowWildcardCertificates": True,
    "serverFlag": True,
    "clientFlag": True,
    "codeSigningFlag": False,
    "emailProtectionFlag": False,
    "keyType": "rsa",
    "keyBits": 2048,
    "keyUsages": ["DigitalSignature", "KeyAgreement", "KeyEncipherment"],
}


def _vault_pki(backend: str) -> dict[str, Any]:
    return VAULT_PKI.setdefault(backend, {"roles": {}})


def _vault_set_signed(inputs: dict) -> dict:
    chain = [
        x509.load_pem_x509_certificate(b.encode()) for b in _PEM_CERT.findall(inputs["certificate"])
    ]
    if not chain:
        raise ValueError("Vault: the uploaded bundle holds no certificate")
    public = chain[0].public_key()
    keys = [k for k in INTERNAL_KEYS.values() if k.public_key() == public]
    if not keys:
        raise ValueError("Vault: the uploaded certificate is not for a key this mount made")
    _vault_pki(inputs["backend"]).update(key=keys[0], chain=chain)
    return {}


def _vault_role(inputs: dict) -> dict:
    _vault_pki(inputs["backend"])["roles"][inputs["name"]] = {**_VAULT_ROLE_DEFAULTS, **inputs}
    return {}


def _duration(text: str | int) -> dt.timedelta:
    if isinstance(text, int) or str(text).isdigit():
        return dt.timedelta(seconds=int(text))
    found = re.fullmatch(r"(\d+)([smhd])", str(text))
    if found is None:
        raise ValueError(f"Vault: {text!r} is not a duration this mock reads (such as 24h)")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[found.group(2)]
    return dt.timedelta(**{unit: int(found.group(1))})


def _role_allows(role: dict, host: str) -> bool:
    if role["allowAnyName"]:
        return True
    if "*" in host and not role["allowWildcardCertificates"]:
        return False
    if role["allowGlobDomains"]:
        raise ValueError("Vault: the mock does not model glob domains")
    for domain in role.get("allowedDomains") or []:
        if host == domain and role["allowBareDomains"]:
            return True
        if host.endswith("." + domain) and role["allowSubdomains"]:
            return True
    return False


def _vault_issue(inputs: dict) -> dict:
    """pki/issue/<role>: a key made here and a certificate signed by the intermediate."""
    pki = VAULT_PKI.get(inputs["backend"])
    if pki is None or "key" not in pki:
        raise ValueError(f"Vault: mount {inputs['backend']!r} has no signed intermediate yet")
    role = pki["roles"].get(inputs["name"])
    if role is None:
        raise ValueError(f"Vault: no role {inputs['name']!r} on {inputs['backend']!r}")
    names = [inputs["commonName"], *(inputs.get("altNames") or [])]
    if inputs.get("excludeCnFromSans"):
        names = names[1:]
    refused = [n for n in [inputs["commonName"], *names] if not _role_allows(role, n)]
    if refused:
        raise ValueError(f"Vault: role {inputs['name']!r} does not allow {refused}")
    # Vault caps a longer request at the role's max_ttl, and refuses to outlive its issuer.
    ttl = _duration(inputs.get("ttl") or role.get("ttl") or "768h")
    if role.get("maxTtl"):
        ttl = min(ttl, _duration(role["maxTtl"]))
    issuer_key, chain = pki["key"], pki["chain"]
    now = dt.datetime.now(dt.UTC)
    not_after = now + ttl
    if not_after > chain[0].not_valid_after_utc:
        raise ValueError("Vault: the certificate would outlive the intermediate")
    key_type, bits = role["keyType"], int(role["keyBits"])
    if key_type == "ec":
        key = ec.generate_private_key({256: ec.SECP256R1, 384: ec.SECP384R1}[bits]())
    elif key_type == "rsa":
        key = rsa.generate_private_key(65537, bits)
    else:
        raise ValueError(f"Vault: the mock makes ec or rsa keys, not {key_type!r}")
    usage = {v: False for v in _VAULT_KEY_USAGES.values()}
    usage.update({_VAULT_KEY_USAGES[u]: True for u in role["keyUsages"]})
    flags = {
        "serverFlag": ExtendedKeyUsageOID.SERVER_AUTH,
        "clientFlag": ExtendedKeyUsageOID.CLIENT_AUTH,
        "codeSigningFlag": ExtendedKeyUsageOID.CODE_SIGNING,
        "emailProtectionFlag": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    }
    extended = [oid for flag, oid in flags.items() if role[flag]]
    # Vault removes repeated names and sorts them.
    dns_names = sorted(set(names))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name({"commonName": inputs["commonName"]}))
        .issuer_name(chain[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(seconds=30))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(**usage, encipher_only=False, decipher_only=False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
    )
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    pkcs8 = inputs.get("privateKeyFormat") == "pkcs8"
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8
        if pkcs8
        else serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in chain]
    serial = f"{cert.serial_number:x}"
    return {
        "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "issuingCa": pems[0],
        "caChain": "".join(pems),
        "privateKey": private,
        "privateKeyType": key_type,
        "serialNumber": ":".join(serial[i : i + 2] for i in range(0, len(serial), 2)),
        "expiration": int(not_after.timestamp()),
    }


def _command(inputs: dict) -> dict:
    # The Vault init step prints its init document; every other command here is kind, which
    # prints a kubeconfig. Fixed stand-ins, secret like the real ones.
    environment = inputs.get("environment") or {}
    if environment.get("LAB_VAULT_STEP") == "init":
        return {"stdout": '{"unseal_keys_b64": ["mock-unseal-key"], "root_token": "mock-root"}'}
    if environment.get("LAB_VAULT_STEP") == "unseal":
        return {"stdout": "unsealed"}
    return {"stdout": "apiVersion: v1\nkind: Config\n"}


def _digest(text: str) -> str:
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


COMPUTED: dict[str, Computed] = {
    "tls:index/privateKey:PrivateKey": _private_key,
    "tls:index/selfSignedCert:SelfSignedCert": _self_signed_cert,
    "tls:index/certRequest:CertRequest": _cert_request,
    "tls:index/locallySignedCert:LocallySignedCert": _locally_signed_cert,
    "command:local:Command": _command,
    "docker:index/image:Image": lambda inputs: {
        "repoDigest": f"{inputs['imageName'].rsplit(':', 1)[0]}@{_digest(inputs['imageName'])}",
    },
    "vault:pkiSecret/secretBackendIntermediateCertRequest:SecretBackendIntermediateCertRequest": (
        _vault_intermediate_csr
    ),
    "vault:pkiSecret/secretBackendIntermediateSetSigned:SecretBackendIntermediateSetSigned": (
        _vault_set_signed
    ),
    "vault:pkiSecret/secretBackendRole:SecretBackendRole": _vault_role,
    "vault:pkiSecret/secretBackendCert:SecretBackendCert": _vault_issue,
    # A fresh password each time, as the provider makes one: a leak of one is findable.
    "random:index/randomPassword:RandomPassword": lambda inputs: {
        "result": "".join(
            secrets.choice(string.ascii_letters + string.digits)
            for _ in range(int(inputs.get("length") or 16))
        )
    },
    # Verified Permissions names stores and policies itself; stable stand-ins per name.
    "aws:verifiedpermissions/policyStore:PolicyStore": lambda inputs: {
        "policyStoreId": "PS" + _digest(inputs.get("description", ""))[7:27],
        "arn": "arn:aws:verifiedpermissions::000000000000:policy-store/PSmock",
    },
    "aws:verifiedpermissions/policy:Policy": lambda inputs: {
        "policyId": "P" + _digest(json.dumps(inputs.get("definition"), sort_keys=True))[7:28],
    },
    "docker:index/remoteImage:RemoteImage": lambda inputs: {
        "imageId": _digest(inputs["name"]),
        "repoDigest": f"{inputs['name']}@{_digest(inputs['name'])}",
    },
    # AWS computes ARNs, queue URLs and key ids; stand-ins in the mock account, per name.
    "aws:sns/topic:Topic": lambda inputs: {"arn": _aws_arn("sns", inputs.get("name"))},
    "aws:sqs/queue:Queue": lambda inputs: {
        "arn": _aws_arn("sqs", inputs.get("name")),
        "url": f"https://sqs.us-east-1.amazonaws.com/000000000000/{inputs.get('name')}",
    },
    "aws:kms/key:Key": lambda inputs: {
        "keyId": _digest(inputs.get("description", ""))[7:43],
        "arn": _aws_arn("kms", "key/" + _digest(inputs.get("description", ""))[7:43]),
    },
    "aws:iam/user:User": lambda inputs: {
        "arn": f"arn:aws:iam::000000000000:user{inputs.get('path', '/')}{inputs.get('name')}"
    },
    "aws:iam/accessKey:AccessKey": lambda inputs: {"secret": "mock-secret-access-key"},
}


def _aws_arn(service: str, name: str | None) -> str:
    return f"arn:aws:{service}:us-east-1:000000000000:{name}"


# What provider functions answer under mocks, by function token: a fixed answer, or one
# computed from the call's arguments (camelCase) when the answer depends on what was asked.
INVOKES: dict[str, dict[str, Any] | Computed] = {
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "accountId": "000000000000",
        "arn": "arn:aws:iam::000000000000:root",
    },
    "aws:index/getRegion:getRegion": {"name": "us-east-1", "region": "us-east-1"},
    # Keycloak's built-in clients (realm-management, admin-permissions), by the client id asked.
    "keycloak:openid/getClient:getClient": lambda args: {
        "id": f"{args.get('clientId')}-id",
        "clientId": args.get("clientId"),
    },
    # An authorization scope Keycloak made itself, named for its name and resource server.
    "keycloak:openid/getClientAuthorizationScope:getClientAuthorizationScope": lambda args: {
        "id": f"{args.get('name')}-scope-on-{args.get('resourceServerId')}",
        "name": args.get("name"),
    },
}


class LabMocks(pulumi.runtime.Mocks):
    """Echo inputs, add computed outputs, and keep a record of every registration."""

    def __init__(self):
        self.current = threading.local()
        self.records: dict[str, dict[str, Any]] = {}
        self.secret_values: set[str] = set()
        """Every secret string that went into or came out of a resource."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        plain = unwrap_secrets(args.inputs)
        outputs = dict(args.inputs)
        computed = COMPUTED.get(args.typ)
        if computed is not None:
            outputs.update(computed(plain))
        # The engine marks the outputs a provider declares secret; the mock monitor does not.
        for name in getattr(self.current, "secret_outputs", ()):
            if name in outputs:
                outputs[name] = rpc.wrap_rpc_secret(outputs[name])
        self.secret_values |= secret_strings(args.inputs) | secret_strings(outputs)
        urn = getattr(self.current, "urn", None)
        if urn is not None:
            secret_paths: list[str] = []
            record = self.records.setdefault(urn, {})
            record["inputs"] = mask_secrets(args.inputs, found=secret_paths)
            record["secretInputs"] = secret_paths
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        # A bare dict: the mock monitor reads a tuple's second item as a list of failures.
        answer = INVOKES.get(args.token, {})
        return answer(unwrap_secrets(args.args)) if callable(answer) else answer


def _is_stack(urn: str) -> bool:
    return not urn or urn.split("::")[2] == "pulumi:pulumi:Stack"


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The mock monitor, also noting each registration's parent, provider and dependencies."""

    def __init__(self, mocks: LabMocks):
        super().__init__(mocks)
        self.lab_mocks = mocks

    def RegisterResource(self, request):  # noqa: N802 - the gRPC method's name
        urn = self.make_urn(request.parent, request.type, request.name)
        if request.type != "pulumi:pulumi:Stack":
            self.lab_mocks.records[urn] = {
                "urn": urn,
                "type": request.type,
                "name": request.name,
                # The stack is every top-level resource's parent; the plan shows it as none.
                "parent": None if _is_stack(request.parent) else request.parent,
                "custom": bool(request.custom),
                "provider": request.provider.rsplit("::", 1)[0] if request.provider else None,
                "dependencies": sorted(request.dependencies),
            }
        self.lab_mocks.current.urn = urn
        self.lab_mocks.current.secret_outputs = list(request.additionalSecretOutputs)
        try:
            return super().RegisterResource(request)
        finally:
            self.lab_mocks.current.urn = None
            self.lab_mocks.current.secret_outputs = ()
