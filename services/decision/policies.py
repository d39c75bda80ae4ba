"""The Cedar schema and policies, read from one folder and checked before the service serves.

The folder is flat (a ConfigMap mounts it so): `schema.cedarschema.json` and one `*.cedar`
file per policy, each with an `@id` annotation equal to its file name. The repo's
policies/cedar/ has the same shape, so tests, the service and the policy store read the
same files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import cedarpy

SCHEMA_FILE = "schema.cedarschema.json"
NAMESPACE = "IdentityLab"

_ID = re.compile(r'^\s*@id\("([a-z0-9-]+)"\)', re.MULTILINE)


class PolicyError(ValueError):
    """The policy folder is unusable; the message names the file and the fix."""


@dataclass(frozen=True)
class PolicyBundle:
    """The schema and policies as text, plus the handles cedarpy evaluates with."""

    schema_json: str
    policies: dict[str, str]
    """Policy id (its @id) -> policy text, in file-name order."""
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema

    @property
    def text(self) -> str:
        return "\n".join(self.policies.values())

    @property
    def action_entities(self) -> list[dict]:
        """The schema's actions as entities, with their groups (such as "sensitive").

        cedarpy takes action groups from the schema when it is given one; a request decided
        without the schema must carry them as entities, or `action in ...` never matches.
        """
        actions = json.loads(self.schema_json)[NAMESPACE].get("actions", {})
        kind = f"{NAMESPACE}::Action"
        return [
            {
                "uid": {"type": kind, "id": name},
                "attrs": {},
                "parents": [
                    {"type": parent.get("type", kind), "id": parent["id"]}
                    for parent in spec.get("memberOf", [])
                ],
            }
            for name, spec in actions.items()
        ]


def policy_id(path: Path, text: str) -> str:
    """The policy's @id, which must be single and match the file name."""
    found = _ID.findall(text)
    if len(found) != 1:
        raise PolicyError(
            f"{path}: expected exactly one @id(\"...\") annotation (lower-case, digits, '-'), "
            f"found {len(found)}; put one policy per file"
        )
    if found[0] != path.stem:
        raise PolicyError(f"{path}: @id({found[0]!r}) must equal the file name {path.stem!r}")
    return found[0]


def load_bundle(folder: Path) -> PolicyBundle:
    """Read and strictly validate the folder; raise PolicyError with every problem."""
    schema_path = folder / SCHEMA_FILE
    if not schema_path.is_file():
        raise PolicyError(f"{folder}: no {SCHEMA_FILE}; mount the policy ConfigMap here")
    schema_json = schema_path.read_text()
    try:
        namespaces = list(json.loads(schema_json))
    except json.JSONDecodeError as err:
        raise PolicyError(f"{schema_path}: not JSON ({err})") from None
    if namespaces != [NAMESPACE]:
        raise PolicyError(
            f"{schema_path}: expected the one namespace {NAMESPACE}, got {namespaces}"
        )

    policies: dict[str, str] = {}
    for path in sorted(folder.glob("*.cedar")):
        text = path.read_text()
        policies[policy_id(path, text)] = text
    if not policies:
        raise PolicyError(f"{folder}: no *.cedar policy files")

    try:
        schema = cedarpy.Schema.from_json_str(schema_json)
        policy_set = cedarpy.PolicySet.from_str("\n".join(policies.values()))
    except ValueError as err:
        raise PolicyError(f"{folder}: Cedar cannot parse the schema or a policy: {err}") from None
    result = cedarpy.validate_policies("\n".join(policies.values()), schema)
    if not result.validation_passed:
        names = result.id_annotations_by_policy_id
        problems = "; ".join(
            f"{names.get(e.policy_id, e.policy_id)}: {e.error}" for e in result.errors
        )
        raise PolicyError(
            f"{folder}: policies fail strict validation against the schema: {problems}"
        )
    return PolicyBundle(schema_json, policies, policy_set, schema)
