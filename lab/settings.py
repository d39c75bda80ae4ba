"""Stack config -> typed, validated lab settings, before any resource exists.

Every key the lab reads is declared once in `KEYS` (type, default, description, rule) and
again in Pulumi.yaml, where the CLI shows it; a test keeps the two equal. `load_settings`
reads the whole namespace, rejects unknown keys (with a "did you mean"), parses each value
and checks the rules that span keys. Every error names the key, the value and what is
allowed, and all errors are reported together so one run fixes them all.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab.versions import PINS, Pins

PROJECT = "identity-lab"

MODES = ("local", "aws")
VAULT_FLAVORS = ("vault", "openbao")

# A SPIFFE trust domain is lower-case letters, digits, dots, dashes and underscores; no scheme,
# port, path or user info (SPIFFE ID spec, section 2.1). 255 is the spec's length bound.
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_OLLAMA_MODEL = re.compile(r"^[a-z0-9][a-z0-9._/-]*:[A-Za-z0-9._-]+$")


class SettingsError(ValueError):
    """Bad stack config; the message lists every problem and how to fix it."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"The stack config has {len(problems)} problem(s):\n{lines}\n"
            f"Fix them with `pulumi config set {PROJECT}:<key> <value>` "
            f"(add --secret for secrets) or in Pulumi.<stack>.yaml."
        )


class _InvalidValueError(Exception):
    pass


@dataclass(frozen=True)
class Key:
    """One config key: its Pulumi.yaml type, default (None = required or optional secret)."""

    type: str  # "string" | "integer" | "boolean", as Pulumi.yaml spells it
    default: Any
    description: str
    secret: bool = False
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[str], None] | None = None


def _trust_domain(value: str) -> None:
    if "://" in value:
        raise _InvalidValueError("a trust domain has no scheme: drop 'spiffe://' or 'https://'")
    if value != value.lower():
        raise _InvalidValueError("a trust domain is lower case")
    if not _TRUST_DOMAIN.match(value):
        raise _InvalidValueError(
            "allowed: lower-case letters, digits, '.', '-', '_' (no port or path)"
        )
    if "" in value.split("."):
        raise _InvalidValueError("a trust domain has no empty label (no leading, trailing or '..')")


# A registry prefix as image references spell it: host[:port][/path], no scheme.
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


def _registry(value: str) -> None:
    if "://" in value:
        raise _InvalidValueError("an image registry has no scheme: drop 'http://' or 'https://'")
    if not _REGISTRY.match(value):
        raise _InvalidValueError(
            "allowed: host[:port][/path] in lower case, such as localhost:5001 or "
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/lab"
        )


def _kubeconfig(value: str) -> None:
    # The value is secret: describe what is wrong, never echo it.
    try:
        document = yaml.safe_load(value)
    except yaml.YAMLError:
        raise _InvalidValueError("not YAML; give the whole kubeconfig file's text") from None
    if not isinstance(document, dict) or document.get("kind") != "Config":
        raise _InvalidValueError("not a kubeconfig (a mapping with kind: Config)")


def _dns_name(value: str) -> None:
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2 or not all(_DNS_LABEL.match(x) for x in labels):
        raise _InvalidValueError("allowed: a lower-case DNS name with at least two labels")


def _ollama_model(value: str) -> None:
    if not _OLLAMA_MODEL.match(value) or value.endswith(":latest"):
        raise _InvalidValueError(
            "allowed: an Ollama model with a pinned tag, such as 'qwen2.5:0.5b'"
        )


def _https_url(value: str) -> None:
    if not value.startswith("https://") or " " in value:
        raise _InvalidValueError("allowed: an https:// URL")


def _pem_certificate(value: str) -> None:
    try:
        cert = x509.load_pem_x509_certificate(value.encode())
    except ValueError as err:
        raise _InvalidValueError(f"not a PEM certificate ({err})") from None
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        raise _InvalidValueError(
            "the certificate is not a CA (basicConstraints CA:TRUE is required)"
        )


def _pem_private_key(value: str) -> None:
    try:
        serialization.load_pem_private_key(value.encode(), password=None)
    except (ValueError, TypeError) as err:
        raise _InvalidValueError(f"not an unencrypted PEM private key ({err})") from None


