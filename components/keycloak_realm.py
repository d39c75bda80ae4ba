"""The Keycloak adapter: renders the IdP-neutral realm model (lab/realm.py) with pulumi-keycloak.

pulumi-keycloak rather than a realm import: `--import-realm` never updates a realm that exists,
while these resources change it in place on every `pulumi up`, and each piece (client, scope,
key) is a resource the plan and the tests can see. The caller passes the keycloak provider
(built from the IdentityProvider's outputs); nothing here builds one.

The realm signing key is generated and certified under the lab root here and imported with
the `rsa` key provider at the highest priority, so every token is RS256 under a key whose
public half (SPKI PEM) the gateway and the decision service get at deploy time.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_keycloak as keycloak
import pulumi_random as random

from components.root_ca import TOKEN_SIGNING, KeySpec, RootCa, Subject
from lab.realm import Client, ClientAuth, ClientRole, Grant, Realm, spki_pem, validate

SPIFFE_ASSERTION_AUTHENTICATOR = "federated-jwt"

# Fine-grained admin permissions v2: the client Keycloak makes when a realm turns them on, and
# the resource type and scope its token-exchange delegation checks for the acting agent.
ADMIN_PERMISSIONS_CLIENT = "admin-permissions"
USERS_RESOURCE_TYPE = "Users"
DELEGATE_SCOPE = "delegate"


@dataclass(frozen=True)
class KeycloakRealmArgs:
    realm: Realm
    """The realm model; validated before any resource is made."""
    spiffe_bundle_endpoint: pulumi.Input[str] | None = None
    """JWKS of SPIRE's JWT-SVID keys (its OIDC discovery provider), as Keycloak reaches it.
    Without it the realm trusts no SVID and the SPIFFE clients cannot authenticate."""


class KeycloakRealm(pulumi.ComponentResource):
    """The lab realm in Keycloak: key, scopes, clients, users, SPIFFE trust, CIBA policy."""

    issuer: str
    """The realm issuer, byte-equal to lab.naming.issuers(settings).idp."""
    public_key_pem: pulumi.Output[str]
    """The realm signing key's public half, SPKI PEM."""
    signing_cert_pem: pulumi.Output[str]
    """Its certificate under the lab root."""
    user_passwords: dict[str, pulumi.Output[str]]
    """Demo users' initial passwords by user name (secret)."""
    client_secrets: dict[str, pulumi.Output[str]]
    """Secrets of the clients that use one (the demo app), by client id (secret)."""

    def __init__(self, name: str, args: KeycloakRealmArgs, root_ca: RootCa, opts=None) -> None:
        super().__init__("identity-lab:idp:KeycloakRealm", name, None, opts)
        model = validate(args.realm)
        self.issuer = model.issuer
        self._name = name

        self.realm = self._create_realm(name, model)
        self.public_key_pem, self.signing_cert_pem = self._create_signing_key(name, model, root_ca)
        scopes = self._create_scopes(name, model)
        clients = self._create_clients(name, model, scopes)
        self._create_audience_mappers(name, model, scopes, clients)
        self._create_delegate_permission(name, model, clients)
        self._create_users(name, model)
        if args.spiffe_bundle_endpoint is not None:
            self._create_spiffe_trust(name, model, args.spiffe_bundle_endpoint)
        else:
            # A stack without SPIRE: no SVID is trusted, so agents and services cannot log in.
            pulumi.log.warn(
                "No SPIFFE bundle endpoint: the realm trusts no JWT-SVID yet.", resource=self
            )
        self.clients = clients

        self.register_outputs({"issuer": self.issuer, "publicKeyPem": self.public_key_pem})

    def _child(self, **kwargs) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, **kwargs)

    def _create_realm(self, name: str, model: Realm) -> keycloak.Realm:
        life, ciba = model.lifetimes, model.ciba
        return keycloak.Realm(
            f"{name}-realm",
            realm=model.name,
            enabled=True,
            ssl_required="all",
            registration_allowed=False,
            default_signature_algorithm=model.signing_key.algorithm,
            access_token_lifespan=f"{life.access_token}s",
            sso_session_idle_timeout=f"{life.sso_idle}s",
            sso_session_max_lifespan=f"{life.sso_max}s",
            revoke_refresh_token=True,
            # Makes Keycloak create the `admin-permissions` client that holds the `delegate`
            # permission; without that permission every delegated exchange is refused.
            admin_permissions_enabled=True,
            attributes={
                "cibaBackchannelTokenDeliveryMode": ciba.delivery_mode,
                "cibaExpiresIn": str(ciba.expires_in),
                "cibaInterval": str(ciba.interval),
                "cibaAuthRequestedUserHint": ciba.user_hint,
            },
            opts=self._child(),
        )

    def _create_signing_key(self, name: str, model: Realm, root_ca: RootCa):
        key, cert = root_ca.issue(
            f"{name}-signing",
            Subject(common_name=f"{model.name} realm token signing", uris=(model.issuer,)),
            TOKEN_SIGNING,
            KeySpec("RSA", rsa_bits=model.signing_key.bits),
            opts=self._child(),
        )
        keycloak.RealmKeystoreRsa(
            f"{name}-keystore",
            realm_id=self.realm.id,
            name="lab-root-rsa",
            provider_id="rsa",
            algorithm=model.signing_key.algorithm,
            priority=model.signing_key.priority,
            active=True,
            enabled=True,
            private_key=pulumi.Output.secret(key.private_key_pem_pkcs8),
            certificate=cert.cert_pem,
            opts=self._child(),
        )
        # Derived from the certificate, so the key handed out is the one the root certified.
        return cert.cert_pem.apply(spki_pem), cert.cert_pem

    def _create_scopes(self, name: str, model: Realm) -> dict[str, keycloak.openid.ClientScope]:
        scopes: dict[str, keycloak.openid.ClientScope] = {}
        for scope in model.scopes:
            created = keycloak.openid.ClientScope(
                f"{name}-scope-{scope.name.replace(':', '-')}",
                realm_id=self.realm.id,
                name=scope.name,
                description=scope.description,
                include_in_token_scope=True,
                opts=self._child(),
            )
            scopes[scope.name] = created
        claims = keycloak.openid.ClientScope(
            f"{name}-scope-claims",
            realm_id=self.realm.id,
            name=model.claims_scope,
            description="The lab's user claims: groups and delegates",
            include_in_token_scope=False,
            opts=self._child(),
        )
        keycloak.openid.GroupMembershipProtocolMapper(
            f"{name}-claim-groups",
            realm_id=self.realm.id,
            client_scope_id=claims.id,
            name="groups",
            claim_name="groups",
            full_path=False,
            opts=self._child(),
        )
        keycloak.openid.UserAttributeProtocolMapper(
            f"{name}-claim-delegates",
            realm_id=self.realm.id,
            client_scope_id=claims.id,
            name="delegates",
            user_attribute="delegates",
            claim_name="delegates",
            multivalued=True,
            add_to_id_token=False,
            opts=self._child(),
        )
        scopes[model.claims_scope] = claims
        return scopes

    def _create_clients(self, name: str, model: Realm, scopes) -> dict[str, keycloak.openid.Client]:
        created: dict[str, keycloak.openid.Client] = {}
        self.client_secrets = {}
        # Resource servers first: audience mappers and exchanges name them.
        ordered = sorted(model.clients, key=lambda c: c.role is not ClientRole.RESOURCE_SERVER)
        for client in ordered:
            slug = _slug(client.client_id)
            created[client.client_id] = self._create_client(f"{name}-client-{slug}", model, client)
            if client.role is ClientRole.RESOURCE_SERVER:
                continue
            # Built-in scopes (basic, profile) are named as Keycloak names them.
            keycloak.openid.ClientDefaultScopes(
                f"{name}-client-{slug}-default-scopes",
                realm_id=self.realm.id,
                client_id=created[client.client_id].id,
                default_scopes=[
                    scopes[s].name if s in scopes else s for s in client.default_scopes
                ],
                opts=self._child(),
            )
            optional = [scopes[s].name for s in client.optional_scopes]
            if client.role is ClientRole.AGENT:
                # The consent scope the agent asks for by CIBA: delegation:client:<its id>.
                optional.append(model.delegation_scope)
            keycloak.openid.ClientOptionalScopes(
                f"{name}-client-{slug}-optional-scopes",
                realm_id=self.realm.id,
                client_id=created[client.client_id].id,
                optional_scopes=optional,
                opts=self._child(),
            )
        return created

    def _create_audience_mappers(self, name: str, model: Realm, scopes, clients) -> None:
        for scope in model.scopes:
            if scope.audience is None:
                continue
            slug = scope.name.replace(":", "-")
            # Asking for the scope is what puts its resource server in `aud`.
            keycloak.openid.AudienceProtocolMapper(
                f"{name}-scope-{slug}-audience",
                realm_id=self.realm.id,
                client_scope_id=scopes[scope.name].id,
                name=f"audience-{scope.audience}",
                included_client_audience=scope.audience,
                add_to_access_token=True,
                add_to_id_token=False,
                opts=self._child(depends_on=[clients[scope.audience]]),
            )

    def _create_delegate_permission(self, name: str, model: Realm, clients) -> None:
        actors = model.delegation_actors
        if not actors:
            return
        invoke = pulumi.InvokeOutputOptions(parent=self)
        # Looked up, not created: Keycloak makes this client and its scopes with the realm.
        admin_permissions = keycloak.openid.get_client_output(
            realm_id=self.realm.id, client_id=ADMIN_PERMISSIONS_CLIENT, opts=invoke
        )
        # By id: Keycloak stores scope ids, so a name here would show a change on every plan.
        delegate = keycloak.openid.get_client_authorization_scope_output(
            realm_id=self.realm.id,
            resource_server_id=admin_permissions.id,
            name=DELEGATE_SCOPE,
            opts=invoke,
        )
        agents = keycloak.openid.ClientPolicy(
            f"{name}-delegating-agents",
            realm_id=self.realm.id,
            resource_server_id=admin_permissions.id,
            name="delegating-agents",
            description="The lab's agents, which act for users in delegated exchanges.",
            clients=[clients[c.client_id].id for c in actors],
            logic="POSITIVE",
            decision_strategy="UNANIMOUS",
            opts=self._child(),
        )
        # One permission over all users naming every agent: admin permissions are decided
        # unanimously, so a second `delegate` permission would veto this one. The user's
        # consent (`may_act`) still picks which agent may act for whom.
        # TODO: limit it to the users whose `delegates` name the agent once pulumi-keycloak
        # takes `resources` together with `resource_type` (FGAP v2 needs both for that).
        keycloak.openid.ClientAuthorizationPermission(
            f"{name}-delegate-permission",
            realm_id=self.realm.id,
            resource_server_id=admin_permissions.id,
            name="agents-delegate-for-users",
            description="Lets the lab's agents act for a consenting user (token exchange).",
            type="scope",
            resource_type=USERS_RESOURCE_TYPE,
            scopes=[delegate.id],
            policies=[agents.id],
            decision_strategy="UNANIMOUS",
            opts=self._child(),
        )

    def _create_client(self, resource: str, model: Realm, client: Client) -> keycloak.openid.Client:
        common = {
            "realm_id": self.realm.id,
            "client_id": client.client_id,
            "name": client.client_id,
            "description": client.description,
            "enabled": True,
            "full_scope_allowed": False,
            "opts": self._child(),
        }
        if client.role is ClientRole.RESOURCE_SERVER:
            return keycloak.openid.Client(resource, access_type="BEARER-ONLY", **common)

        lifespan = str(client.access_token_seconds)
        if client.auth is ClientAuth.SECRET:
            secret = random.RandomPassword(
                f"{resource}-secret", length=40, special=False, opts=self._child()
            )
            self.client_secrets[client.client_id] = pulumi.Output.secret(secret.result)
            return keycloak.openid.Client(
                resource,
                access_type="CONFIDENTIAL",
                client_secret=pulumi.Output.secret(secret.result),
                standard_flow_enabled=Grant.AUTHORIZATION_CODE in client.grants,
                pkce_code_challenge_method="S256" if client.pkce else "",
                valid_redirect_uris=list(client.redirect_uris),
                valid_post_logout_redirect_uris=list(client.redirect_uris),
                web_origins=sorted({_origin(u) for u in client.redirect_uris}),
                direct_access_grants_enabled=False,
                implicit_flow_enabled=False,
                service_accounts_enabled=Grant.CLIENT_CREDENTIALS in client.grants,
                standard_token_exchange_enabled=client.exchanges,
                access_token_lifespan=lifespan,
                **common,
            )

        extra = {
            # Federated client authentication: the JWT-SVID is the only credential.
            "jwt.credential.issuer": model.spiffe.alias,
            "jwt.credential.sub": client.spiffe_id,
        }
        if Grant.CIBA in client.grants:
            extra["oidc.ciba.grant.enabled"] = "true"
            extra["ciba.backchannel.token.delivery.mode"] = model.ciba.delivery_mode
        return keycloak.openid.Client(
            resource,
            access_type="CONFIDENTIAL",
            client_authenticator_type=SPIFFE_ASSERTION_AUTHENTICATOR,
            extra_config=extra,
            standard_flow_enabled=False,
            direct_access_grants_enabled=False,
            implicit_flow_enabled=False,
            # Client credentials: a service's own token, or an agent's actor token.
            service_accounts_enabled=Grant.CLIENT_CREDENTIALS in client.grants,
            standard_token_exchange_enabled=client.exchanges,
            access_token_lifespan=lifespan,
            **common,
        )

    def _create_users(self, name: str, model: Realm) -> None:
        self.user_passwords = {}
        groups = {
            g: keycloak.Group(
                f"{name}-group-{g}", realm_id=self.realm.id, name=g, opts=self._child()
            )
            for g in model.groups
        }
        # `delegates` is an admin-managed attribute: users cannot add agents to it themselves.
        profile = keycloak.RealmUserProfile(
            f"{name}-user-profile",
            realm_id=self.realm.id,
            unmanaged_attribute_policy="ADMIN_VIEW",
            attributes=[
                *[
                    keycloak.RealmUserProfileAttributeArgs(
                        name=attribute,
                        permissions=keycloak.RealmUserProfileAttributePermissionsArgs(
                            views=["admin", "user"], edits=["admin", "user"]
                        ),
                    )
                    for attribute in ("username", "email", "firstName", "lastName")
                ],
                keycloak.RealmUserProfileAttributeArgs(
                    name="delegates",
                    multi_valued=True,
                    permissions=keycloak.RealmUserProfileAttributePermissionsArgs(
                        views=["admin"], edits=["admin"]
                    ),
                ),
            ],
            opts=self._child(),
        )
        members: dict[str, list] = {g: [] for g in model.groups}
        for user in model.users:
            password = random.RandomPassword(
                f"{name}-user-{user.username}-password",
                length=24,
                special=False,
                opts=self._child(),
            )
            self.user_passwords[user.username] = pulumi.Output.secret(password.result)
            created = keycloak.User(
                f"{name}-user-{user.username}",
                realm_id=self.realm.id,
                username=user.username,
                email=user.email,
                email_verified=True,
                first_name=user.first_name,
                last_name=user.last_name,
                enabled=True,
                # Multi-valued attributes are joined with "##" by the provider.
                attributes={"delegates": "##".join(user.delegates)} if user.delegates else None,
                initial_password=keycloak.UserInitialPasswordArgs(
                    value=pulumi.Output.secret(password.result), temporary=False
                ),
                opts=self._child(depends_on=[profile]),
            )
            for g in user.groups:
                members[g].append(created.username)
        for g, usernames in members.items():
            keycloak.GroupMemberships(
                f"{name}-group-{g}-members",
                realm_id=self.realm.id,
                group_id=groups[g].id,
                members=usernames,
                opts=self._child(),
            )

    def _create_spiffe_trust(self, name: str, model: Realm, bundle_endpoint) -> None:
        keycloak.SpiffeIdentityProvider(
            f"{name}-spiffe",
            realm=self.realm.id,
            alias=model.spiffe.alias,
            display_name="SPIRE (lab trust domain)",
            trust_domain=model.spiffe.trust_domain,
            bundle_endpoint=bundle_endpoint,
            enabled=True,
            opts=self._child(),
        )


def _slug(client_id: str) -> str:
    """A resource-name-safe form of a client id (SPIFFE IDs hold ':' and '/')."""
    tail = client_id.rsplit("/", 1)[-1]
    kind = "agent" if "/ns/lab-agents/" in client_id else "service" if "://" in client_id else ""
    return f"{kind}-{tail}" if kind else tail


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
