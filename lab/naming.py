"""Names every component agrees on: namespaces, SPIFFE IDs, issuers, audiences, scopes.

One place for each string that must be byte-equal in several configurations (an issuer in the
IdP, the gateway and the decision service; a SPIFFE ID in SPIRE, the IdP client and a Cedar
entity). Components import these; none spells them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from lab.settings import LabSettings

REALM = "lab"


class Namespace(StrEnum):
    """Kubernetes namespaces of the lab."""

    VAULT = "vault"
    SPIRE_SERVER = "spire-server"
    SPIRE_SYSTEM = "spire-system"
    IDP = "idp"
    GATEWAY = "gateway"
    LAB_SYSTEM = "lab-system"  # decision service, push-consent relay, CAEP services
    AGENTS = "lab-agents"
    SERVICES = "lab-services"
    APPS = "lab-apps"
    MODELS = "models"
    AWS_EMULATOR = "aws-emulator"


# A label of the lab's own on Kong's proxy pods: the one caller the models and the decision
# service admit from the gateway's namespace (its ingress controller is not admitted).
GATEWAY_PROXY_LABELS = {"identity-lab/role": "gateway-proxy"}


class WorkloadClass(StrEnum):
    """The classes SPIRE issues identities to, each with one ClusterSPIFFEID."""

    AGENTS = "agents"
    SERVICES = "services"
    GATEWAY = "gateway"
    LAB_SERVICES = "lab-services"


# Where each class runs. System namespaces (kube-*, spire-*, vault, idp) get no SVIDs.
CLASS_NAMESPACES = {
    WorkloadClass.AGENTS: Namespace.AGENTS,
    WorkloadClass.SERVICES: Namespace.SERVICES,
    WorkloadClass.GATEWAY: Namespace.GATEWAY,
    WorkloadClass.LAB_SERVICES: Namespace.LAB_SYSTEM,
}

# The one SPIFFE ID template: the standard Kubernetes shape, namespace then service account.
SPIFFE_ID_TEMPLATE = "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    return SPIFFE_ID_TEMPLATE.format(
        trust_domain=trust_domain, namespace=namespace, service_account=service_account
    )


class Audience(StrEnum):
    """Resource-server audiences of access tokens (the gateway's routes)."""

    CHAT = "chat-models"
    IMAGE = "image-models"
    SERVICES = "lab-services"


class Scope(StrEnum):
    """OAuth scopes the realm defines and the Cedar policies read."""

    CHAT = "chat:invoke"
    IMAGE = "image:generate"
    SERVICE = "service:call"
    RESULT = "result:read"


# The push-consent relay: the IdP's CIBA authentication channel POSTs each request here.
PUSH_CONSENT_RELAY = "push-consent-relay"
PUSH_CONSENT_RELAY_PORT = 8080


def ciba_channel_url(cluster_dns_domain: str) -> str:
    """In-cluster URL of the relay's CIBA endpoint (Keycloak's httpAuthenticationChannelUri)."""
    return (
        f"http://{PUSH_CONSENT_RELAY}.{Namespace.LAB_SYSTEM}.svc.{cluster_dns_domain}"
        f":{PUSH_CONSENT_RELAY_PORT}/ciba"
    )


@dataclass(frozen=True)
class Issuers:
    """One issuer string per token source, byte-equal everywhere it is configured."""

    idp: str
    """The realm issuer: `iss` of every IdP token, and the `aud` of JWT-SVIDs sent to it."""
    spire: str
    """SPIRE's JWT-SVID issuer, also served by its OIDC discovery provider."""
    caep: str
    """`iss` of the CAEP transmitter's Security Event Tokens."""


def issuers(settings: LabSettings) -> Issuers:
    return Issuers(
        idp=f"{settings.hosts.idp_url}/realms/{REALM}",
        spire=f"https://{settings.hosts.oidc}",
        caep=f"https://caep.{settings.hosts.base_domain}",
    )
