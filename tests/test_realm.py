"""The realm model, its rules, and its Keycloak rendering in the real program's plan."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from components.identity_provider import FEATURES, server_args
from lab.naming import Audience, Namespace, Scope, issuers, spiffe_id
from lab.realm import (
    MODEL_AUDIENCES,
    Client,
    ClientAuth,
    ClientRole,
    Grant,
    KeyFormatError,
    RealmModelError,
    lab_realm,
    spki_pem,
    validate,
)
from lab.settings import ConfigSource, load_settings
from tests.plans import plan_keeping_secrets
from tests.tls_chain import assert_issued_through_lab_tls, assert_vault_issued_chain, served_chain

CLIENT = "keycloak:openid/client:Client"


@pytest.fixture(scope="module")
def settings():
    return load_settings(
        ConfigSource({"identity-lab:mode": "local", "identity-lab:trustDomain": "lab.local"})
    )


@pytest.fixture(scope="module")
def realm(settings):
    return validate(lab_realm(settings))


def clients_by_id(plan) -> dict[str, dict]:
    return {r["inputs"]["clientId"]: r for r in plan.of_type(CLIENT)}


def with_client(realm, client_id, **changes):
    clients = tuple(
        dataclasses.replace(c, **changes) if c.client_id == client_id else c for c in realm.clients
    )
    return dataclasses.replace(realm, clients=clients)


# --- the model -------------------------------------------------------------------------------


def test_agent_client_id_is_its_spiffe_id_and_reaches_only_models(realm, settings):
    agent = realm.client(spiffe_id("lab.local", Namespace.AGENTS, "research-agent"))
    assert agent.auth is ClientAuth.SPIFFE_JWT
    assert agent.exchanges and agent.confidential
    assert agent.exchange_audiences == MODEL_AUDIENCES == {Audience.CHAT, Audience.IMAGE}
    assert agent.access_token_seconds == settings.lifetimes.delegated_token == 120


def test_service_client_reaches_only_its_declared_target(realm):
    service = realm.client(spiffe_id("lab.local", Namespace.SERVICES, "report-service"))
    assert service.grants == {Grant.CLIENT_CREDENTIALS}
    assert service.audiences == {Audience.SERVICES}
    assert not service.exchanges


def test_public_exchanging_client_is_refused(realm):
    agent = realm.of_role(ClientRole.AGENT)[0].client_id
    with pytest.raises(RealmModelError, match="exchanges tokens but is public"):
        validate(with_client(realm, agent, auth=ClientAuth.NONE))


def test_agent_exchanging_for_a_service_audience_is_refused(realm):
    agent = realm.of_role(ClientRole.AGENT)[0].client_id
    wider = frozenset({Audience.CHAT, Audience.SERVICES})
    with pytest.raises(RealmModelError, match="only for model audiences"):
        validate(with_client(realm, agent, exchange_audiences=wider))


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.lab.localhost:8443/*",
        "https://app.lab.localhost:8443/callback+",
        "http://app.lab.localhost:8443/callback",
    ],
)
def test_inexact_redirect_uris_are_refused(realm, uri):
    with pytest.raises(RealmModelError, match="exact https URL"):
        validate(with_client(realm, "demo-app", redirect_uris=(uri,)))


def test_long_lived_tokens_are_refused(realm):
    with pytest.raises(RealmModelError, match="allowed 30 to 300"):
        validate(with_client(realm, "demo-app", access_token_seconds=3600))


def test_spiffe_client_id_must_be_its_svid_subject(realm):
    agent = realm.of_role(ClientRole.AGENT)[0].client_id
    broken = with_client(realm, agent, spiffe_id="spiffe://other.domain/ns/x/sa/y")
    with pytest.raises(RealmModelError, match="client's id must be its SPIFFE ID"):
        validate(broken)


def test_every_problem_is_reported_at_once(realm):
    broken = dataclasses.replace(
        with_client(realm, "demo-app", redirect_uris=("https://x/*",), access_token_seconds=9),
        groups=("researchers",),
    )
    with pytest.raises(RealmModelError) as err:
        validate(broken)
    assert len(err.value.problems) == 3, err.value.problems


def test_ciba_points_at_the_relay_with_an_expiry(realm, settings):
    assert realm.ciba.channel_url == (
        "http://push-consent-relay.lab-system.svc.cluster.local:8080/ciba"
    )
    assert realm.ciba.delivery_mode == "poll"
    assert realm.ciba.expires_in == settings.lifetimes.consent_max_age


# --- the signing key's public form -----------------------------------------------------------


def test_pkcs1_public_key_is_converted_to_spki():
    key = rsa.generate_private_key(65537, 2048)
    pkcs1 = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    converted = spki_pem(pkcs1.decode())
    assert converted.startswith("-----BEGIN PUBLIC KEY-----")
    assert serialization.load_pem_public_key(converted.encode()).public_numbers() == (
        key.public_key().public_numbers()
    )


def test_non_rsa_or_garbage_keys_are_rejected():
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyFormatError, match="not RSA"):
        spki_pem(ec_pem.decode())
    with pytest.raises(KeyFormatError, match="BEGIN PUBLIC KEY"):
        spki_pem("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----")


# --- the rendering in the real program's plan ------------------------------------------------


def test_exchanging_clients_are_confidential_with_exchange_on(dev_plan, realm):
    rendered = clients_by_id(dev_plan)
    exchangers = {c.client_id for c in realm.clients if c.exchanges}
    assert exchangers
    for client_id in exchangers:
        inputs = rendered[client_id]["inputs"]
        assert inputs["accessType"] == "CONFIDENTIAL", client_id
        assert inputs["standardTokenExchangeEnabled"] is True, client_id
    on = {cid for cid, r in rendered.items() if r["inputs"].get("standardTokenExchangeEnabled")}
    assert on == exchangers


def test_spiffe_clients_have_no_secret_and_name_their_svid(dev_plan, realm):
    rendered = clients_by_id(dev_plan)
    spiffe = [c for c in realm.clients if c.auth is ClientAuth.SPIFFE_JWT]
    assert len(spiffe) == 2
    for client in spiffe:
        inputs = rendered[client.client_id]["inputs"]
        assert "clientSecret" not in inputs
        assert inputs["clientAuthenticatorType"] == "federated-jwt"
        assert inputs["extraConfig"]["jwt.credential.sub"] == client.client_id
        assert inputs["extraConfig"]["jwt.credential.issuer"] == realm.spiffe.alias
        assert inputs["standardFlowEnabled"] is False
    agent = rendered[realm.of_role(ClientRole.AGENT)[0].client_id]["inputs"]
    assert agent["extraConfig"]["oidc.ciba.grant.enabled"] == "true"


def test_demo_app_is_confidential_code_pkce_with_exact_redirects(dev_plan):
    app = clients_by_id(dev_plan)["demo-app"]
    inputs = app["inputs"]
    assert inputs["validRedirectUris"] == ["https://app.lab.localhost:8443/callback"]
    assert inputs["pkceCodeChallengeMethod"] == "S256"
    assert inputs["standardFlowEnabled"] is True
    assert inputs["directAccessGrantsEnabled"] is False
    assert inputs["implicitFlowEnabled"] is False
    assert "clientSecret" in app["secretInputs"]


def test_token_lifetimes_stay_within_bounds(dev_plan, settings):
    lifespans = {
        cid: int(r["inputs"]["accessTokenLifespan"])
        for cid, r in clients_by_id(dev_plan).items()
        if "accessTokenLifespan" in r["inputs"]
    }
    assert len(lifespans) == 3
    assert all(30 <= s <= 300 for s in lifespans.values()), lifespans
    realm = dev_plan.one("keycloak:index/realm:Realm")["inputs"]
    assert realm["accessTokenLifespan"] == f"{settings.lifetimes.access_token}s"
    assert realm["attributes"]["cibaBackchannelTokenDeliveryMode"] == "poll"
    assert realm["attributes"]["cibaExpiresIn"] == "300"


def test_scopes_carry_their_audiences_and_groups_are_flat(dev_plan):
    scopes = {
        r["inputs"]["name"] for r in dev_plan.of_type("keycloak:openid/clientScope:ClientScope")
    }
    assert {s.value for s in Scope} <= scopes
    audiences = {
        r["inputs"]["includedClientAudience"]
        for r in dev_plan.of_type("keycloak:openid/audienceProtocolMapper:AudienceProtocolMapper")
    }
    assert audiences == {a.value for a in Audience}
    groups = dev_plan.one(
        "keycloak:openid/groupMembershipProtocolMapper:GroupMembershipProtocolMapper"
    )
    assert groups["inputs"]["fullPath"] is False and groups["inputs"]["claimName"] == "groups"


def test_one_issuer_string_everywhere_it_is_configured(dev_plan, settings):
    issuer = issuers(settings).idp
    assert dev_plan.outputs["realmIssuer"] == issuer == "https://idp.lab.localhost:9443/realms/lab"
    text = json.dumps(dev_plan.to_json())
    # Every mention of the IdP's realms path is exactly the issuer.
    found = {text[i - 40 : i + 12] for i in range(len(text)) if text.startswith("/realms/", i)}
    assert found, "the plan never names the issuer"
    for snippet in found:
        assert issuer.split("://", 1)[1] in snippet, snippet
    release = dev_plan.one("kubernetes:helm.sh/v3:Release", "idp-keycloak")["inputs"]
    assert f"--hostname={settings.hosts.idp_url}" in release["values"]["args"]
    assert "--hostname-backchannel-dynamic=true" in release["values"]["args"]


def test_signing_key_chains_to_the_lab_root_and_is_output_as_spki(dev_plan):
    root = x509.load_pem_x509_certificate(dev_plan.outputs["rootCaCertPem"].encode())
    keystore = dev_plan.one("keycloak:index/realmKeystoreRsa:RealmKeystoreRsa")
    cert = x509.load_pem_x509_certificate(keystore["inputs"]["certificate"].encode())
    cert.verify_directly_issued_by(root)
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.public_key().key_size == 2048
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    public = dev_plan.outputs["realmPublicKeyPem"]
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    loaded = serialization.load_pem_public_key(public.encode())
    assert loaded.public_numbers() == cert.public_key().public_numbers()
    assert keystore["inputs"]["priority"] == 1000 and keystore["inputs"]["algorithm"] == "RS256"
    assert keystore["secretInputs"] == ["privateKey"]


@pytest.fixture(scope="module")
def idp_tls_plan():
    """The dev plan with the IdP TLS Secret's plain inputs kept aside for the chain checks."""
    plan, seen = plan_keeping_secrets("dev")
    return plan, seen["keycloak-tls"]["stringData"]


