"""The rules: one validator per rule, each a plain function over a resource's type and inputs.

A resource rule is `check(resource_type, props, settings) -> list[str]`, one finding per
problem; a stack rule is `check(resources, settings) -> list[(urn, finding)]`. `Rule.message`
turns a finding into the text a user sees: what is wrong and where, the rule, and the fix.
Inputs are read through `Mapping`/`Sequence` only, so CrossGuard's unknown-checking proxies
pass through untouched (an unknown value raises, and the pack reports it as not checkable).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lab_guardrails import objects as o

# ---------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Exemption:
    """A workload allowed to run as root or escalate, with the reason it must."""

    namespace: str
    owner: str
    """Glob over the workload's name (or the Helm release's name)."""
    reason: str
    container: str = "*"
    """Glob over the container's name (or its path in the release's values)."""

    def covers(self, container: o.Container) -> bool:
        return (
            container.namespace == self.namespace
            and fnmatch.fnmatchcase(container.owner, self.owner)
            and fnmatch.fnmatchcase(container.name, self.container)
        )


# Only the SPIRE node agent and the SPIFFE CSI driver: both serve or mount the Workload API
# socket on the node, which takes root and a host path; they run in the one namespace whose
# Pod Security level is `privileged`.
ROOT_EXEMPTIONS = (
    # The rendered DaemonSets, and the same workloads' blocks in the SPIRE chart's values.
    Exemption(
        "spire-system",
        "*",
        "the SPIRE agent attests workloads through the node's process table and serves the "
        "Workload API on a host socket directory",
        container="*agent*",
    ),
    Exemption(
        "spire-system",
        "*",
        "the SPIFFE CSI driver mounts the Workload API socket into pods (bidirectional "
        "mount propagation needs a privileged container)",
        container="*csi*",
    ),
    Exemption("spire-server", "*", "values of the SPIRE agent, as above", "spire-agent.*"),
    Exemption("spire-server", "*", "values of the CSI driver, as above", "spiffe-csi-driver.*"),
)

# Namespaces that run upstream platform charts which must accept callers from outside the
# lab's own namespaces; every other namespace the stack creates must deny ingress by default.
PLATFORM_NAMESPACES = {
    "vault": "Vault is called by SPIRE, the IdP and operators",
    "spire-server": "agents on every node and the OIDC discovery route reach the server",
    "spire-system": "the agent's Workload API is a host socket, not a network service",
    "idp": "users and workloads log in and exchange tokens at the IdP",
    "gateway": "the gateway is the lab's front door",
    "aws-emulator": "the emulated AWS APIs answer the lab's services and the host",
}

# Routes that are public by design: logging in, fetching discovery documents, and the demo
# app's pages (the app logs users in itself and calls the API routes with their tokens).
PUBLIC_ROUTE_NAMESPACES = ("idp", "spire-server", "lab-apps")


@dataclass(frozen=True)
class Settings:
    """What the rules accept; the defaults are the lab's bounds."""

    max_access_token_seconds: int = 300
    authz_plugins: tuple[str, ...] = ("lab-authz",)
    """Kong plugin names (the `plugin:` of a KongPlugin) that enforce the lab's authorization."""
    root_exemptions: tuple[Exemption, ...] = ROOT_EXEMPTIONS
    platform_namespaces: Mapping[str, str] = field(default_factory=lambda: PLATFORM_NAMESPACES)
    public_route_namespaces: tuple[str, ...] = PUBLIC_ROUTE_NAMESPACES


DEFAULTS = Settings()


@dataclass(frozen=True)
class Resource:
    """A resource as a stack rule sees it."""

    type: str
    props: Mapping[str, Any]
    urn: str = ""
    name: str = ""


ResourceCheck = Callable[[str, Mapping[str, Any], Settings], list[str]]
StackCheck = Callable[[Sequence[Resource], Settings], list[tuple[str, str]]]


@dataclass(frozen=True)
class Rule:
    name: str
    statement: str
    """The rule, as one sentence."""
    fix: str
    check: Callable[..., Any]
    stack: bool = False

    def message(self, finding: str) -> str:
        return f"{finding}. Rule: {self.statement} Fix: {self.fix}"


