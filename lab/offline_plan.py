"""Run the real program on a stack's real config under Pulumi's mocks: no CLI, cluster or cloud.

    python -m lab.offline_plan dev                 # print the resource tree
    python -m lab.offline_plan dev --json plan.json # also write every input, secrets masked
    python -m lab.offline_plan aws --config identity-lab:gpu=true

It is how a user reviews what `pulumi up` would create, and how the tests see the whole lab.
The plan never touches Docker (checkPrerequisites is off) and cannot decrypt `secure:` values;
give those with --config instead. Bad config exits with status 2 and the loader's message.
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from lab.mocks import LabMocks, RecordingMonitor, mask_secrets
from lab.settings import PROJECT, SettingsError

ROOT = Path(__file__).resolve().parent.parent


class PlanError(RuntimeError):
    """The stack cannot be planned (missing stack file, undecryptable secret)."""


@dataclass
class Plan:
    """Every resource the program registers, with its inputs, parent and dependencies."""

    stack: str
    resources: list[dict[str, Any]]
    outputs: dict[str, Any]
    secret_outputs: list[str] = field(default_factory=list)
    secret_values: set[str] = field(default_factory=set, repr=False)
    """Every secret string the mocks saw (never written out): tests look for leaks with it."""

    def by_urn(self) -> dict[str, dict[str, Any]]:
        return {r["urn"]: r for r in self.resources}

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["type"] == type_]

    def one(self, type_: str, name: str | None = None) -> dict[str, Any]:
        found = [r for r in self.of_type(type_) if name is None or r["name"] == name]
        if len(found) != 1:
            names = [r["name"] for r in self.of_type(type_)]
            raise AssertionError(f"expected one {type_} named {name!r}, found {names}")
        return found[0]

    def children(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in self.resources if r["parent"] == parent["urn"]]

    def descendants(self, parent: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for child in self.children(parent):
            out += [child, *self.descendants(child)]
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "project": PROJECT,
            "stack": self.stack,
            "resourceCount": len(self.resources),
            "resources": self.resources,
            "outputs": self.outputs,
            "secretOutputs": self.secret_outputs,
        }


def stack_config(stack: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The stack file's config as the CLI hands it to the program: full keys to strings."""
    path = ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))
        raise PlanError(f"no stack file {path.name}; stacks here: {', '.join(known)}")
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise PlanError(f"{path.name} is not valid YAML: {err}") from None
    raw = document.get("config", {}) if isinstance(document, dict) else None
    if not isinstance(raw, dict):
        raise PlanError(
            f"{path.name}: expected a mapping with a `config:` mapping of keys to values, "
            "as `pulumi config set` writes it"
        )
    values = dict(overrides or {})
    for key, value in raw.items():
        if key in values:
            continue
        if isinstance(value, dict) and "secure" in value:
            raise PlanError(
                f"{path.name}: {key} is encrypted and the offline plan cannot decrypt it; "
                f"give a stand-in with --config {key}=..."
            )
        if isinstance(value, bool):
            values[key] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            values[key] = json.dumps(value)
        else:
            values[key] = str(value)
    return values