def test_idp_tls_certificate_comes_from_vault_for_the_public_host(idp_tls_plan):
    plan, data = idp_tls_plan
    hosts = ["idp.lab.localhost", "keycloak-http.idp.svc.cluster.local"]
    assert_issued_through_lab_tls(plan, "idp-tls", hosts)
    root = plan.outputs["rootCaCertPem"]
    assert_vault_issued_chain(plan, data, hosts, root)
    # Keycloak's truststore is the lab root alone, not the served chain.
    assert served_chain(data["ca.crt"]) == served_chain(root)
    # The key and the certificate travel together in one secret.
    secret = plan.one("kubernetes:core/v1:Secret", "idp-tls")
    assert secret["inputs"]["type"] == "kubernetes.io/tls"
    assert secret["secretInputs"] == ["stringData"]
    assert not [
        r
        for r in plan.of_type("tls:index/locallySignedCert:LocallySignedCert")
        if r["name"].startswith("idp-")
    ]


def test_keycloak_release_pins_features_port_and_ciba_channel(dev_plan, settings):
    release = dev_plan.one("kubernetes:helm.sh/v3:Release", "idp-keycloak")
    values = release["inputs"]["values"]
    assert values["image"] == {"repository": "quay.io/keycloak/keycloak", "tag": "26.8.0"}
    assert f"--features={','.join(FEATURES)}" in values["args"]
    assert set(FEATURES) == {"spiffe", "token-exchange-delegation", "parameterized-scopes"}
    assert values["service"]["httpsPort"] == settings.ports.idp_https == 9443
    assert values["service"]["httpsNodePort"] == 30943
    assert values["proxy"]["enabled"] is False
    channel = [a for a in values["args"] if "http-authentication-channel-uri=" in a]
    assert channel == [
        "--spi-ciba-auth-channel--ciba-http-auth-channel--http-authentication-channel-uri="
        "http://push-consent-relay.lab-system.svc.cluster.local:8080/ciba"
    ]
    # Passwords reach the pod by Secret reference only: no secret value in the release.
    assert release["secretInputs"] == []
    assert "keycloak-credentials" in values["extraEnv"]


