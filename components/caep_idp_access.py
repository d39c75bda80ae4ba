"""The CAEP receiver's access to the IdP: a realm client that may end users' sessions.

A confidential client with a service account and one role, realm-management's
`manage-users`: the least Keycloak offers that covers deleting a session and logging a user
out. The receiver gets a token with client credentials and calls the realm's admin API.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_keycloak as keycloak
import pulumi_random as random

from components.signal_services import IdpAdminAccess

CLIENT_ID = "caep-receiver"
ADMIN_ROLE = "manage-users"


@dataclass(frozen=True)
class CaepIdpAccessArgs:
    realm_id: pulumi.Input[str]
    """The realm's id (the keycloak.Realm resource's id)."""
    realm_name: str
    idp_url: str
    """The IdP's base URL as pods reach it, such as https://idp.lab.localhost:9443."""


class CaepIdpAccess(pulumi.ComponentResource):
    """The receiver's admin client; the Keycloak provider comes from the caller."""

    access: IdpAdminAccess
    """What the receiver is configured with (the client secret is secret)."""

    def __init__(
        self, name: str, args: CaepIdpAccessArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("identity-lab:signals:CaepIdpAccess", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # TODO: a static client secret; authenticate with the receiver's JWT-SVID instead
        # (as the agents do) once lab-system workloads mount the SPIFFE Workload API.
        secret = random.RandomPassword(f"{name}-secret", length=40, special=False, opts=child)
        client = keycloak.openid.Client(
            f"{name}-client",
            realm_id=args.realm_id,
            client_id=CLIENT_ID,
            name="CAEP receiver",
            description="Ends sessions named by CAEP events (client credentials only).",
            access_type="CONFIDENTIAL",
            client_secret=pulumi.Output.secret(secret.result),
            service_accounts_enabled=True,
            standard_flow_enabled=False,
            implicit_flow_enabled=False,
            direct_access_grants_enabled=False,
            opts=child,
        )
        realm_management = keycloak.openid.get_client_output(
            realm_id=args.realm_id,
            client_id="realm-management",
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        keycloak.openid.ClientServiceAccountRole(
            f"{name}-manage-users",
            realm_id=args.realm_id,
            service_account_user_id=client.service_account_user_id,
            client_id=realm_management.id,
            role=ADMIN_ROLE,
            opts=child,
        )
        base = args.idp_url.rstrip("/")
        self.access = IdpAdminAccess(
            idp_url=base,
            realm=args.realm_name,
            token_url=f"{base}/realms/{args.realm_name}/protocol/openid-connect/token",
            client_id=CLIENT_ID,
            client_secret=pulumi.Output.secret(secret.result),
        )
        self.register_outputs({"clientId": CLIENT_ID})
