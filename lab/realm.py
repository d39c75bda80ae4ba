"""The lab's realm as data: users, groups, clients, scopes, audiences, lifetimes, keys, CIBA.

The model says what the identity provider must enforce, in terms any OAuth/OIDC server has
(a ForgeRock / PingAM adapter could render it as well as the Keycloak one in
components/keycloak_realm.py). `lab_realm` builds the lab's realm from the settings and the
shared names; `validate` checks the rules the three sequences rely on and raises one
RealmModelError listing every problem.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lab.naming import (
    REALM,
    Audience,
    Namespace,
    Scope,
    ciba_channel_url,
    issuers,
    spiffe_id,
)
from lab.settings import LabSettings

# Groups the Cedar policies name. Tokens carry them without a leading '/'.
RESEARCHERS = "researchers"
DESIGNERS = "designers"

# The lab's own workloads that hold IdP clients, by service account.
AGENT_ACCOUNTS = ("research-agent",)
SERVICE_TARGETS = {"report-service": (Audience.SERVICES,)}

DEMO_APP = "demo-app"
DEMO_APP_CALLBACK = "/callback"

# Audiences a delegated token may carry: the model routes, nothing else.
MODEL_AUDIENCES = frozenset({Audience.CHAT, Audience.IMAGE})

# The scope that carries each audience: asking for a scope is what puts its audience in `aud`.
SCOPE_AUDIENCE = {
    Scope.CHAT: Audience.CHAT,
    Scope.IMAGE: Audience.IMAGE,
    Scope.SERVICE: Audience.SERVICES,
}

MAX_TOKEN_SECONDS = 300
MIN_TOKEN_SECONDS = 30


class RealmModelError(ValueError):
    """The realm model breaks a rule the sequences rely on; lists every problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"The realm model has {len(problems)} problem(s):\n{lines}")


class ClientAuth(StrEnum):
    """How a client proves who it is at the token endpoint."""

    SECRET = "client-secret"  # noqa: S105 - a method name, not a secret
    SPIFFE_JWT = "spiffe-jwt-svid"
    NONE = "none"  # public client: never allowed to exchange tokens