def test_demo_user_passwords_and_app_secret_are_secret_outputs(dev_plan):
    assert {"demoUserPasswords", "demoAppClientSecret"} <= set(dev_plan.secret_outputs)
    users = {r["inputs"]["username"]: r for r in dev_plan.of_type("keycloak:index/user:User")}
    assert set(users) == {"alice", "bob"}
    assert users["alice"]["secretInputs"] == ["initialPassword"]
    members = {
        r["name"]: r["inputs"]["members"]
        for r in dev_plan.of_type("keycloak:index/groupMemberships:GroupMemberships")
    }
    assert members == {
        "realm-group-researchers-members": ["alice"],
        "realm-group-designers-members": ["bob"],
    }
    assert users["alice"]["inputs"]["attributes"]["delegates"] == (
        "spiffe://lab.local/ns/lab-agents/sa/research-agent"
    )


def test_server_args_without_a_channel_leave_ciba_unset():
    from components.identity_provider import IdentityProviderArgs
    from lab.versions import PINS

    args = IdentityProviderArgs(
        public_host="idp.example.test",
        https_port=9443,
        node_port=30943,
        cluster_dns_domain="cluster.local",
        image=PINS.keycloak,
        chart=PINS.keycloak_chart,
        postgres_image=PINS.postgres,
    )
    line = server_args(args)
    assert line[0] == "start" and "--hostname=https://idp.example.test:9443" in line
    assert not [a for a in line if "ciba" in a]