def run_plan(
    stack: str,
    overrides: dict[str, str] | None = None,
    secret_keys: set[str] | frozenset[str] = frozenset(),
    program: Path = ROOT / "__main__.py",
) -> Plan:
    """Run `program` under mocks with the stack's config; raise SettingsError on bad config."""
    config = stack_config(stack, overrides)
    config.setdefault(f"{PROJECT}:checkPrerequisites", "false")

    mocks = LabMocks()
    runtime_settings.ROOT.set(None)
    pulumi.runtime.set_mocks(
        mocks, project=PROJECT, stack=stack, preview=False, monitor=RecordingMonitor(mocks)
    )
    pulumi.runtime.set_all_config(config, sorted(secret_keys))
    runtime_settings.SETTINGS.rpc_manager.clear()
    runtime_settings.SETTINGS.outputs.clear()

    explicit: dict[int, tuple[str, str]] = {}
    depends: list[tuple[str, str, list[int]]] = []

    def record(args: pulumi.ResourceTransformationArgs):
        explicit[id(args.resource)] = (args.type_, args.name)
        if args.opts and args.opts.depends_on:
            items = args.opts.depends_on
            items = items if isinstance(items, list) else [items]
            depends.append((args.type_, args.name, [id(r) for r in items]))
        return None

    def main():
        pulumi.runtime.register_stack_transformation(record)
        runpy.run_path(str(program), run_name="__main__")

    _sync_await(run_pulumi_func(main))

    by_key = {(r["type"], r["name"]): r for r in mocks.records.values() if "type" in r}
    for record_ in mocks.records.values():
        record_["dependsOn"] = []
    for type_, name, targets in depends:
        resource = by_key[(type_, name)]
        for target in targets:
            if target in explicit:
                resource["dependsOn"].append(by_key[explicit[target]]["urn"])

    outputs, secret_outputs = _exports()
    resources = [_shaped(r) for r in mocks.records.values() if "type" in r]
    return Plan(stack, resources, outputs, secret_outputs, mocks.secret_values)


def _shaped(record: dict[str, Any]) -> dict[str, Any]:
    order = (
        "urn",
        "type",
        "name",
        "parent",
        "custom",
        "provider",
        "dependsOn",
        "dependencies",
        "inputs",
        "secretInputs",
    )
    return {k: record.get(k) for k in order}


def _exports() -> tuple[dict[str, Any], list[str]]:
    root = runtime_settings.get_root_resource()
    outputs: dict[str, Any] = {}
    secret: list[str] = []
    for name, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        if _sync_await(output.is_secret()):
            secret.append(name)
            outputs[name] = "[secret]"
        else:
            outputs[name] = mask_secrets(_sync_await(output.future()))
    return outputs, secret


def _dependency_names(plan: Plan, urns: list[str]) -> str:
    """Dependencies by name; several inside one other component read as that component."""
    by_urn = plan.by_urn()

    def top(urn: str) -> str:
        while by_urn[urn]["parent"] in by_urn:
            urn = by_urn[urn]["parent"]
        return urn

    groups: dict[str, list[str]] = {}
    for urn in urns:
        groups.setdefault(top(urn), []).append(urn)
    names = []
    for head, members in groups.items():
        if len(members) > 2 and head not in members:
            names.append(f"{by_urn[head]['name']} ({len(members)} resources)")
        else:
            names += [by_urn[m]["name"] for m in members]
    return ", ".join(names)


def render_tree(plan: Plan) -> str:
    """The resource tree: type and name, nested under parents, with explicit dependencies."""
    by_urn = plan.by_urn()
    lines = [f"{PROJECT} ({plan.stack}): {len(plan.resources)} resources"]

    def walk(parent: str | None, indent: str) -> None:
        kids = [
            r for r in plan.resources if (r["parent"] if r["parent"] in by_urn else None) == parent
        ]
        for i, r in enumerate(kids):
            last = i == len(kids) - 1
            deps = _dependency_names(plan, r["dependsOn"])
            after = f"  (after {deps})" if deps else ""
            lines.append(f"{indent}{'└─' if last else '├─'} {r['type']}  {r['name']}{after}")
            walk(r["urn"], indent + ("   " if last else "│  "))

    walk(None, "")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.offline_plan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("stack", help="stack name: Pulumi.<stack>.yaml is read")
    parser.add_argument("--json", type=Path, help="write the plan as JSON to this file")
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (full key, such as identity-lab:gpu=true)",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="KEY",
        help="treat this --config key as a secret",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    args = parser.parse_args(argv)

    overrides = {}
    for item in args.config:
        key, sep, value = item.partition("=")
        if not sep or ":" not in key:
            parser.error(f"--config {item!r}: expected namespace:key=value")
        overrides[key] = value
    try:
        plan = run_plan(args.stack, overrides, set(args.secret))
    except (SettingsError, PlanError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    tree = render_tree(plan)
    print(tree.splitlines()[0] if args.quiet else tree)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(plan.to_json(), indent=2, sort_keys=False) + "\n")
        print(f"plan written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