class Grant(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    CLIENT_CREDENTIALS = "client_credentials"
    TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105
    CIBA = "urn:openid:params:grant-type:ciba"


class ClientRole(StrEnum):
    WEB_APP = "web-app"
    AGENT = "agent"
    SERVICE = "service"
    RESOURCE_SERVER = "resource-server"


@dataclass(frozen=True)
class User:
    username: str
    groups: tuple[str, ...]
    first_name: str
    last_name: str
    delegates: tuple[str, ...] = ()
    """SPIFFE IDs of the agents this user lets act for them (the `delegates` claim)."""

    @property
    def email(self) -> str:
        return f"{self.username}@lab.example"


@dataclass(frozen=True)
class Client:
    client_id: str
    role: ClientRole
    auth: ClientAuth
    grants: frozenset[Grant] = frozenset()
    redirect_uris: tuple[str, ...] = ()
    pkce: bool = False
    default_scopes: tuple[str, ...] = ()
    """Scopes in every token of this client (and so their audiences)."""
    optional_scopes: tuple[str, ...] = ()
    """Scopes the client may ask for; the only way to widen a token."""
    exchange_audiences: frozenset[str] = frozenset()
    """Audiences an exchanged token of this client may be narrowed to."""
    access_token_seconds: int = MAX_TOKEN_SECONDS
    spiffe_id: str | None = None
    """For SPIFFE-authenticated clients: the SVID subject; equals client_id here."""
    description: str = ""

    @property
    def confidential(self) -> bool:
        return self.auth is not ClientAuth.NONE

    @property
    def exchanges(self) -> bool:
        return Grant.TOKEN_EXCHANGE in self.grants

    @property
    def audiences(self) -> frozenset[str]:
        """Every audience a token of this client can carry."""
        scopes = (*self.default_scopes, *self.optional_scopes)
        return frozenset(SCOPE_AUDIENCE[Scope(s)] for s in scopes if s in SCOPE_AUDIENCE)


@dataclass(frozen=True)
class ScopeDef:
    name: str
    description: str
    audience: str | None = None


@dataclass(frozen=True)
class Lifetimes:
    access_token: int
    delegated_token: int
    sso_idle: int = 1800
    sso_max: int = 36000


@dataclass(frozen=True)
class CibaPolicy:
    """Client-initiated backchannel authentication: poll mode, consent through the relay."""

    channel_url: str
    expires_in: int
    """How long the user has to answer the push (binding message shown meanwhile)."""
    interval: int = 5
    """Minimum seconds between the client's polls."""
    delivery_mode: str = "poll"
    user_hint: str = "login_hint"
    binding_message_required: bool = True


@dataclass(frozen=True)
class SigningKey:
    """The realm's token signing key: imported (generated and certified under the lab root)."""

    algorithm: str = "RS256"
    key_type: str = "RSA"
    bits: int = 2048
    priority: int = 1000
    """Above every key the IdP generates itself, so every token is signed with this one."""


@dataclass(frozen=True)
class SpiffeTrust:
    """The SPIFFE trust the realm accepts client assertions from."""

    alias: str
    trust_domain: str
    """As a SPIFFE URL: spiffe://<trust domain>."""


@dataclass(frozen=True)
class Realm:
    name: str
    issuer: str
    users: tuple[User, ...]
    groups: tuple[str, ...]
    scopes: tuple[ScopeDef, ...]
    clients: tuple[Client, ...]
    lifetimes: Lifetimes
    ciba: CibaPolicy
    signing_key: SigningKey
    spiffe: SpiffeTrust
    claims_scope: str = "lab-claims"
    """Scope carrying the lab's claims (groups, delegates) in every user token."""
    delegation_scope: str = "delegation:client"
    """Keycloak's built-in parameterized scope for delegation; an agent asks for it as
    delegation:client:<its client id>, which puts `may_act` naming it in the user's token."""

    def client(self, client_id: str) -> Client:
        for client in self.clients:
            if client.client_id == client_id:
                return client
        raise KeyError(f"no client {client_id!r} in realm {self.name!r}")

    def of_role(self, role: ClientRole) -> list[Client]:
        return [c for c in self.clients if c.role is role]

    @property
    def delegation_actors(self) -> list[Client]:
        """Agents the IdP lets act for a user in a delegated exchange: the agents that exchange."""
        return [c for c in self.of_role(ClientRole.AGENT) if c.exchanges]


def lab_realm(
    settings: LabSettings,
    agents: Iterable[str] = AGENT_ACCOUNTS,
    services: dict[str, tuple[str, ...]] | None = None,
) -> Realm:
    """The lab's realm: the demo app, one client per agent and service, the model audiences."""
    services = SERVICE_TARGETS if services is None else services
    issuer = issuers(settings).idp
    life = settings.lifetimes
    user_scopes = ("basic", "profile", "lab-claims")
    agent_ids = [spiffe_id(settings.trust_domain, Namespace.AGENTS, a) for a in agents]

    clients = [
        Client(
            client_id=DEMO_APP,
            role=ClientRole.WEB_APP,
            auth=ClientAuth.SECRET,
            grants=frozenset({Grant.AUTHORIZATION_CODE}),
            redirect_uris=(
                f"https://{settings.hosts.app}:{settings.hosts.gateway_https_port}"
                f"{DEMO_APP_CALLBACK}",
            ),
            pkce=True,
            default_scopes=(*user_scopes, Scope.CHAT, Scope.IMAGE),
            optional_scopes=(Scope.RESULT,),
            access_token_seconds=life.access_token,
            description="Demo app: a user logs in (code + PKCE) and calls the models.",
        )
    ]
    for agent in agent_ids:
        clients.append(
            Client(
                client_id=agent,
                role=ClientRole.AGENT,
                auth=ClientAuth.SPIFFE_JWT,
                # Client credentials give the agent its own (actor) token; CIBA asks the
                # user's consent; exchange makes the delegated token.
                grants=frozenset({Grant.CLIENT_CREDENTIALS, Grant.CIBA, Grant.TOKEN_EXCHANGE}),
                default_scopes=("basic", "lab-claims"),
                optional_scopes=(Scope.CHAT, Scope.IMAGE),
                exchange_audiences=frozenset(MODEL_AUDIENCES),
                access_token_seconds=life.delegated_token,
                spiffe_id=agent,
                description="Agent: acts for a user who consented by push; SVID-authenticated.",
            )
        )
    for account, targets in services.items():
        sid = spiffe_id(settings.trust_domain, Namespace.SERVICES, account)
        clients.append(
            Client(
                client_id=sid,
                role=ClientRole.SERVICE,
                auth=ClientAuth.SPIFFE_JWT,
                grants=frozenset({Grant.CLIENT_CREDENTIALS}),
                default_scopes=tuple(s for s, a in SCOPE_AUDIENCE.items() if a in targets),
                access_token_seconds=life.access_token,
                spiffe_id=sid,
                description=f"Service: calls {', '.join(targets)} with its own token.",
            )
        )
    for audience in Audience:
        clients.append(
            Client(
                client_id=audience.value,
                role=ClientRole.RESOURCE_SERVER,
                auth=ClientAuth.SECRET,
                description=f"Resource server: the gateway's {audience.value} routes.",
            )
        )

    delegates = tuple(agent_ids)
    return Realm(
        name=REALM,
        issuer=issuer,
        users=(
            User("alice", (RESEARCHERS,), "Alice", "Researcher", delegates=delegates),
            User("bob", (DESIGNERS,), "Bob", "Designer"),
        ),
        groups=(RESEARCHERS, DESIGNERS),
        scopes=(
            ScopeDef(Scope.CHAT, "Invoke the chat models", Audience.CHAT),
            ScopeDef(Scope.IMAGE, "Generate images", Audience.IMAGE),
            ScopeDef(Scope.SERVICE, "Call a lab service", Audience.SERVICES),
            ScopeDef(Scope.RESULT, "Read a stored result"),
        ),
        clients=tuple(clients),
        lifetimes=Lifetimes(access_token=life.access_token, delegated_token=life.delegated_token),
        ciba=CibaPolicy(
            channel_url=ciba_channel_url(settings.cluster_dns_domain),
            expires_in=life.consent_max_age,
        ),
        signing_key=SigningKey(),
        spiffe=SpiffeTrust(alias="spiffe", trust_domain=f"spiffe://{settings.trust_domain}"),
    )


def validate(realm: Realm) -> Realm:
    """Raise RealmModelError naming every broken rule; return the realm when it holds."""
    problems: list[str] = []
    known_scopes = {s.name for s in realm.scopes} | {"basic", "profile", realm.claims_scope}
    ids = [c.client_id for c in realm.clients]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"client {dup!r}: defined more than once")

    for c in realm.clients:
        where = f"client {c.client_id!r}"
        if c.exchanges and not c.confidential:
            problems.append(f"{where}: exchanges tokens but is public; make it confidential")
        if c.exchanges and not c.exchange_audiences:
            problems.append(f"{where}: exchanges tokens but names no audience to narrow to")
        # Keycloak lets an exchange narrow only to audiences the client's scopes reach, so
        # the scopes are how exchange_audiences reaches the IdP: they must say the same.
        if c.exchanges and c.exchange_audiences and c.audiences != c.exchange_audiences:
            problems.append(
                f"{where}: its scopes reach {sorted(c.audiences)} but exchange_audiences is "
                f"{sorted(c.exchange_audiences)}; give it the scopes of exactly those audiences"
            )
        if c.role is ClientRole.AGENT and not c.exchange_audiences <= MODEL_AUDIENCES:
            extra = sorted(c.exchange_audiences - MODEL_AUDIENCES)
            problems.append(f"{where}: an agent may exchange only for model audiences, not {extra}")
        if c.role is ClientRole.AGENT and not c.audiences <= MODEL_AUDIENCES:
            extra = sorted(c.audiences - MODEL_AUDIENCES)
            problems.append(f"{where}: an agent's scopes reach non-model audiences {extra}")
        if c.auth is ClientAuth.SPIFFE_JWT:
            if not c.spiffe_id or c.spiffe_id != c.client_id:
                problems.append(f"{where}: a SPIFFE client's id must be its SPIFFE ID")
            elif not c.spiffe_id.startswith(realm.spiffe.trust_domain + "/"):
                problems.append(f"{where}: SPIFFE ID outside {realm.spiffe.trust_domain}")
        for uri in c.redirect_uris:
            if "*" in uri or "+" in uri or not uri.startswith("https://") or "#" in uri:
                problems.append(f"{where}: redirect URI {uri!r} must be an exact https URL")
        if Grant.AUTHORIZATION_CODE in c.grants and (not c.redirect_uris or not c.pkce):
            problems.append(f"{where}: code flow needs exact redirect URIs and PKCE")
        if not MIN_TOKEN_SECONDS <= c.access_token_seconds <= MAX_TOKEN_SECONDS:
            problems.append(
                f"{where}: access tokens live {c.access_token_seconds} s; "
                f"allowed {MIN_TOKEN_SECONDS} to {MAX_TOKEN_SECONDS}"
            )
        if c.role is ClientRole.AGENT and c.access_token_seconds > realm.lifetimes.delegated_token:
            problems.append(f"{where}: delegated tokens outlive delegatedTokenSeconds")
        for s in (*c.default_scopes, *c.optional_scopes):
            if s not in known_scopes:
                problems.append(f"{where}: unknown scope {s!r}")

    for u in realm.users:
        for g in u.groups:
            if g not in realm.groups or "/" in g:
                problems.append(f"user {u.username!r}: group {g!r} is not a top-level realm group")
        agent_ids = {c.client_id for c in realm.of_role(ClientRole.AGENT)}
        for d in u.delegates:
            if d not in agent_ids:
                problems.append(f"user {u.username!r}: delegates to unknown agent {d!r}")

    life = realm.lifetimes
    if not MIN_TOKEN_SECONDS <= life.access_token <= MAX_TOKEN_SECONDS:
        problems.append(f"realm: access tokens live {life.access_token} s; at most 300")
    if life.delegated_token > life.access_token:
        problems.append("realm: a delegated token may not outlive the user's access token")
    if realm.ciba.delivery_mode != "poll":
        problems.append(f"CIBA: delivery mode {realm.ciba.delivery_mode!r}; the lab uses poll")
    if not 30 <= realm.ciba.expires_in <= 900:
        problems.append(f"CIBA: requests expire after {realm.ciba.expires_in} s; 30 to 900")
    if not realm.issuer.startswith("https://") or not realm.issuer.endswith(
        f"/realms/{realm.name}"
    ):
        problems.append(f"realm: issuer {realm.issuer!r} is not https://<host>/realms/{realm.name}")
    if realm.signing_key.key_type != "RSA" or realm.signing_key.algorithm != "RS256":
        problems.append("signing key: only an RSA key (RS256) can be imported with its certificate")
    if problems:
        raise RealmModelError(problems)
    return realm


class KeyFormatError(ValueError):
    """A PEM that holds no RSA public key the lab can use."""


def spki_pem(pem: str) -> str:
    """The RSA public key in `pem` as SPKI PEM ("BEGIN PUBLIC KEY"), whatever form it came in.

    Accepts SPKI, PKCS#1 ("BEGIN RSA PUBLIC KEY"), a certificate, or an unencrypted private
    key; the gateway and the decision service only accept SPKI, so PKCS#1 is converted here.
    """
    data = pem.strip().encode()
    try:
        if b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        elif b"PRIVATE KEY" in data:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise KeyFormatError(
            f"the realm key is not a PEM public key, certificate or private key ({err}); "
            "give it as '-----BEGIN PUBLIC KEY-----' (SPKI)"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyFormatError(
            f"the realm key is {type(key).__name__}, not RSA: the IdP imports only RSA keys"
        )
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