KEYS: dict[str, Key] = {
    "mode": Key(
        "string",
        None,
        "Where the AWS services run: local (in-cluster emulator) or aws.",
        required=True,
        choices=MODES,
    ),
    "trustDomain": Key(
        "string",
        None,
        "SPIFFE trust domain of every workload, such as lab.local.",
        required=True,
        check=_trust_domain,
    ),
    "baseDomain": Key(
        "string",
        "lab.localhost",
        "DNS suffix of the lab's public host names.",
        check=_dns_name,
    ),
    "clusterName": Key(
        "string",
        "identity-lab",
        "Name of the kind cluster, also SPIRE's cluster name.",
        check=lambda v: _DNS_LABEL.match(v) or _raise("allowed: a lower-case DNS label"),
    ),
    "kubeconfig": Key(
        "string",
        None,
        "Kubeconfig of an existing cluster to adopt instead of creating kind.",
        secret=True,
        check=_kubeconfig,
    ),
    "clusterDnsDomain": Key(
        "string",
        "cluster.local",
        "DNS domain of the cluster's services.",
        check=_dns_name,
    ),
    "serviceAccountIssuer": Key(
        "string",
        "https://kubernetes.default.svc.cluster.local",
        "Issuer of the cluster's service account tokens.",
        check=_https_url,
    ),
    "imageRegistry": Key(
        "string",
        "localhost:5001",
        "Registry the lab's own images are pushed to and pulled from.",
        check=_registry,
    ),
    "checkPrerequisites": Key(
        "boolean",
        True,
        "Check Docker and kind before creating the cluster.",
    ),
    "gatewayHttpsPort": Key(
        "integer",
        8443,
        "Host port of the gateway's HTTPS entry.",
        minimum=1024,
        maximum=65535,
    ),
    "idpHttpsPort": Key(
        "integer",
        9443,
        "Host port of the identity provider.",
        minimum=1024,
        maximum=65535,
    ),
    "vaultPort": Key(
        "integer",
        8200,
        "Host port of Vault's API.",
        minimum=1024,
        maximum=65535,
    ),
    "registryPort": Key(
        "integer",
        5001,
        "Host port of the local image registry.",
        minimum=1024,
        maximum=65535,
    ),
    "awsEmulatorPort": Key(
        "integer",
        4566,
        "Host port of the in-cluster AWS emulator (local mode).",
        minimum=1024,
        maximum=65535,
    ),
    "stableDiffusion": Key("boolean", False, "Deploy the Stable Diffusion image model."),
    "gpu": Key("boolean", False, "Schedule the model servers on an NVIDIA GPU."),
    "accessTokenSeconds": Key(
        "integer",
        300,
        "Lifetime of access tokens.",
        minimum=30,
        maximum=300,
    ),
    "delegatedTokenSeconds": Key(
        "integer",
        120,
        "Lifetime of tokens exchanged for an agent.",
        minimum=30,
        maximum=300,
    ),
    "jwtSvidSeconds": Key(
        "integer",
        300,
        "Lifetime of JWT-SVIDs.",
        minimum=60,
        maximum=300,
    ),
    "x509SvidSeconds": Key(
        "integer",
        3600,
        "Lifetime of X.509-SVIDs.",
        minimum=300,
        maximum=3600,
    ),
    "consentMaxAgeSeconds": Key(
        "integer",
        300,
        "How long a push consent counts as fresh.",
        minimum=30,
        maximum=900,
    ),
    "clockSkewSeconds": Key(
        "integer",
        30,
        "Clock skew allowed when checking token times.",
        minimum=0,
        maximum=120,
    ),
    "vaultFlavor": Key(
        "string",
        "vault",
        "Secrets engine: HashiCorp Vault or OpenBao (same API).",
        choices=VAULT_FLAVORS,
    ),
    "vaultDevMode": Key(
        "boolean",
        False,
        "Run Vault in dev mode (in memory, lost on restart).",
    ),
    "vaultStorageGi": Key(
        "integer",
        1,
        "Vault's persistent volume, GiB.",
        minimum=1,
        maximum=100,
    ),
    "idpDatabaseStorageGi": Key(
        "integer",
        1,
        "The IdP database's persistent volume, GiB.",
        minimum=1,
        maximum=100,
    ),
    "ollamaModel": Key(
        "string",
        "qwen2.5:0.5b",
        "Chat model pulled by Ollama (small, CPU).",
        check=_ollama_model,
    ),
    "ollamaStorageGi": Key(
        "integer",
        5,
        "Ollama's model volume, GiB.",
        minimum=2,
        maximum=200,
    ),
    "rootCaCommonName": Key("string", "Identity Lab Root CA", "Subject CN of a generated root."),
    "rootCaOrganization": Key("string", "Identity Lab", "Subject O of a generated root."),
    "rootCaValidityYears": Key(
        "integer",
        10,
        "Validity of a generated root.",
        minimum=1,
        maximum=30,
    ),
    "rootCaCertPem": Key(
        "string",
        None,
        "Bring-your-own root: its certificate (PEM); needs rootCaKeyPem.",
        check=_pem_certificate,
    ),
    "rootCaKeyPem": Key(
        "string",
        None,
        "Bring-your-own root: its private key (PEM).",
        secret=True,
        check=_pem_private_key,
    ),
    "awsRegion": Key(
        "string",
        "us-east-1",
        "Region the in-cluster AWS emulator answers for (local mode).",
        check=lambda v: (
            re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", v)
            or _raise("allowed: an AWS region name such as us-east-1")
        ),
    ),
}


