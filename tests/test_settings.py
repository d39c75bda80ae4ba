"""The config loader: every kind of bad input fails with the key, the value and what is allowed."""

from __future__ import annotations

import pytest
import yaml

from lab.offline_plan import ROOT, stack_config
from lab.settings import KEYS, PROJECT, ConfigSource, SettingsError, load_settings
from lab.versions import PINS

BASE = {f"{PROJECT}:mode": "local", f"{PROJECT}:trustDomain": "lab.local"}


def load(extra: dict[str, str], secret: set[str] = frozenset()):
    return load_settings(ConfigSource({**BASE, **extra}, secret))


def problems(extra: dict[str, str], secret: set[str] = frozenset()) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load(extra, secret)
    return caught.value.problems


def test_defaults_give_a_local_lab():
    settings = load({})
    assert settings.mode == "local"
    assert settings.trust_domain == "lab.local"
    assert settings.lifetimes.access_token == 300
    assert settings.hosts.idp_url == "https://idp.lab.localhost:9443"
    assert settings.versions is PINS
    assert not settings.adopts_cluster


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("accessTokenSeconds", "five", "allowed: a whole number"),
        ("accessTokenSeconds", "3.5", "allowed: a whole number"),
        ("gpu", "yes", "allowed: true or false"),
        ("accessTokenSeconds", "301", "allowed: 30 to 300"),
        ("accessTokenSeconds", "0", "allowed: 30 to 300"),
        ("gatewayHttpsPort", "80", "allowed: 1024 to 65535"),
        ("trustDomain", "spiffe://lab.local", "has no scheme"),
        ("trustDomain", "https://lab.local", "has no scheme"),
        ("trustDomain", "Lab.Local", "lower case"),
        ("trustDomain", "lab.local:8443", "no port or path"),
        ("trustDomain", "lab.local/x", "no port or path"),
        ("mode", "cloud", "allowed: local, aws"),
        ("vaultFlavor", "hashicorp", "allowed: vault, openbao"),
        ("baseDomain", "localhost", "at least two labels"),
        ("ollamaModel", "qwen2.5:latest", "pinned tag"),
        ("ollamaModel", "qwen2.5", "pinned tag"),
        ("awsRegion", "europe", "AWS region"),
        ("rootCaCertPem", "-----BEGIN CERTIFICATE-----\nnope", "not a PEM certificate"),
        ("trustDomain", "...", "no empty label"),
        ("trustDomain", "lab.local.", "no empty label"),
        ("imageRegistry", "http://registry.test", "has no scheme"),
        ("imageRegistry", "x y", "host[:port][/path]"),
        ("imageRegistry", "Registry.Test", "host[:port][/path]"),
    ],
)
def test_each_bad_value_names_key_value_and_what_is_allowed(key, value, expected):
    found = problems({f"{PROJECT}:{key}": value})
    assert len(found) == 1, found
    assert found[0].startswith(f"{PROJECT}:{key}={value!r}: ")
    assert expected in found[0]


def test_missing_required_keys_are_each_named():
    with pytest.raises(SettingsError) as caught:
        load_settings(ConfigSource({}))
    text = str(caught.value)
    assert f"{PROJECT}:mode: missing; required" in text
    assert "(local, aws)" in text
    assert f"{PROJECT}:trustDomain: missing; required" in text
    assert "pulumi config set" in text


def test_aws_mode_requires_the_aws_region():
    found = problems({f"{PROJECT}:mode": "aws"})
    assert found == [
        "aws:region: missing; required in aws mode: the AWS region of SNS, SQS and Verified "
        "Permissions (pulumi config set aws:region us-east-1)"
    ]
    settings = load({f"{PROJECT}:mode": "aws", "aws:region": "eu-west-1"})
    assert settings.aws_region == "eu-west-1"


def test_unknown_key_suggests_the_close_one():
    assert problems({f"{PROJECT}:acessTokenSeconds": "60"}) == [
        f"{PROJECT}:acessTokenSeconds: unknown key; did you mean {PROJECT}:accessTokenSeconds?"
    ]


def test_every_problem_is_reported_at_once():
    found = problems({f"{PROJECT}:gpu": "maybe", f"{PROJECT}:vaultPort": "99999"})
    assert sorted(p.split("=")[0] for p in found) == [f"{PROJECT}:gpu", f"{PROJECT}:vaultPort"]


def test_delegated_token_may_not_outlive_the_access_token():
    found = problems(
        {f"{PROJECT}:accessTokenSeconds": "60", f"{PROJECT}:delegatedTokenSeconds": "120"}
    )
    assert "may not outlive the user's access token (60 s)" in found[0]