@dataclass(frozen=True)
class Violation:
    rule: str
    urn: str
    message: str


# ------------------------------------------------------------------------- literal secrets

_SECRET_WORDS = set(
    "password passwd pwd passphrase secret secrets token tokens apikey credential "
    "credentials privatekey".split()
)
_SECRET_PAIRS = {
    ("api", "key"),
    ("private", "key"),
    ("access", "key"),
    ("secret", "key"),
    ("signing", "key"),
    ("encryption", "key"),
    ("master", "key"),
}
# A last word that makes the name about a secret rather than the secret itself.
_REFERENCE_WORDS = set(
    "file path dir url uri endpoint name ref id ttl seconds lifespan lifetime type header "
    "issuer audience enabled mount kind format algorithm length size timeout mode policy "
    "method source".split()
)
_SECRET_VALUES = (
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+"),  # a signed JWT
    re.compile(r"\b(ghp|gho|github_pat|glpat|xox[bap])[-_][A-Za-z0-9_-]{10,}"),
    re.compile(r"://[^/\s:@]+:[^/\s@]+@"),  # credentials inside a URL
)
# How the offline plan shows a value that was a Pulumi secret.
MASKED = "[secret]"


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def secret_name(name: str) -> bool:
    """Whether a name (env var, config key) says its value is a secret."""
    words = _words(name)
    if not words or words[-1] in _REFERENCE_WORDS:
        return False
    pairs = set(itertools.pairwise(words))
    joined = set(words) | {a + b for a, b in pairs}
    return bool(joined & _SECRET_WORDS or pairs & _SECRET_PAIRS)


def secret_value(value: Any) -> bool:
    """Whether a value looks like key material or a credential whatever its name."""
    if not isinstance(value, str):
        return False
    return value == MASKED or any(p.search(value) for p in _SECRET_VALUES)


def _literal(value: Any) -> bool:
    """A value that could be a secret: a non-empty string that is not a flag, number or path."""
    if not isinstance(value, str):
        return False
    text = value.strip()
    if not text or text.lower() in ("true", "false", "null", "none"):
        return False
    if re.fullmatch(r"[\d.]+[a-z]*", text) or text.startswith(("/", "$(", "${", "file:")):
        return False
    return not re.fullmatch(r"https?://[^@\s]+", text)


# A ConfigMap key with one of these extensions names a file (Lua, config, a CA certificate):
# its name says nothing about its content, which is read for key material and, when it is a
# JSON or YAML document, for secret-named fields instead.
_FILE_KEY = re.compile(
    r"\.(lua|py|js|json|ya?ml|toml|ini|conf|cfg|xml|html?|sh|tpl|txt|crt|hcl|cedar(schema)?|md)$",
    re.IGNORECASE,
)


def _secret_finding(where: str, name: str, value: Any) -> str | None:
    if secret_value(value):
        return f"{where}: {name} holds a literal secret value"
    if secret_name(name) and _literal(value):
        return f"{where}: {name} looks like a secret and is given as a literal value"
    return None


def _document_secrets(where: str, doc: Any) -> list[str]:
    """Secrets inside a document held in a string (a realm export, an application config)."""
    found = []
    for path, key, child in o.walk(doc):
        if isinstance(child, Mapping) or o.is_sequence(child):
            continue
        if secret_value(child) or (secret_name(key) and _literal(child)):
            found.append(f"{where}: {path} holds a literal secret value")
    return found