def _raise(message: str) -> None:
    raise _InvalidValueError(message)


class Secret:
    """A config value that must never be printed; `reveal()` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(****)"


@dataclass(frozen=True)
class Hosts:
    """The lab's public host names; one issuer string per token source derives from them."""

    base_domain: str
    gateway_https_port: int
    idp_https_port: int

    @property
    def gateway(self) -> str:
        return f"api.{self.base_domain}"

    @property
    def idp(self) -> str:
        return f"idp.{self.base_domain}"

    @property
    def oidc(self) -> str:
        return f"oidc.{self.base_domain}"

    @property
    def app(self) -> str:
        return f"app.{self.base_domain}"

    @property
    def vault(self) -> str:
        return f"vault.{self.base_domain}"

    @property
    def gateway_url(self) -> str:
        return f"https://{self.gateway}:{self.gateway_https_port}"

    @property
    def idp_url(self) -> str:
        return f"https://{self.idp}:{self.idp_https_port}"


@dataclass(frozen=True)
class Ports:
    """Host ports published by the kind node; each maps to a fixed NodePort."""

    gateway_https: int
    idp_https: int
    vault: int
    registry: int
    aws_emulator: int = 4566


@dataclass(frozen=True)
class Lifetimes:
    """Token and SVID lifetimes in seconds; every check downstream reads them from here."""

    access_token: int
    delegated_token: int
    jwt_svid: int
    x509_svid: int
    consent_max_age: int
    clock_skew: int

    @property
    def longest_token(self) -> int:
        return max(self.access_token, self.delegated_token, self.jwt_svid)

    @property
    def deny_list_retention(self) -> int:
        """A revoked session stays denied until every token it could hold has expired."""
        return self.longest_token + 2 * self.clock_skew


@dataclass(frozen=True)
class RootCaSettings:
    common_name: str
    organization: str
    validity_years: int
    supplied_cert_pem: str | None
    supplied_key_pem: Secret | None

    @property
    def supplied(self) -> bool:
        return self.supplied_cert_pem is not None


@dataclass(frozen=True)
class LabSettings:
    mode: str
    trust_domain: str
    cluster_name: str
    kubeconfig: Secret | None
    cluster_dns_domain: str
    service_account_issuer: str
    image_registry: str
    check_prerequisites: bool
    hosts: Hosts
    ports: Ports
    stable_diffusion: bool
    gpu: bool
    lifetimes: Lifetimes
    vault_flavor: str
    vault_dev_mode: bool
    vault_storage_gi: int
    idp_database_storage_gi: int
    ollama_model: str
    ollama_storage_gi: int
    root_ca: RootCaSettings
    aws_region: str
    versions: Pins

    @property
    def adopts_cluster(self) -> bool:
        return self.kubeconfig is not None

    @property
    def local_aws(self) -> bool:
        return self.mode == "local"


