"""The signal services' images and settings: pinned base, pinned deps, clear config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.envconfig import ConfigError, Env


def test_a_missing_setting_names_the_variable_and_the_fix(tmp_path):
    env = Env("caep-receiver", {"CAEP_ISSUER": "https://caep.lab.localhost"})
    with pytest.raises(ConfigError, match="caep-receiver: CAEP_QUEUE_URL is not set"):
        env.text("CAEP_QUEUE_URL")
    assert env.text("CAEP_ISSUER") == "https://caep.lab.localhost"


def test_file_settings_are_read_and_a_missing_file_is_named(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n...\n")
    env = Env("relay", {"CA_FILE": str(pem), "KEY_FILE": str(tmp_path / "absent.pem")})
    assert env.text("CA").startswith("-----BEGIN CERTIFICATE-----")
    with pytest.raises(ConfigError, match=r"relay: KEY_FILE=.*absent.pem: No such file"):
        env.optional("KEY")


def test_numbers_outside_their_range_are_refused():
    env = Env("caep-receiver", {"SET_MAX_AGE_SECONDS": "999999", "WAIT_SECONDS": "5"})
    with pytest.raises(ConfigError, match="SET_MAX_AGE_SECONDS='999999': allowed: a whole"):
        env.integer("SET_MAX_AGE_SECONDS", 300, 10, 3600)
    assert env.integer("WAIT_SECONDS", 20, 0, 20) == 5


def _service_env(plan, workload: str, trust_dir: Path, secrets: dict[str, str]) -> dict:
    """What the pod's environment would hold: the release's env (trust files moved to
    trust_dir) plus a stand-in for every secretEnv entry."""
    from components.signal_services import TRUST_DIR

    values = plan.one("kubernetes:helm.sh/v3:Release", f"{workload}-release")["inputs"]["values"]
    env = {k: str(v).replace(TRUST_DIR, str(trust_dir)) for k, v in values["env"].items()}
    assert set(values["secretEnv"]) <= set(secrets), set(values["secretEnv"]) - set(secrets)
    return {**env, **{k: secrets[k] for k in values["secretEnv"]}}


@pytest.fixture
def trust_dir(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.signals_peers import make_pki

    pki = make_pki()
    realm = rsa.generate_private_key(65537, 2048).public_key()
    (tmp_path / "ca.pem").write_text(pki.root_pem)
    (tmp_path / "caep-transmitter.pem").write_text(pki.set_cert_pem)
    (tmp_path / "idp-realm.pem").write_bytes(
        realm.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return tmp_path, pki


SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "stand-in",
    "DECISION_ADMIN_TOKEN": "stand-in",
    "APPROVER_TOKEN": "stand-in",
    "TRANSMITTER_TOKEN": "stand-in",
    "IDP_ADMIN_CLIENT_SECRET": "stand-in",
}


def test_the_deployed_env_starts_each_service(dev_plan, trust_dir):
    """The names the component sets are the names the services read."""
    from services.caep import receiver, sets, transmitter
    from services.push_consent_relay import relay

    folder, pki = trust_dir
    secrets = {**SECRETS, "SET_SIGNING_KEY": pki.set_key_pem}

    rx = receiver.from_env(
        Env("caep-receiver", _service_env(dev_plan, "caep-receiver", folder, secrets))
    )
    assert rx.queue_url.endswith("/identity-lab-dev-caep-events")
    assert (rx.verifier.issuer, rx.verifier.audience, rx.verifier.subject_issuer) == (
        "https://caep.lab.localhost",
        "spiffe://lab.local/ns/lab-system/sa/caep-receiver",
        "https://idp.lab.localhost:9443/realms/lab",
    )
    assert rx.deny_list.url == "http://decision.lab-system.svc:8080"
    assert rx.idp.admin_url == "https://idp.lab.localhost:9443/admin/realms/lab"

    tx, _ = transmitter.from_env(
        Env("caep-transmitter", _service_env(dev_plan, "caep-transmitter", folder, secrets))
    )
    token, jti = sets.build_set(
        private_key_pem=tx.private_key_pem,
        issuer=tx.issuer,
        audience=tx.audience,
        event_type=sets.SESSION_REVOKED,
        subject={"format": "opaque", "id": "s-1"},
    )
    # What the deployed transmitter signs, the deployed receiver accepts.
    assert rx.verifier.verify(token).jti == jti

    rl, approver_token = relay.from_env(
        Env("push-consent-relay", _service_env(dev_plan, "push-consent-relay", folder, secrets))
    )
    assert rl.answer_url == "http://push-consent-relay.lab-system.svc.cluster.local:8080"
    assert approver_token == "stand-in"
