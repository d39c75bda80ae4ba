"""The decision service's settings, read from its environment and checked at start.

The component sets these from the stack's config (issuer, lifetimes, trust domain) and mounts
the key and policy files; a bad value stops the service before it serves, with a message that
names the variable and the fix.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("local", "verified-permissions")
MIN_ADMIN_TOKEN = 32


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and what is allowed."""


@dataclass(frozen=True)
class Config:
    issuer: str
    """`iss` of every token, compared byte for byte."""
    keys_dir: Path
    """Folder of PEM files (SPKI public keys or certificates) that verify tokens."""
    policy_dir: Path
    """Folder with schema.cedarschema.json and the *.cedar policies."""
    trust_domain: str
    admin_token: str = field(repr=False)
    deny_list_path: Path
    backend: str = "local"
    policy_store_id: str | None = None
    policy_ids: Mapping[str, str] = field(default_factory=dict)
    """Verified Permissions policy id -> the policy's @id."""
    aws_region: str | None = None
    service_targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    clock_skew: int = 30
    consent_max_age: int = 300
    deny_list_retention: int = 360
    max_token_lifetime: int = 300
    max_delegated_token_lifetime: int = 300
    max_token_bytes: int = 8192
    host: str = "127.0.0.1"
    port: int = 8080

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        problems: list[str] = []

        def text(name: str, default: str | None = None) -> str:
            value = env.get(name, default)
            if value is None or not value.strip():
                problems.append(f"{name}: missing")
                return ""
            return value

        def number(name: str, default: int, low: int, high: int) -> int:
            raw = env.get(name)
            if raw is None:
                return default
            if not raw.strip().isdigit() or not low <= int(raw) <= high:
                problems.append(f"{name}={raw!r}: allowed {low} to {high}")
                return default
            return int(raw)

        def mapping(name: str) -> dict:
            raw = env.get(name)
            if not raw:
                return {}
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as err:
                problems.append(f"{name}: not JSON ({err})")
                return {}
            if not isinstance(value, dict):
                problems.append(f"{name}: expected a JSON object")
                return {}
            return value

        backend = env.get("DECISION_BACKEND", "local")
        if backend not in BACKENDS:
            problems.append(f"DECISION_BACKEND={backend!r}: allowed {', '.join(BACKENDS)}")
        admin_token = text("DECISION_ADMIN_TOKEN")
        if admin_token and len(admin_token) < MIN_ADMIN_TOKEN:
            problems.append(f"DECISION_ADMIN_TOKEN: at least {MIN_ADMIN_TOKEN} characters")
        targets = mapping("DECISION_SERVICE_TARGETS")
        if not all(
            isinstance(v, list) and all(isinstance(t, str) for t in v) for v in targets.values()
        ):
            problems.append("DECISION_SERVICE_TARGETS: expected {caller SPIFFE ID: [target, ...]}")
        store = env.get("DECISION_POLICY_STORE_ID") or None
        if backend == "verified-permissions" and store is None:
            problems.append("DECISION_POLICY_STORE_ID: missing; required by verified-permissions")
        config = cls(
            issuer=text("DECISION_ISSUER"),
            keys_dir=Path(text("DECISION_KEYS_DIR")),
            policy_dir=Path(text("DECISION_POLICY_DIR")),
            trust_domain=text("DECISION_TRUST_DOMAIN"),
            admin_token=admin_token,
            deny_list_path=Path(text("DECISION_DENY_LIST_PATH")),
            backend=backend,
            policy_store_id=store,
            policy_ids=mapping("DECISION_POLICY_IDS"),
            aws_region=env.get("AWS_REGION") or None,
            service_targets={k: tuple(v) for k, v in targets.items() if isinstance(v, list)},
            clock_skew=number("DECISION_CLOCK_SKEW_SECONDS", 30, 0, 120),
            consent_max_age=number("DECISION_CONSENT_MAX_AGE_SECONDS", 300, 1, 3600),
            deny_list_retention=number("DECISION_DENY_LIST_RETENTION_SECONDS", 360, 1, 86400),
            max_token_lifetime=number("DECISION_MAX_TOKEN_LIFETIME_SECONDS", 300, 1, 3600),
            max_delegated_token_lifetime=number(
                "DECISION_MAX_DELEGATED_TOKEN_LIFETIME_SECONDS", 300, 1, 3600
            ),
            max_token_bytes=number("DECISION_MAX_TOKEN_BYTES", 8192, 512, 65536),
            host=env.get("DECISION_HOST", "127.0.0.1"),
            port=number("PORT", 8080, 1, 65535),
        )
        if problems:
            lines = "\n".join(f"  - {p}" for p in problems)
            raise ConfigError(f"the decision service's environment has problems:\n{lines}")
        return config