class ConfigSource:
    """Raw stack config as the Pulumi runtime holds it: full keys to strings."""

    def __init__(self, values: Mapping[str, str], secret_keys: Iterable[str] = ()):
        self.values = dict(values)
        self.secret_keys = set(secret_keys)

    @classmethod
    def from_pulumi(cls) -> ConfigSource:
        from pulumi.runtime import config as runtime_config

        values = dict(runtime_config.get_config_env())
        values.update(runtime_config.CONFIG.get())
        secret = set(runtime_config.get_config_secret_keys_env())
        secret.update(k for k in values if runtime_config.is_config_secret(k))
        return cls(values, secret)


def _parse(name: str, key: Key, raw: Any) -> Any:
    text = str(raw).strip()
    if key.type == "boolean":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise _InvalidValueError("allowed: true or false")
    if key.type == "integer":
        if not re.fullmatch(r"-?\d+", text):
            raise _InvalidValueError("allowed: a whole number")
        number = int(text)
        if key.minimum is not None and number < key.minimum:
            raise _InvalidValueError(f"allowed: {key.minimum} to {key.maximum}")
        if key.maximum is not None and number > key.maximum:
            raise _InvalidValueError(f"allowed: {key.minimum} to {key.maximum}")
        return number
    if key.choices is not None and text not in key.choices:
        raise _InvalidValueError(f"allowed: {', '.join(key.choices)}")
    if not text:
        raise _InvalidValueError("allowed: a non-empty string")
    if key.check is not None:
        key.check(text)
    return text


def _shown(key: Key, raw: Any) -> str:
    return "[secret]" if key.secret else repr(raw)


