"""Vault ACL policies as data: read the lab's HCL files and answer "may this policy do that?".

The component uploads `policies/vault/<consumer>.hcl` verbatim; the tests ask `allows` which
capabilities a policy grants on a request path, with the matching rules Vault documents for
ACL paths:

- a path without wildcards matches only itself;
- `*` is allowed only at the end and matches any suffix (including further `/` segments);
- `+` stands for exactly one whole path segment;
- when several rules match, the most specific one alone decides (Vault's priority order:
  later first wildcard, no trailing glob, fewer `+` segments, longer, lexically greater);
- `deny` in the deciding rule refuses everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cmp_to_key
from pathlib import Path

import hcl2
from lark.exceptions import LarkError

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policies" / "vault"

CAPABILITIES = frozenset(
    {"create", "read", "update", "patch", "delete", "list", "sudo", "deny", "subscribe"}
)


class PolicyError(ValueError):
    """A policy file that Vault would refuse or that the lab's rules forbid."""


@dataclass(frozen=True)
class Rule:
    path: str
    capabilities: frozenset[str]

    @property
    def glob(self) -> bool:
        return self.path.endswith("*")

    @property
    def segments(self) -> list[str]:
        return (self.path[:-1] if self.glob else self.path).split("/")

    @property
    def first_wildcard(self) -> int:
        """Index of the first `+` or `*`; the path's length when it has neither."""
        positions = [i for i, c in enumerate(self.path) if c in "+*"]
        return positions[0] if positions else len(self.path)

    @property
    def plus_count(self) -> int:
        return self.segments.count("+")

    def matches(self, request: str) -> bool:
        pattern = self.segments
        if self.glob:
            # The glob swallows the rest of the last segment and everything after it.
            head, tail = pattern[:-1], pattern[-1]
            parts = request.split("/", len(head))
            if len(parts) <= len(head):
                return False
            fixed, rest = parts[: len(head)], parts[len(head)]
            return _segments_match(head, fixed) and rest.startswith(tail)
        return _segments_match(pattern, request.split("/"))


def _segments_match(pattern: list[str], parts: list[str]) -> bool:
    return len(pattern) == len(parts) and all(
        (p == "+" and q != "") or p == q for p, q in zip(pattern, parts, strict=True)
    )


def _compare(a: Rule, b: Rule) -> int:
    """Negative when `a` has lower priority than `b` (Vault's documented order)."""
    if a.first_wildcard != b.first_wildcard:
        return -1 if a.first_wildcard < b.first_wildcard else 1
    if a.glob != b.glob:
        return -1 if a.glob else 1
    if a.plus_count != b.plus_count:
        return -1 if a.plus_count > b.plus_count else 1
    if len(a.path) != len(b.path):
        return -1 if len(a.path) < len(b.path) else 1
    if a.path != b.path:
        return -1 if a.path < b.path else 1
    return 0


@dataclass(frozen=True)
class Policy:
    name: str
    text: str
    rules: tuple[Rule, ...]

    def deciding_rule(self, request: str) -> Rule | None:
        found = [r for r in self.rules if r.matches(request)]
        return max(found, key=cmp_to_key(_compare)) if found else None

    def capabilities(self, request: str) -> frozenset[str]:
        rule = self.deciding_rule(request)
        if rule is None or "deny" in rule.capabilities:
            return frozenset()
        return rule.capabilities

    def allows(self, request: str, capability: str) -> bool:
        return capability in self.capabilities(request)


def _unquote(value: str) -> str:
    # python-hcl2 keeps the quotes of string literals.
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse_policy(name: str, text: str) -> Policy:
    """Parse one policy's HCL; raise PolicyError naming the file and the bad rule."""
    try:
        tree = hcl2.loads(text)
    except LarkError as err:
        raise PolicyError(f"policies/vault/{name}.hcl: not valid HCL ({err})") from None
    # python-hcl2 reports comments and block markers under "__"-prefixed keys.
    unknown = sorted(k for k in tree if k != "path" and not k.startswith("__"))
    if unknown:
        raise PolicyError(f"policies/vault/{name}.hcl: only `path` blocks are allowed: {unknown}")
    rules = []
    for block in tree.get("path", []):
        for raw_path, body in block.items():
            path = _unquote(raw_path)
            if "*" in path[:-1]:
                raise PolicyError(
                    f"policies/vault/{name}.hcl: {path!r}: '*' is only allowed at the end"
                )
            caps = frozenset(_unquote(c) for c in body.get("capabilities", []))
            extra = sorted(k for k in body if k != "capabilities" and not k.startswith("__"))
            if not caps or not caps <= CAPABILITIES or extra:
                raise PolicyError(
                    f"policies/vault/{name}.hcl: {path!r}: give capabilities from "
                    f"{sorted(CAPABILITIES)} and nothing else (got {sorted(caps)}, {extra})"
                )
            rules.append(Rule(path, caps))
    if not rules:
        raise PolicyError(f"policies/vault/{name}.hcl: no path rules")
    return Policy(name, text, tuple(rules))


def load_policy(name: str, folder: Path = POLICY_DIR) -> Policy:
    path = folder / f"{name}.hcl"
    if not path.exists():
        raise PolicyError(f"no policy file {path.relative_to(ROOT)} for Vault consumer {name!r}")
    return parse_policy(name, path.read_text())


def policy_names(folder: Path = POLICY_DIR) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.hcl"))