def test_a_client_model_cannot_claim_a_scope_the_realm_lacks(realm):
    bad = Client("x", ClientRole.WEB_APP, ClientAuth.SECRET, default_scopes=("admin:all",))
    with pytest.raises(RealmModelError, match="unknown scope 'admin:all'"):
        validate(dataclasses.replace(realm, clients=(*realm.clients, bad)))


# --- who may act for users: the FGAP v2 `delegate` permission --------------------------------

POLICY = "keycloak:openid/clientPolicy:ClientPolicy"
PERMISSION = "keycloak:openid/clientAuthorizationPermission:ClientAuthorizationPermission"


def test_delegation_actors_are_the_exchanging_agents_only(settings):
    two = validate(lab_realm(settings, agents=("research-agent", "image-agent")))
    agent_ids = {c.client_id for c in two.of_role(ClientRole.AGENT)}
    assert {c.client_id for c in two.delegation_actors} == agent_ids
    assert len(agent_ids) == 2
    quiet = next(iter(sorted(agent_ids)))
    grants = frozenset({Grant.CLIENT_CREDENTIALS, Grant.CIBA})
    narrowed = with_client(two, quiet, grants=grants)
    assert {c.client_id for c in narrowed.delegation_actors} == agent_ids - {quiet}


def test_agents_hold_the_delegate_permission_on_the_admin_permissions_client(dev_plan, realm):
    # Under mocks a looked-up client's id is "<clientId>-id" and a looked-up scope's id names
    # the scope and its resource server, so these values show what was asked for.
    admin_permissions = "admin-permissions-id"
    realm_record = dev_plan.one("keycloak:index/realm:Realm")
    assert realm_record["inputs"]["adminPermissionsEnabled"] is True

    permission = dev_plan.one(PERMISSION)
    inputs = permission["inputs"]
    assert inputs["resourceServerId"] == admin_permissions
    assert (inputs["type"], inputs["resourceType"]) == ("scope", "Users")
    assert inputs["scopes"] == [f"delegate-scope-on-{admin_permissions}"]
    assert "resources" not in inputs, "an all-users permission names no single user"
    assert inputs["decisionStrategy"] == "UNANIMOUS"

    policy = dev_plan.one(POLICY)
    assert inputs["policies"] == [f"{policy['name']}-id"]
    assert policy["inputs"]["resourceServerId"] == admin_permissions
    assert (policy["inputs"]["logic"], policy["inputs"]["decisionStrategy"]) == (
        "POSITIVE",
        "UNANIMOUS",
    )
    rendered = clients_by_id(dev_plan)
    agents = {f"{rendered[c.client_id]['name']}-id" for c in realm.of_role(ClientRole.AGENT)}
    others = {f"{r['name']}-id" for cid, r in rendered.items()} - agents
    assert agents and sorted(policy["inputs"]["clients"]) == sorted(agents)
    assert not others & set(policy["inputs"]["clients"])
    for record in (permission, policy):
        assert record["parent"] == dev_plan.one("identity-lab:idp:KeycloakRealm")["urn"]


def test_agents_may_ask_for_keycloaks_delegation_scope_and_nobody_else(dev_plan):
    optional = dev_plan.of_type("keycloak:openid/clientOptionalScopes:ClientOptionalScopes")
    with_delegation = {
        r["name"] for r in optional if "delegation:client" in r["inputs"]["optionalScopes"]
    }
    agents = {r["name"] for r in optional if "research-agent" in r["name"]}
    assert agents == {"realm-client-agent-research-agent-optional-scopes"}
    # Keycloak's built-in parameterized scope is `delegation:client` (asked for with the
    # agent's client id appended); a scope of any other name would not exist in the realm.
    assert with_delegation == agents


def test_an_exchanger_s_scopes_must_reach_exactly_its_exchange_audiences(realm):
    agent = next(c for c in realm.clients if c.role is ClientRole.AGENT)
    assert agent.audiences == agent.exchange_audiences == MODEL_AUDIENCES
    narrower = with_client(realm, agent.client_id, optional_scopes=(Scope.CHAT,))
    with pytest.raises(RealmModelError, match=r"its scopes reach .* but exchange_audiences is"):
        validate(narrower)