def read_values(source: ConfigSource) -> tuple[dict[str, Any], list[str], set[str]]:
    """Parse every key: the values, the problems (unknown, invalid, missing) and the keys
    that failed (their value is the default, which the rules across keys must not judge)."""
    prefix = f"{PROJECT}:"
    problems: list[str] = []
    failed: set[str] = set()
    for full in sorted(source.values):
        name = full[len(prefix) :] if full.startswith(prefix) else None
        if name is not None and name not in KEYS:
            close = difflib.get_close_matches(name, KEYS, n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else ""
            problems.append(f"{full}: unknown key{hint}")

    values: dict[str, Any] = {}
    for name, key in KEYS.items():
        full = prefix + name
        raw = source.values.get(full)
        if raw is None:
            if key.required:
                allowed = f" ({', '.join(key.choices)})" if key.choices else ""
                problems.append(f"{full}: missing; required: {key.description}{allowed}")
                failed.add(name)
            values[name] = key.default
            continue
        if key.secret and full not in source.secret_keys:
            problems.append(
                f"{full}: stored in plain text; set it with "
                f"`pulumi config set --secret {full}` so it is encrypted"
            )
            values[name] = key.default
            failed.add(name)
            continue
        try:
            values[name] = _parse(name, key, raw)
        except _InvalidValueError as err:
            problems.append(f"{full}={_shown(key, raw)}: {err}")
            values[name] = key.default
            failed.add(name)
    return values, problems, failed


def _cross_checks(v: dict[str, Any], source: ConfigSource, failed: set[str]) -> list[str]:
    """Rules across keys, each judged only when every key it reads parsed."""
    problems = []

    def usable(*names: str) -> bool:
        return not failed.intersection(names)

    if usable("delegatedTokenSeconds", "accessTokenSeconds") and (
        v["delegatedTokenSeconds"] > v["accessTokenSeconds"]
    ):
        problems.append(
            f"{PROJECT}:delegatedTokenSeconds={v['delegatedTokenSeconds']}: a delegated token "
            f"may not outlive the user's access token ({v['accessTokenSeconds']} s)"
        )
    if not usable("rootCaCertPem", "rootCaKeyPem"):
        pass
    elif (v["rootCaCertPem"] is None) != (v["rootCaKeyPem"] is None):
        problems.append(
            f"{PROJECT}:rootCaCertPem and {PROJECT}:rootCaKeyPem: give both to bring your own "
            f"root, or neither to generate one"
        )
    elif v["rootCaCertPem"] is not None and not _key_matches(v["rootCaCertPem"], v["rootCaKeyPem"]):
        problems.append(
            f"{PROJECT}:rootCaKeyPem: the key does not belong to rootCaCertPem's public key"
        )
    if usable("mode") and v["mode"] == "aws" and not source.values.get("aws:region"):
        problems.append(
            "aws:region: missing; required in aws mode: the AWS region of SNS, SQS and "
            "Verified Permissions (pulumi config set aws:region us-east-1)"
        )
    port_keys = ("gatewayHttpsPort", "idpHttpsPort", "vaultPort", "registryPort", "awsEmulatorPort")
    ports = {k: v[k] for k in port_keys}
    if usable(*port_keys) and len(set(ports.values())) != len(ports):
        problems.append(f"{PROJECT}: host ports must differ, got {ports}")
    kind_issuer = f"https://kubernetes.default.svc.{v['clusterDnsDomain']}"
    issuer_keys = ("kubeconfig", "clusterDnsDomain", "serviceAccountIssuer")
    if (
        usable(*issuer_keys)
        and v["kubeconfig"] is None
        and v["serviceAccountIssuer"] != kind_issuer
    ):
        problems.append(
            f"{PROJECT}:serviceAccountIssuer={v['serviceAccountIssuer']!r}: a kind cluster's "
            f"issuer follows its DNS domain ({kind_issuer!r}); change it only with kubeconfig"
        )
    if usable("gpu", "stableDiffusion") and v["gpu"] and not v["stableDiffusion"]:
        problems.append(
            f"{PROJECT}:gpu=true: the GPU is only used by Stable Diffusion; "
            f"set {PROJECT}:stableDiffusion=true too, or gpu=false"
        )
    return problems


def _key_matches(cert_pem: str, key_pem: str) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def load_settings(source: ConfigSource | None = None, pins: Pins = PINS) -> LabSettings:
    """Read and validate the whole config; raise SettingsError listing every problem."""
    source = source if source is not None else ConfigSource.from_pulumi()
    v, problems, failed = read_values(source)
    problems += _cross_checks(v, source, failed)
    if problems:
        raise SettingsError(problems)

    def secret(name: str) -> Secret | None:
        return Secret(v[name]) if v[name] is not None else None

    return LabSettings(
        mode=v["mode"],
        trust_domain=v["trustDomain"],
        cluster_name=v["clusterName"],
        kubeconfig=secret("kubeconfig"),
        cluster_dns_domain=v["clusterDnsDomain"],
        service_account_issuer=v["serviceAccountIssuer"],
        image_registry=v["imageRegistry"],
        check_prerequisites=v["checkPrerequisites"],
        hosts=Hosts(v["baseDomain"], v["gatewayHttpsPort"], v["idpHttpsPort"]),
        ports=Ports(
            v["gatewayHttpsPort"],
            v["idpHttpsPort"],
            v["vaultPort"],
            v["registryPort"],
            v["awsEmulatorPort"],
        ),
        stable_diffusion=v["stableDiffusion"],
        gpu=v["gpu"],
        lifetimes=Lifetimes(
            access_token=v["accessTokenSeconds"],
            delegated_token=v["delegatedTokenSeconds"],
            jwt_svid=v["jwtSvidSeconds"],
            x509_svid=v["x509SvidSeconds"],
            consent_max_age=v["consentMaxAgeSeconds"],
            clock_skew=v["clockSkewSeconds"],
        ),
        vault_flavor=v["vaultFlavor"],
        vault_dev_mode=v["vaultDevMode"],
        vault_storage_gi=v["vaultStorageGi"],
        idp_database_storage_gi=v["idpDatabaseStorageGi"],
        ollama_model=v["ollamaModel"],
        ollama_storage_gi=v["ollamaStorageGi"],
        root_ca=RootCaSettings(
            common_name=v["rootCaCommonName"],
            organization=v["rootCaOrganization"],
            validity_years=v["rootCaValidityYears"],
            supplied_cert_pem=v["rootCaCertPem"],
            supplied_key_pem=secret("rootCaKeyPem"),
        ),
        aws_region=source.values.get("aws:region") or v["awsRegion"],
        versions=pins,
    )
