"""The decision service's image, settings and policy folder: pinned, non-root, checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.naming import Audience
from services.decision.app import DENY_REASONS
from services.decision.config import Config, ConfigError
from services.decision.policies import PolicyError, load_bundle
from services.decision.request_builder import ACTIONS
from tests.decision_peer import POLICY_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_every_forbid_has_a_reason_and_every_reason_a_forbid():
    bundle = load_bundle(POLICY_DIR)
    forbids = {pid for pid, text in bundle.policies.items() if "\nforbid" in text}
    assert forbids == set(DENY_REASONS)


def test_actions_require_the_lab_audiences():
    assert {spec.audience for spec in ACTIONS.values()} == {a.value for a in Audience}


def test_policy_folder_rules(tmp_path):
    (tmp_path / "schema.cedarschema.json").write_text(
        (POLICY_DIR / "schema.cedarschema.json").read_text()
    )
    (tmp_path / "a.cedar").write_text('@id("b")\npermit (principal, action, resource);\n')
    with pytest.raises(PolicyError, match="must equal the file name"):
        load_bundle(tmp_path)
    (tmp_path / "a.cedar").write_text('@id("a")\npermit (principal is User, action, resource);\n')
    # An unqualified type under a namespaced schema fails strict validation, by name.
    with pytest.raises(PolicyError, match=r"a: .*User"):
        load_bundle(tmp_path)


def test_config_from_env_reports_every_problem():
    with pytest.raises(ConfigError) as err:
        Config.from_env({"DECISION_BACKEND": "opa", "DECISION_ADMIN_TOKEN": "short", "PORT": "0"})
    message = str(err.value)
    for expected in (
        "DECISION_BACKEND='opa'",
        "DECISION_ISSUER: missing",
        "at least 32",
        "PORT='0'",
    ):
        assert expected in message


def test_config_from_env_reads_the_component_values(tmp_path):
    config = Config.from_env(
        {
            "DECISION_ISSUER": "https://idp.lab.localhost:9443/realms/lab",
            "DECISION_KEYS_DIR": "/etc/decision/keys",
            "DECISION_POLICY_DIR": "/etc/decision/policies",
            "DECISION_TRUST_DOMAIN": "lab.local",
            "DECISION_ADMIN_TOKEN": "z" * 40,
            "DECISION_DENY_LIST_PATH": "/data/deny-list.sqlite3",
            "DECISION_BACKEND": "verified-permissions",
            "DECISION_POLICY_STORE_ID": "ps-1",
            "DECISION_POLICY_IDS": '{"vp-1": "users-chat-by-group"}',
            "DECISION_SERVICE_TARGETS": '{"spiffe://a": ["spiffe://b"]}',
            "DECISION_DENY_LIST_RETENTION_SECONDS": "360",
        }
    )
    assert config.policy_ids == {"vp-1": "users-chat-by-group"}
    assert config.service_targets == {"spiffe://a": ("spiffe://b",)}
    assert (config.deny_list_retention, config.host) == (360, "127.0.0.1")
    assert "z" * 40 not in repr(config)
