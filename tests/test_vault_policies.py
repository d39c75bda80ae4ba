"""Vault policies: every HCL file parses, and grants exactly what its consumer needs."""

from __future__ import annotations

import pytest

from components.vault_config import (
    DEFAULT_CONSUMERS,
    KV_MOUNT,
    LAB_TLS_ROLE,
    PKI_MOUNT,
)
from lab.vault_acl import PolicyError, load_policy, parse_policy, policy_names

# (consumer, request path, capability, allowed?) - the paths each consumer needs, and the
# neighbouring paths it must never reach.
TABLE = [
    ("spire-server", f"{PKI_MOUNT}/root/sign-intermediate", "update", True),
    ("spire-server", f"{PKI_MOUNT}/root/sign-intermediate", "read", False),
    ("spire-server", f"{PKI_MOUNT}/issue/{LAB_TLS_ROLE}", "update", False),
    ("spire-server", f"{PKI_MOUNT}/sign-verbatim", "update", False),
    ("spire-server", f"{PKI_MOUNT}/root/generate/internal", "update", False),
    ("spire-server", f"{PKI_MOUNT}/config/ca", "update", False),
    ("spire-server", f"{KV_MOUNT}/data/lab-system/revocation-admin", "read", False),
    ("spire-server", "sys/policy/spire-server", "update", False),
    ("demo-app", f"{KV_MOUNT}/data/lab-apps/demo-app/oidc", "read", True),
    ("demo-app", f"{KV_MOUNT}/data/lab-apps/demo-app/oidc", "update", False),
    ("demo-app", f"{KV_MOUNT}/data/lab-apps/demo-app/oidc", "delete", False),
    ("demo-app", f"{KV_MOUNT}/metadata/lab-apps/demo-app/oidc", "list", False),
    ("demo-app", f"{KV_MOUNT}/data/lab-apps/demo-app-2/oidc", "read", False),
    ("demo-app", f"{KV_MOUNT}/data/lab-system/revocation-admin", "read", False),
    ("demo-app", f"{PKI_MOUNT}/issue/{LAB_TLS_ROLE}", "update", False),
    ("decision-service", f"{KV_MOUNT}/data/lab-system/revocation-admin", "read", True),
    ("decision-service", f"{KV_MOUNT}/data/lab-system/revocation-admin", "update", False),
    ("decision-service", f"{KV_MOUNT}/data/lab-system/revocation-admin-2", "read", False),
    ("decision-service", f"{KV_MOUNT}/data/lab-apps/demo-app/oidc", "read", False),
    ("decision-service", f"{KV_MOUNT}/metadata/lab-system/revocation-admin", "delete", False),
    ("decision-service", f"{PKI_MOUNT}/issue/{LAB_TLS_ROLE}", "update", False),
    ("caep-receiver", f"{KV_MOUNT}/data/lab-system/revocation-admin", "read", True),
    ("caep-receiver", f"{KV_MOUNT}/data/lab-system/revocation-admin", "update", False),
    ("caep-receiver", f"{KV_MOUNT}/data/lab-apps/demo-app/oidc", "read", False),
    ("caep-receiver", "auth/token/create", "update", False),
    ("caep-receiver", f"{PKI_MOUNT}/issue/{LAB_TLS_ROLE}", "update", False),
]


def test_every_consumer_has_exactly_one_policy_file():
    assert policy_names() == sorted(c.name for c in DEFAULT_CONSUMERS)


def test_no_workload_may_issue_lab_tls_certificates():
    # Endpoint certificates are issued by the deployment (the provider's token), so no
    # workload's service account can mint a certificate for a lab host name.
    for consumer in DEFAULT_CONSUMERS:
        policy = load_policy(consumer.name)
        assert not policy.allows(f"{PKI_MOUNT}/issue/{LAB_TLS_ROLE}", "update"), consumer.name
        assert not policy.allows(f"{PKI_MOUNT}/sign/{LAB_TLS_ROLE}", "update"), consumer.name


@pytest.mark.parametrize("name", [c.name for c in DEFAULT_CONSUMERS])
def test_every_policy_parses_and_reaches_only_lab_mounts(name):
    policy = load_policy(name)
    for rule in policy.rules:
        assert rule.path.split("/")[0] in {PKI_MOUNT, KV_MOUNT}, rule.path
        assert not ({"sudo", "deny", "delete", "list"} & rule.capabilities), rule
        assert not rule.path.endswith("/*") or rule.path.startswith(f"{KV_MOUNT}/data/")


@pytest.mark.parametrize(("consumer", "path", "capability", "allowed"), TABLE)
def test_policy_table(consumer, path, capability, allowed):
    assert load_policy(consumer).allows(path, capability) is allowed


def test_the_table_covers_every_rule_of_every_policy():
    granted = {(c, p) for c, p, _, allowed in TABLE if allowed}
    for consumer in DEFAULT_CONSUMERS:
        policy = load_policy(consumer.name)
        for rule in policy.rules:
            assert any(c == consumer.name and rule.matches(p) for c, p in granted), (
                f"{consumer.name}: rule {rule.path} is not exercised by the table"
            )


# The matcher itself, on the cases Vault's documentation spells out.
MATCHER = """
path "secret/*" { capabilities = ["read"] }
path "secret/super-secret" { capabilities = ["deny"] }
path "secret/+/teams" { capabilities = ["list"] }
path "secret/foo" { capabilities = ["update"] }
path "secret/foo*" { capabilities = ["create"] }
"""


@pytest.mark.parametrize(
    ("path", "capabilities"),
    [
        ("secret/zip/zap", {"read"}),  # glob swallows several segments
        ("secret/super-secret", set()),  # deny in the most specific rule wins
        ("secret/eng/teams", {"list"}),  # '+' beats the earlier glob
        ("secret/eng/sub/teams", {"read"}),  # '+' is one segment only
        ("secret/foo", {"update"}),  # exact beats a glob of the same prefix
        ("secret/food", {"create"}),  # longer glob beats the shorter one
        ("secretive", set()),  # no rule
        ("secret", set()),  # "secret/*" needs the slash
    ],
)
def test_matcher_follows_vaults_priority_rules(path, capabilities):
    assert parse_policy("example", MATCHER).capabilities(path) == frozenset(capabilities)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('path "kv/*/x" { capabilities = ["read"] }', "only allowed at the end"),
        ('path "kv/x" { capabilities = ["fly"] }', "give capabilities"),
        ('path "kv/x" { capabilities = [ }', "not valid HCL"),
        ('policy = "x"', "only `path` blocks"),
    ],
)
def test_bad_policies_are_refused_with_the_file_named(text, message):
    with pytest.raises(PolicyError, match=message) as err:
        parse_policy("bad", text)
    assert "policies/vault/bad.hcl" in str(err.value)
