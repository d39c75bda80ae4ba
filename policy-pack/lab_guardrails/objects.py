"""Where the rules look: containers in Kubernetes objects, and the same shapes in Helm values.

A Kubernetes object is read whole. A Helm release's values only override a chart's defaults,
so they are walked for the shapes charts conventionally accept (container lists,
`securityContext`, `resources`, `image`, `env`); what a chart does by default is not visible
here (the test suite renders the lab's own chart to see that).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

# Where the pod spec sits in each workload kind.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")

# Helm value keys that hold container lists, security contexts and env lists by convention.
_VALUES_CONTAINERS = re.compile(r"^(init|extra|sidecar|extraInit)?containers$", re.IGNORECASE)
_VALUES_SECURITY = re.compile(r"securitycontext$", re.IGNORECASE)
_VALUES_ENV = re.compile(r"^(extra)?env(vars)?$", re.IGNORECASE)
_VALUES_IMAGE = re.compile(r"(^|[a-z])image$", re.IGNORECASE)
_RESOURCE_KEYS = {"requests", "limits", "claims"}


def is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def as_mapping(value: Any) -> Mapping[str, Any]:
    """value if it is a mapping, else an empty one (a masked or missing section)."""
    return value if isinstance(value, Mapping) else {}


def get(value: Any, *path: str) -> Any:
    """value[path[0]][path[1]]..., or None where a step is missing or not a mapping."""
    for step in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


def kind_of(resource_type: str) -> str | None:
    """`kubernetes:apps/v1:Deployment` -> `Deployment`; None for anything not Kubernetes."""
    if not resource_type.startswith("kubernetes:") or resource_type == HELM_RELEASE:
        return None
    return resource_type.rsplit(":", 1)[-1]


def base_kind(resource_type: str) -> str | None:
    """The kind a resource writes to: `ConfigMapPatch` writes into a `ConfigMap`."""
    kind = kind_of(resource_type)
    return kind.removesuffix("Patch") if kind else None


def kube_type(obj: Mapping[str, Any]) -> str:
    """The Pulumi type token of a Kubernetes object as a chart renders it."""
    api_version = str(obj.get("apiVersion", "v1"))
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{obj.get('kind')}"


def metadata(props: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of a Kubernetes object; "" for what is not set."""
    meta = props.get("metadata") if isinstance(props, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


@dataclass(frozen=True)
class Container:
    """One container spec, and where it came from (for messages and exemptions)."""

    where: str
    """Human-readable location, such as `Deployment lab-system/decision container decision`."""
    spec: Mapping[str, Any]
    namespace: str
    owner: str
    """The workload's or the Helm release's name."""
    name: str
    """The container's name, or its values path for a container found in Helm values."""
    pod_security: Mapping[str, Any] = field(default_factory=dict)


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(kind_of(resource_type) or "")
    spec = get(props, *path) if path else None
    return spec if isinstance(spec, Mapping) else None


def containers_of(resource_type: str, props: Mapping[str, Any]) -> list[Container]:
    """Every container of a Kubernetes workload, or of the container lists in Helm values."""
    if resource_type == HELM_RELEASE:
        return list(_values_containers(props))
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    namespace, name = metadata(props)
    pod_security = spec.get("securityContext") if isinstance(spec, Mapping) else None
    found = []
    for listing in CONTAINER_LISTS:
        for container in spec.get(listing) or ():
            if isinstance(container, Mapping):
                cname = str(container.get("name") or "?")
                found.append(
                    Container(
                        where=f"{kind_of(resource_type)} {namespace}/{name} container {cname}",
                        spec=container,
                        namespace=namespace,
                        owner=name,
                        name=cname,
                        pod_security=pod_security if isinstance(pod_security, Mapping) else {},
                    )
                )
    return found


def release_of(props: Mapping[str, Any]) -> tuple[str, str, Mapping[str, Any]]:
    """(namespace, name, values) of a Helm release."""
    values = props.get("values")
    return (
        str(props.get("namespace") or ""),
        str(props.get("name") or ""),
        values if isinstance(values, Mapping) else {},
    )


def walk(value: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, child) for every mapping entry below value, depth first."""
    if isinstance(value, Mapping):
        for key, child in value.items():
            child_path = f"{path}.{key}" if path else str(key)
            yield child_path, str(key), child
            yield from walk(child, child_path)
    elif is_sequence(value):
        for i, child in enumerate(value):
            yield from walk(child, f"{path}[{i}]")


def _values_containers(props: Mapping[str, Any]) -> Iterator[Container]:
    namespace, release, values = release_of(props)
    for path, key, child in walk(values):
        if not _VALUES_CONTAINERS.match(key) or not is_sequence(child):
            continue
        for i, container in enumerate(child):
            if isinstance(container, Mapping):
                yield Container(
                    where=f"Helm release {namespace}/{release} values {path}[{i}]",
                    spec=container,
                    namespace=namespace,
                    owner=release,
                    name=f"{path}[{i}]",
                )


def values_security_contexts(values: Mapping[str, Any]) -> Iterator[tuple[str, Mapping]]:
    for path, key, child in walk(values):
        if _VALUES_SECURITY.search(key) and isinstance(child, Mapping):
            yield path, child


def values_resources(values: Mapping[str, Any]) -> Iterator[tuple[str, Mapping]]:
    """`resources` blocks that are Kubernetes resource requirements (empty ones included)."""
    for path, key, child in walk(values):
        if key == "resources" and isinstance(child, Mapping) and set(child) <= _RESOURCE_KEYS:
            yield path, child


def values_images(values: Mapping[str, Any]) -> Iterator[tuple[str, str | Mapping]]:
    """Image references in values: a string, or a mapping with repository/tag/digest."""
    for path, key, child in walk(values):
        if not _VALUES_IMAGE.search(key):
            continue
        if isinstance(child, str) and child and not any(c.isspace() for c in child):
            yield path, child
        elif isinstance(child, Mapping) and ({"repository", "tag", "digest"} & set(child)):
            yield path, child


def env_pairs(env: Any) -> Iterator[tuple[str, Any]]:
    """(name, literal value) from a Kubernetes env list or a NAME: value mapping."""
    if is_sequence(env):
        for item in env:
            if isinstance(item, Mapping) and "name" in item and "value" in item:
                yield str(item["name"]), item["value"]
    elif isinstance(env, Mapping):
        for name, value in env.items():
            if not isinstance(value, (Mapping, list)):
                yield str(name), value


def values_env(values: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for path, key, child in walk(values):
        if _VALUES_ENV.match(key):
            # Some charts (keycloakx) take env as a YAML string they template.
            for name, value in env_pairs(parse_document(child) or child):
                yield path, name, value


def parse_document(text: Any) -> Any:
    """A JSON or YAML document held in a string (a realm export, a config file), else None."""
    if not isinstance(text, str) or ("\n" not in text and not text.lstrip().startswith("{")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return doc if isinstance(doc, (Mapping, list)) else None