def test_host_ports_must_differ():
    found = problems({f"{PROJECT}:vaultPort": "8443"})
    assert "host ports must differ" in found[0]


def test_gpu_without_stable_diffusion_is_refused():
    assert "set identity-lab:stableDiffusion=true too" in problems({f"{PROJECT}:gpu": "true"})[0]


def test_kind_issuer_must_follow_the_dns_domain():
    found = problems({f"{PROJECT}:clusterDnsDomain": "lab.internal"})
    assert "https://kubernetes.default.svc.lab.internal" in found[0]
    adopted = load(
        {
            f"{PROJECT}:clusterDnsDomain": "lab.internal",
            f"{PROJECT}:kubeconfig": "apiVersion: v1\nkind: Config\n",
            f"{PROJECT}:serviceAccountIssuer": "https://oidc.eks.example.test/id/ABC",
        },
        secret={f"{PROJECT}:kubeconfig"},
    )
    assert adopted.adopts_cluster
    assert adopted.service_account_issuer == "https://oidc.eks.example.test/id/ABC"


def test_secret_keys_must_be_stored_encrypted_and_never_echo_their_value():
    found = problems({f"{PROJECT}:kubeconfig": "apiVersion: v1 token: hunter2"})
    assert found == [
        f"{PROJECT}:kubeconfig: stored in plain text; set it with "
        f"`pulumi config set --secret {PROJECT}:kubeconfig` so it is encrypted"
    ]
    bad_key = problems(
        {f"{PROJECT}:rootCaKeyPem": "hunter2-not-a-key"}, secret={f"{PROJECT}:rootCaKeyPem"}
    )
    assert "hunter2" not in " ".join(bad_key)
    assert bad_key[0].startswith(f"{PROJECT}:rootCaKeyPem=[secret]: not an unencrypted PEM")


def test_secret_settings_do_not_print():
    settings = load(
        {f"{PROJECT}:kubeconfig": "kind: Config\ntoken: hunter2"}, secret={f"{PROJECT}:kubeconfig"}
    )
    assert "hunter2" not in repr(settings)
    assert settings.kubeconfig.reveal() == "kind: Config\ntoken: hunter2"


def test_deny_list_outlives_every_token():
    lifetimes = load({f"{PROJECT}:clockSkewSeconds": "10"}).lifetimes
    assert lifetimes.deny_list_retention == 300 + 20
    assert lifetimes.deny_list_retention > max(
        lifetimes.access_token, lifetimes.delegated_token, lifetimes.jwt_svid
    )


def test_pulumi_yaml_declares_every_key_with_type_default_and_description():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == set(KEYS)
    for name, key in KEYS.items():
        entry = declared[name]
        assert entry["type"] == key.type, name
        assert entry["description"].strip(), name
        assert entry.get("default") == key.default, name


@pytest.mark.parametrize("stack", ["dev", "aws"])
def test_stack_files_load(stack):
    settings = load_settings(ConfigSource(stack_config(stack)))
    assert settings.mode == {"dev": "local", "aws": "aws"}[stack]
    assert settings.trust_domain == "lab.local"


def test_no_pin_floats():
    floating = {"latest", "main", "master", "stable", "edge", ""}
    for name, value in vars(PINS).items():
        version = getattr(value, "version", None) or getattr(value, "tag", None)
        if version is None:
            continue
        assert version.split("@")[0] not in floating, name
        assert any(ch.isdigit() for ch in version.split("@")[0]), f"{name}={version}"
    assert "@sha256:" in PINS.kind_node.tag


def test_a_kubeconfig_that_is_not_one_is_named_without_echoing_it():
    for text, expected in (
        ("garbage-hunter2", "not a kubeconfig (a mapping with kind: Config)"),
        ("a: [b\nhunter2", "not YAML; give the whole kubeconfig file's text"),
    ):
        found = problems({f"{PROJECT}:kubeconfig": text}, secret={f"{PROJECT}:kubeconfig"})
        assert found == [f"{PROJECT}:kubeconfig=[secret]: {expected}"]


def test_rules_across_keys_are_reported_with_bad_values_elsewhere():
    # A bad value in one key does not hide a rule broken by others...
    found = problems({f"{PROJECT}:ollamaModel": "x", f"{PROJECT}:vaultPort": "8443"})
    assert len(found) == 2, found
    assert found[0].startswith(f"{PROJECT}:ollamaModel='x': ")
    assert found[1].startswith(f"{PROJECT}: host ports must differ")
    # ...and a rule is not judged on a key that failed (its default would mislead).
    found = problems(
        {f"{PROJECT}:accessTokenSeconds": "nine", f"{PROJECT}:delegatedTokenSeconds": "300"}
    )
    assert len(found) == 1 and "accessTokenSeconds='nine'" in found[0]