def no_literal_secrets(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list:
    found: list[str | None] = []
    for container in o.containers_of(resource_type, props):
        for name, value in o.env_pairs(container.spec.get("env")):
            found.append(_secret_finding(f"{container.where} env", name, value))
    kind = o.base_kind(resource_type)
    if kind == "ConfigMap":
        namespace, name = o.metadata(props)
        where = f"ConfigMap {namespace}/{name}"
        for section in ("data", "binaryData"):
            if props.get(section) == MASKED:
                found.append(f"{where}: {section} is a Pulumi secret, so it holds secret values")
        for key, value in o.as_mapping(props.get("data")).items():
            if secret_value(value) or not _FILE_KEY.search(key):
                found.append(_secret_finding(f"{where} data", key, value))
            found += _document_secrets(f"{where} data {key}", o.parse_document(value))
        for key in o.as_mapping(props.get("binaryData")):
            if secret_name(key):
                found.append(f"{where} binaryData: {key} looks like a secret")
    if resource_type == o.HELM_RELEASE:
        namespace, release, values = o.release_of(props)
        for path, name, value in o.values_env(values):
            found.append(_secret_finding(f"Helm release {namespace}/{release} {path}", name, value))
    return [f for f in found if f]


# ------------------------------------------------------------------------------ non-root


def _effective(container: o.Container, key: str) -> Any:
    own = o.get(container.spec, "securityContext", key)
    return own if own is not None else container.pod_security.get(key)


def _exempt(container: o.Container, settings: Settings) -> bool:
    return any(e.covers(container) for e in settings.root_exemptions)


def _context_problems(context: Mapping[str, Any]) -> list[str]:
    """Settings a security context must never carry, wherever it is."""
    problems = []
    if context.get("runAsNonRoot") is False:
        problems.append("runAsNonRoot is false")
    if context.get("runAsUser") == 0:
        problems.append("runAsUser is 0 (root)")
    if context.get("privileged") is True:
        problems.append("privileged is true")
    if context.get("allowPrivilegeEscalation") is True:
        problems.append("allowPrivilegeEscalation is true")
    return problems


def _positive(number: Any) -> bool:
    return isinstance(number, (int, float)) and not isinstance(number, bool) and number > 0


def non_root(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list[str]:
    found = []
    for container in o.containers_of(resource_type, props):
        if _exempt(container, settings):
            continue
        problems = _context_problems(container.pod_security) + _context_problems(
            o.as_mapping(o.get(container.spec, "securityContext"))
        )
        user = _effective(container, "runAsUser")
        if _effective(container, "runAsNonRoot") is not True and not _positive(user):
            problems.append("neither runAsNonRoot: true nor a non-zero runAsUser is set")
        if o.get(container.spec, "securityContext", "allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        found += [f"{container.where}: {p}" for p in dict.fromkeys(problems)]
    if resource_type == o.HELM_RELEASE:
        namespace, release, values = o.release_of(props)
        for path, context in o.values_security_contexts(values):
            spot = o.Container("", {}, namespace, release, path)
            if _exempt(spot, settings):
                continue
            found += [
                f"Helm release {namespace}/{release} values {path}: {p}"
                for p in _context_problems(context)
            ]
    return found


# --------------------------------------------------------------------- requests and limits


def _resource_gaps(resources: Any) -> list[str]:
    gaps = []
    for section in ("requests", "limits"):
        block = o.get(resources, section)
        for quantity in ("cpu", "memory"):
            if not isinstance(block, Mapping) or block.get(quantity) in (None, ""):
                gaps.append(f"{section}.{quantity}")
    return gaps


def requests_and_limits(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list:
    found = []
    for container in o.containers_of(resource_type, props):
        gaps = _resource_gaps(container.spec.get("resources"))
        if gaps:
            found.append(f"{container.where}: resources {', '.join(gaps)} not set")
    if resource_type == o.HELM_RELEASE:
        namespace, release, values = o.release_of(props)
        for path, resources in o.values_resources(values):
            gaps = _resource_gaps(resources)
            if gaps:
                found.append(
                    f"Helm release {namespace}/{release} values {path}: {', '.join(gaps)} not set"
                )
    return found


# ------------------------------------------------------------------------- pinned images

FLOATING_TAGS = {"latest", "main", "master", "stable", "edge", "nightly", "head"}


def image_problem(ref: str) -> str | None:
    """Why an image reference is not pinned, or None when it is (by tag or digest)."""
    if "@sha256:" in ref or re.fullmatch(r"sha256:[0-9a-f]{64}", ref):
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {ref!r} has no tag (it resolves to latest)"
    tag = last.rsplit(":", 1)[1]
    if tag.lower() in FLOATING_TAGS:
        return f"image {ref!r} uses the floating tag {tag!r}"
    return None


def _values_image_problem(image: str | Mapping) -> str | None:
    if isinstance(image, str):
        return image_problem(image)
    if image.get("digest"):
        return None
    # No tag in values means the chart's own appVersion, which the chart version pins.
    tag = str(image.get("tag") or "")
    if tag.lower() in FLOATING_TAGS:
        return f"image {image.get('repository')!r} uses the floating tag {tag!r}"
    return None


_DOCKER_IMAGES = {
    "docker:index/remoteImage:RemoteImage": "name",
    "docker:index/image:Image": "imageName",
    "docker:index/container:Container": "image",
}


def pinned_images(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list:
    found = []
    for container in o.containers_of(resource_type, props):
        image = container.spec.get("image")
        problem = image_problem(str(image)) if image else "no image given"
        if problem:
            found.append(f"{container.where}: {problem}")
    if resource_type == o.HELM_RELEASE:
        namespace, release, values = o.release_of(props)
        for path, image in o.values_images(values):
            problem = _values_image_problem(image)
            if problem:
                found.append(f"Helm release {namespace}/{release} values {path}: {problem}")
    key = _DOCKER_IMAGES.get(resource_type)
    if key and isinstance(props.get(key), str):
        problem = image_problem(props[key])
        if problem:
            found.append(f"{resource_type.rsplit(':', 1)[-1]} {key}: {problem}")
    return found


# -------------------------------------------------------------------- SNS / SQS encryption

SNS_TOPIC = "aws:sns/topic:Topic"
SQS_QUEUE = "aws:sqs/queue:Queue"
SQS_QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
POLICY_STORE = "aws:verifiedpermissions/policyStore:PolicyStore"


def encrypted_messaging(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list:
    if resource_type == SNS_TOPIC and not props.get("kmsMasterKeyId"):
        return [f"SNS topic {props.get('name') or ''}: kmsMasterKeyId is not set".strip()]
    if (
        resource_type == SQS_QUEUE
        and not props.get("kmsMasterKeyId")
        and props.get("sqsManagedSseEnabled") is not True
    ):
        return [
            f"SQS queue {props.get('name') or ''}: neither kmsMasterKeyId nor "
            f"sqsManagedSseEnabled: true is set"
        ]
    return []


# ------------------------------------------------------------------ queue policy source ARN


def _policy_document(policy: Any) -> Mapping[str, Any] | None:
    if isinstance(policy, Mapping):
        return policy
    if isinstance(policy, str) and policy.strip():
        try:
            doc = json.loads(policy)
        except ValueError:
            return None
        return doc if isinstance(doc, Mapping) else None
    return None


def _source_arn_values(condition: Any) -> list[str]:
    values: list[str] = []
    if not isinstance(condition, Mapping):
        return values
    for operator, tests in condition.items():
        if not str(operator).startswith(("ArnEquals", "ArnLike", "StringEquals", "StringLike")):
            continue
        for key, value in o.as_mapping(tests).items():
            if str(key).lower() == "aws:sourcearn":
                values += [str(v) for v in value] if o.is_sequence(value) else [str(value)]
    return values


def queue_policy_source_arn(resource_type: str, props: Mapping[str, Any], settings: Settings):
    if resource_type not in (SQS_QUEUE_POLICY, SQS_QUEUE) or not props.get("policy"):
        return []
    doc = _policy_document(props.get("policy"))
    where = f"queue policy of {props.get('queueUrl') or props.get('name') or 'a queue'}"
    if doc is None:
        return [f"{where}: the policy is not a JSON policy document"]
    statements = doc.get("Statement")
    statements = statements if o.is_sequence(statements) else [statements]
    found = []
    for i, statement in enumerate(statements):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        arns = _source_arn_values(statement.get("Condition"))
        label = statement.get("Sid") or f"#{i}"
        if not arns:
            found.append(f"{where}: Allow statement {label} has no aws:SourceArn condition")
        elif any(a.strip() in ("*", "arn:aws:*") for a in arns):
            found.append(f"{where}: Allow statement {label} matches any source ARN")
    return found


# ------------------------------------------------------------- Verified Permissions STRICT


def verified_permissions_strict(resource_type: str, props: Mapping[str, Any], settings: Settings):
    if resource_type != POLICY_STORE:
        return []
    validation = props.get("validationSettings")
    if o.is_sequence(validation):
        validation = validation[0] if validation else None
    mode = o.get(validation, "mode")
    if mode != "STRICT":
        return [
            f"Verified Permissions policy store {props.get('description') or ''}: "
            f"validation mode is {mode!r}"
        ]
    return []


# ------------------------------------------------------------------ access token lifetimes

# Keycloak's realm, client and realm-export spellings, and SPIRE's JWT-SVID TTLs (a JWT-SVID
# is a bearer credential the IdP accepts in place of a client secret).
_LIFETIME_KEYS = {
    "jwtttl",
    "defaultjwtsvidttl",
    "default_jwt_svid_ttl",
    "accesstokenlifespan",
    "accesstokenlifespanforimplicitflow",
    "access.token.lifespan",
    "access_token_lifespan",
}
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?")


def lifetime_seconds(value: Any) -> float | None:
    """Seconds in a lifetime: a number of seconds, or a Go duration such as "5m0s"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds or 0)


def _lifetimes(where: str, doc: Any, bound: int) -> list[str]:
    found = []
    for path, key, child in o.walk(doc):
        if key.lower() not in _LIFETIME_KEYS or child in (None, ""):
            continue
        seconds = lifetime_seconds(child)
        if seconds is None:
            found.append(f"{where} {path}: {child!r} is not a lifetime in seconds or a duration")
        elif seconds > bound:
            found.append(f"{where} {path}: {child!r} is {seconds:g} s, above {bound} s")
    return found


def token_lifetimes(resource_type: str, props: Mapping[str, Any], settings: Settings) -> list:
    bound = settings.max_access_token_seconds
    if resource_type.startswith("keycloak:"):
        return _lifetimes(resource_type.rsplit(":", 1)[-1], props, bound)
    kind = o.base_kind(resource_type)
    found = []
    if kind in ("ConfigMap", "Secret"):
        namespace, name = o.metadata(props)
        for section in ("data", "stringData"):
            for key, text in o.as_mapping(props.get(section)).items():
                where = f"{kind} {namespace}/{name} {section} {key}"
                found += _lifetimes(where, o.parse_document(text), bound)
    if resource_type == o.HELM_RELEASE:
        namespace, release, values = o.release_of(props)
        where = f"Helm release {namespace}/{release} values"
        found += _lifetimes(where, values, bound)
        for path, _key, child in o.walk(values):
            found += _lifetimes(f"{where} {path}", o.parse_document(child), bound)
    return found


# --------------------------------------------------------------------- gateway route authz

_ROUTE_KINDS = {"Ingress", "HTTPRoute", "GRPCRoute"}
_PLUGINS_ANNOTATION = "konghq.com/plugins"


def _annotations(props: Mapping[str, Any]) -> Mapping[str, Any]:
    found = o.get(props, "metadata", "annotations")
    return found if isinstance(found, Mapping) else {}


def _kube_resources(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    return [(r, o.kind_of(r.type) or "") for r in resources if o.kind_of(r.type)]


def _route_backends(kind: str, props: Mapping[str, Any], namespace: str) -> set[str]:
    """Namespaces a route sends traffic to."""
    if kind == "Ingress":
        return {namespace}
    spaces = set()
    for rule in o.get(props, "spec", "rules") or ():
        for ref in o.get(rule, "backendRefs") or ():
            spaces.add(str(o.get(ref, "namespace") or namespace))
    return spaces or {namespace}


def gateway_route_authz(resources: Sequence[Resource], settings: Settings) -> list:
    kube = _kube_resources(resources)
    wanted = set(settings.authz_plugins)
    # KongPlugin names are namespaced; KongClusterPlugin names are not, and a cluster plugin
    # labelled global applies to every route.
    plugins: dict[tuple[str, str], str] = {}
    global_authz = False
    for resource, kind in kube:
        namespace, name = o.metadata(resource.props)
        plugin = str(resource.props.get("plugin") or "")
        if kind == "KongPlugin":
            plugins[(namespace, name)] = plugin
        elif kind == "KongClusterPlugin":
            plugins[("", name)] = plugin
            labels = o.as_mapping(o.get(resource.props, "metadata", "labels"))
            global_authz |= plugin in wanted and str(labels.get("global")).lower() == "true"
    found = []
    for resource, kind in kube:
        if kind not in _ROUTE_KINDS or global_authz:
            continue
        namespace, name = o.metadata(resource.props)
        if _route_backends(kind, resource.props, namespace) <= set(
            settings.public_route_namespaces
        ):
            continue
        names = [
            n.strip()
            for n in str(_annotations(resource.props).get(_PLUGINS_ANNOTATION) or "").split(",")
            if n.strip()
        ]
        attached = {plugins.get((namespace, n)) or plugins.get(("", n)) for n in names}
        if not attached & wanted:
            found.append(
                (
                    resource.urn,
                    f"{kind} {namespace}/{name}: {_PLUGINS_ANNOTATION}={','.join(names) or '-'} "
                    f"attaches no plugin of type {' or '.join(sorted(wanted))}",
                )
            )
    found += _declarative_routes(resources, wanted)
    return found


def _declarative_routes(resources: Sequence[Resource], wanted: set[str]) -> list:
    """Routes in Kong's DB-less declarative config given as Helm values (dblessConfig)."""
    found = []
    for resource in resources:
        if resource.type != o.HELM_RELEASE:
            continue
        namespace, release, values = o.release_of(resource.props)
        for path, key, child in o.walk(values):
            if key != "dblessConfig":
                continue
            config = o.parse_document(o.get(child, "config")) or o.get(child, "config")
            if not isinstance(config, Mapping):
                continue
            global_names = {str(p.get("name")) for p in config.get("plugins") or ()}
            for service in config.get("services") or ():
                service_names = {str(p.get("name")) for p in service.get("plugins") or ()}
                for route in service.get("routes") or ():
                    names = {str(p.get("name")) for p in route.get("plugins") or ()}
                    if not (names | service_names | global_names) & wanted:
                        found.append(
                            (
                                resource.urn,
                                f"Helm release {namespace}/{release} {path}: route "
                                f"{route.get('name')!r} of service {service.get('name')!r} "
                                f"has no {' or '.join(sorted(wanted))} plugin",
                            )
                        )
    return found


# ----------------------------------------------------------------- NetworkPolicy default deny


def _denies_all_ingress(props: Mapping[str, Any]) -> bool:
    spec = props.get("spec") if isinstance(props.get("spec"), Mapping) else {}
    selector = spec.get("podSelector")
    selects_all = isinstance(selector, Mapping) and not any(
        selector.get(k) for k in ("matchLabels", "matchExpressions")
    )
    types = spec.get("policyTypes") or ()
    return selects_all and "Ingress" in types and not spec.get("ingress")


def namespace_default_deny(resources: Sequence[Resource], settings: Settings) -> list:
    created: dict[str, str] = {}
    denied: set[str] = set()
    for resource in resources:
        kind = o.kind_of(resource.type)
        namespace, name = o.metadata(resource.props)
        if kind == "Namespace" and name:
            created.setdefault(name, resource.urn)
        elif kind == "NetworkPolicy" and _denies_all_ingress(resource.props):
            denied.add(namespace)
        elif resource.type == o.HELM_RELEASE and resource.props.get("createNamespace"):
            created.setdefault(str(resource.props.get("namespace") or ""), resource.urn)
    return [
        (urn, f"namespace {name} has no NetworkPolicy that denies all ingress")
        for name, urn in sorted(created.items())
        if name and name not in denied and name not in settings.platform_namespaces
    ]


# ------------------------------------------------------------------------------ the rules

RESOURCE_RULES: tuple[Rule, ...] = (
    Rule(
        "no-literal-secrets",
        "Container env and ConfigMaps carry no secret values (passwords, tokens, keys, "
        "client secrets); secrets live in Kubernetes Secrets or Vault.",
        "move the value into a Secret and reference it (env valueFrom.secretKeyRef, the "
        "lab-service chart's secretEnv or secretMounts), or mount it from Vault.",
        no_literal_secrets,
    ),
    Rule(
        "containers-non-root",
        "Containers run as a non-root user with allowPrivilegeEscalation: false and are "
        "never privileged; only the documented SPIRE node workloads are exempt.",
        "set securityContext.runAsNonRoot: true (or a non-zero runAsUser) and "
        "allowPrivilegeEscalation: false on the container, and drop privileged.",
        non_root,
    ),
    Rule(
        "requests-and-limits",
        "Every container sets CPU and memory requests and limits.",
        "give resources.requests.cpu/memory and resources.limits.cpu/memory "
        "(size them from the lab's footprint).",
        requests_and_limits,
    ),
    Rule(
        "pinned-images",
        "Images are pinned by a version tag or a digest, never latest or another floating tag.",
        "pin the image in lab/versions.py (a release tag, or @sha256:<digest>) and read it "
        "from PINS.",
        pinned_images,
    ),
    Rule(
        "encrypted-sns-sqs",
        "SNS topics and SQS queues are encrypted at rest.",
        "set kms_master_key_id (for example alias/aws/sns) on topics and kms_master_key_id or "
        "sqs_managed_sse_enabled=True on queues.",
        encrypted_messaging,
    ),
    Rule(
        "queue-policy-source-arn",
        "Every Allow statement of an SQS queue policy is scoped by aws:SourceArn to the "
        "sending resource.",
        'add "Condition": {"ArnEquals": {"aws:SourceArn": "<topic or bus ARN>"}} to the statement.',
        queue_policy_source_arn,
    ),
    Rule(
        "verified-permissions-strict",
        "Verified Permissions policy stores validate policies in STRICT mode against the schema.",
        'set validation_settings={"mode": "STRICT"} on the policy store.',
        verified_permissions_strict,
    ),
    Rule(
        "access-token-lifetime",
        "Access tokens and JWT-SVIDs live at most the lab's bound (300 s unless the pack is "
        "configured lower).",
        "set the realm's and each client's access token lifespan, and SPIRE's JWT-SVID TTLs, "
        "to at most the bound (identity-lab:accessTokenSeconds and jwtSvidSeconds are capped "
        "at 300).",
        token_lifetimes,
    ),
)

STACK_RULES: tuple[Rule, ...] = (
    Rule(
        "gateway-route-authz",
        "Every gateway route to a model or a service carries the lab's authorization plugin.",
        "attach the authorization KongPlugin with the konghq.com/plugins annotation (or the "
        "route's plugins in the declarative config).",
        gateway_route_authz,
        stack=True,
    ),
    Rule(
        "namespace-default-deny",
        "Every lab namespace has a NetworkPolicy that selects all pods and denies all ingress; "
        "only the documented platform namespaces are exempt.",
        "create the namespace through components/namespaces.py and list it in DEFAULT_DENY.",
        namespace_default_deny,
        stack=True,
    ),
)


def check_resources(
    resources: Iterable[Resource], settings: Settings = DEFAULTS
) -> list[Violation]:
    """Every rule over every resource, then the stack rules over all of them."""
    resources = list(resources)
    found = []
    for resource in resources:
        for rule in RESOURCE_RULES:
            for finding in rule.check(resource.type, resource.props, settings):
                found.append(Violation(rule.name, resource.urn, rule.message(finding)))
    for rule in STACK_RULES:
        for urn, finding in rule.check(resources, settings):
            found.append(Violation(rule.name, urn, rule.message(finding)))
    return found


def rendered_resources(
    objects: Iterable[Mapping[str, Any]], namespace: str, origin: str = ""
) -> list[Resource]:
    """Rendered chart objects as resources (namespace filled in as Helm would)."""
    found = []
    for obj in objects:
        props = dict(obj)
        meta = dict(props.get("metadata") or {})
        meta.setdefault("namespace", namespace)
        props["metadata"] = meta
        found.append(
            Resource(
                o.kube_type(obj),
                props,
                urn=f"{origin}$rendered:{obj.get('kind')}/{meta.get('name')}",
                name=str(meta.get("name") or ""),
            )
        )
    return found
