"""The gateway: Kong Gateway OSS, DB-less with its ingress controller, as the lab's policy
enforcement point in front of the models and the demo services.

Every model and service route carries, in this order (Kong runs plugins by priority):
the bundled `jwt` plugin (RS256 signature, issuer and expiry, with each trusted issuer's key
known at deploy time), the lab's own `lab-authz` Lua plugin (audience, scope, top-level
actor, then an AuthZEN decision from the decision service; deny on any error), and
`rate-limiting` per consumer with the `local` policy. The chat route then goes through Kong's
open-source `ai-proxy` to Ollama. The decision service and Kong's admin API get no route and
no host port: only the proxy's TLS listener is published, with a certificate from the
caller's `TlsIssuer` (in the lab: Vault's PKI intermediate, so leaf -> intermediate -> root).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.cluster import NODE_PORTS
from components.tls_issuer import TlsIssuer
from lab.naming import GATEWAY_PROXY_LABELS, Audience, Namespace, Scope, issuers, spiffe_id
from lab.settings import LabSettings
from lab.versions import PINS, Chart, Image

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "lab-authz"
PLUGIN_DIR = ROOT / "gateway" / "plugins" / PLUGIN_NAME

INGRESS_CLASS = "kong"
ALGORITHM = "RS256"

# Kong runs a route's plugins by descending priority, whatever order they are listed in:
# jwt (bundled, 1450) -> lab-authz (handler.lua, 1000) -> rate-limiting (bundled, 910)
# -> ai-proxy (bundled, 770). A test reads lab-authz's priority from handler.lua.
BUNDLED_PRIORITY = {"jwt": 1450, "rate-limiting": 910, "ai-proxy": 770}

# The chart's own CRDs, at the version of the `kong` chart the `ingress` chart depends on.
_CRDS_URL = (
    "https://raw.githubusercontent.com/Kong/charts/kong-{version}"
    "/charts/kong/crds/custom-resource-definitions.yaml"
)

# A label of the lab's own on the proxy pods, so a workload's NetworkPolicy can admit them.
PROXY_POD_LABELS = GATEWAY_PROXY_LABELS
# The served chain's SHA-256 on the proxy pods: a renewed certificate changes it and rolls them.
TLS_DIGEST_ANNOTATION = "identity-lab/tls-chain-sha256"

_KONG_CLASS = {"kubernetes.io/ingress.class": INGRESS_CLASS}


class KongObject(pulumi.CustomResource):
    """A Kong custom resource. KongPlugin and KongConsumer keep their fields at the top level
    (`plugin`, `config`, `username`, `credentials`), which the SDK's CustomResource (spec
    only) cannot carry; the Kubernetes provider takes any `kubernetes:<apiVersion>:<kind>`."""

    def __init__(
        self,
        name: str,
        kind: str,
        metadata: dict[str, Any],
        fields: dict[str, Any],
        opts: pulumi.ResourceOptions,
        api_version: str = "configuration.konghq.com/v1",
    ):
        props = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields}
        super().__init__(f"kubernetes:{api_version}:{kind}", name, props, opts)


class GatewayConfigError(ValueError):
    """A gateway argument that Kong would reject or that would weaken enforcement."""


def spki_pem(pem: str, where: str = "the signing key") -> str:
    """An RSA public key as SPKI `PUBLIC KEY` PEM, the form Kong's jwt plugin accepts.

    A PKCS#1 `RSA PUBLIC KEY` PEM is converted; anything else (a certificate, a private key,
    an EC key, a short RSA key) is refused with the reason.
    """
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError) as err:
        raise GatewayConfigError(
            f"{where}: not a PEM public key ({err}); give the RSA public key as "
            f"'PUBLIC KEY' (SPKI) or 'RSA PUBLIC KEY' (PKCS#1) PEM"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise GatewayConfigError(
            f"{where}: a {type(key).__name__} cannot verify RS256; give an RSA public key"
        )
    if key.key_size < 2048:
        raise GatewayConfigError(f"{where}: RSA key of {key.key_size} bits; 2048 or more needed")
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


@dataclass(frozen=True)
class TrustedIssuer:
    """A token source the gateway accepts: one Kong consumer with one jwt credential."""

    name: str
    """Short name, a DNS label: the consumer is `issuer-<name>`."""
    issuer: str
    """The `iss` of its tokens, byte for byte: the credential's key."""
    public_key_pem: pulumi.Input[str]
    """Its RS256 verification key, PEM (SPKI, or PKCS#1 which is converted)."""


@dataclass(frozen=True)
class WebEntry:
    """A browser front-end on its own host name: TLS at the gateway, no token plugins.

    The app logs its users in itself (authorization code + PKCE) and calls the API routes
    with their tokens, where every check applies; its pages carry no token to check.
    """

    name: str
    """DNS label; names the Ingress."""
    host: str
    """Its public host name (also a DNS name of the gateway's certificate)."""
    namespace: str
    """The app's namespace (the Ingress lives there too)."""
    service: str
    """The app's Service name."""
    port: int
    """The app's Service port."""


@dataclass(frozen=True)
class Route:
    """A path on the gateway's host to a backend Service, with the decision it needs."""

    name: str
    """DNS label; names the Ingress and the route's plugins."""
    path: str
    """Path prefix on the gateway host, stripped before the backend sees the request."""
    namespace: str
    """The backend Service's namespace (the Ingress and its plugins live there too)."""
    service: str
    """Backend Service name."""
    port: int
    """Backend Service port."""
    audience: str
    """The `aud` a token must carry for this route."""
    scopes: tuple[str, ...]
    """Scopes a token must carry, all of them."""
    action: str
    """AuthZEN action name (docs/contracts.md)."""
    resource_type: str
    """AuthZEN resource type: model, service or result."""
    resource_id: str
    """AuthZEN resource id."""
    actor_required: bool = False
    """Agent route: only delegated tokens (with `act`) may use it."""
    ai_proxy: dict[str, Any] | None = None
    """Kong ai-proxy config for model routes; None for a plain proxy."""


@dataclass(frozen=True)
class GatewayArgs:
    """What the gateway needs; `from_settings` fills it for the lab."""

    namespace: str
    """Namespace of Kong, its consumers and credential Secrets."""
    hostname: str
    """The public host name, the TLS certificate's DNS name."""
    public_url: str
    """The URL clients use (host port on 127.0.0.1)."""
    node_port: int
    """NodePort of the proxy's TLS listener, mapped to the host by the kind config."""
    https_port: int
    """The public URL's port; the proxy Service listens on it too, so pods use the same URL."""
    cluster_dns_domain: str
    """The cluster's DNS domain, for the proxy Service's name."""
    trusted_issuers: Sequence[TrustedIssuer]
    """Token sources, one consumer each."""
    routes: Sequence[Route]
    """Every route, each with jwt, lab-authz and rate-limiting."""
    decision_url: str
    """The decision service's AuthZEN evaluation endpoint (in-cluster only)."""
    agent_prefix: str
    """SPIFFE ID prefix of agents: their tokens must carry `act`."""
    maximum_expiration: int
    """jwt plugin: the furthest `exp` may lie in the future, seconds."""
    rate_limit_per_minute: int = 120
    """Requests per minute per consumer (local policy: per Kong node)."""
    decision_timeout_ms: int = 300
    """Budget for one decision call; past it the request is denied."""
    max_token_bytes: int = 8192
    """Longer tokens are refused before they are decoded."""
    web_entries: Sequence[WebEntry] = ()
    """Browser front-ends served on their own host names."""
    chart: Chart = PINS.kong
    crds_chart: Chart = PINS.kong_crds
    image: Image = PINS.kong_image
    controller_image: Image = PINS.kong_controller_image
    resources: dict[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "100m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        }
    )
    """Proxy container resources."""
    controller_resources: dict[str, Any] = field(
        default_factory=lambda: {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        }
    )
    """Ingress controller container resources."""

    def __post_init__(self) -> None:
        names = [r.name for r in self.routes]
        if len(set(names)) != len(names):
            raise GatewayConfigError(f"gateway routes: names must differ, got {names}")
        routed = {r.namespace for r in self.routes} | {w.namespace for w in self.web_entries}
        if Namespace.LAB_SYSTEM.value in routed:
            raise GatewayConfigError(
                f"gateway routes: nothing in {Namespace.LAB_SYSTEM.value} is routed "
                "(the decision service is never exposed)"
            )
        if not self.trusted_issuers:
            raise GatewayConfigError("gateway: at least one trusted issuer is needed")
        if not 0 < self.maximum_expiration <= 31536000:
            raise GatewayConfigError(
                f"gateway maximum_expiration={self.maximum_expiration}: allowed 1 to 31536000"
            )

    @property
    def tls_hosts(self) -> tuple[str, ...]:
        """The proxy certificate's names: the API host, then each web entry's host."""
        return (self.hostname, *(w.host for w in self.web_entries))

    @classmethod
    def from_settings(
        cls,
        settings: LabSettings,
        idp_public_key_pem: pulumi.Input[str],
        *,
        decision_url: str | None = None,
        decision_service: str = "decision",
        decision_port: int = 8080,
        ollama_service: str = "ollama",
        ollama_port: int = 11434,
        image_service: str = "stable-diffusion",
        image_port: int = 8080,
        services: Sequence[tuple[str, str, int]] = (("target", "service-target", 8080),),
        demo_app: tuple[str, int] = ("demo-app", 8080),
    ) -> GatewayArgs:
        """The lab's gateway: the IdP as the trusted issuer, chat (and images) and services.

        `decision_url` is the decision service's base URL (else built from its Service name
        and port). `services` are (path segment, Service name, port) in lab-services;
        each is routed at /services/<segment> as the resource named by its SPIFFE ID (the
        Service's name is its service account's). `demo_app` is the (Service, port) of the
        demo web app, served at the app host name.
        """
        dns = settings.cluster_dns_domain
        ollama = f"http://{ollama_service}.{Namespace.MODELS}.svc.{dns}:{ollama_port}"
        routes = [
            Route(
                name="chat",
                path="/models/chat",
                namespace=Namespace.MODELS.value,
                service=ollama_service,
                port=ollama_port,
                audience=Audience.CHAT.value,
                scopes=(Scope.CHAT.value,),
                action="invoke_chat_model",
                resource_type="model",
                resource_id="chat",
                ai_proxy=ollama_chat(f"{ollama}/api/chat", settings.ollama_model),
            )
        ]
        if settings.stable_diffusion:
            routes.append(
                Route(
                    name="images",
                    path="/models/images",
                    namespace=Namespace.MODELS.value,
                    service=image_service,
                    port=image_port,
                    audience=Audience.IMAGE.value,
                    scopes=(Scope.IMAGE.value,),
                    action="generate_image",
                    resource_type="model",
                    resource_id="image",
                )
            )
        for segment, service, port in services:
            routes.append(
                Route(
                    name=f"service-{segment}",
                    path=f"/services/{segment}",
                    namespace=Namespace.SERVICES.value,
                    service=service,
                    port=port,
                    audience=Audience.SERVICES.value,
                    scopes=(Scope.SERVICE.value,),
                    action="call_service",
                    resource_type="service",
                    resource_id=spiffe_id(settings.trust_domain, Namespace.SERVICES, service),
                )
            )
        lifetimes = settings.lifetimes
        return cls(
            namespace=Namespace.GATEWAY.value,
            hostname=settings.hosts.gateway,
            public_url=settings.hosts.gateway_url,
            node_port=NODE_PORTS["gateway_https"],
            https_port=settings.ports.gateway_https,
            cluster_dns_domain=dns,
            trusted_issuers=[
                TrustedIssuer("idp", issuers(settings).idp, idp_public_key_pem),
            ],
            routes=routes,
            # TODO: plain HTTP in the cluster, limited by NetworkPolicy to Kong's proxy pods;
            # goes once Kong presents its SPIFFE identity to the decision service (mTLS).
            decision_url=(
                decision_url
                or f"http://{decision_service}.{Namespace.LAB_SYSTEM}.svc.{dns}:{decision_port}"
            ).rstrip("/")
            + "/access/v1/evaluation",
            agent_prefix=f"spiffe://{settings.trust_domain}/ns/{Namespace.AGENTS}/sa/",
            # The longest token the gateway sees, plus the IdP's clock running ahead.
            maximum_expiration=max(lifetimes.access_token, lifetimes.delegated_token)
            + lifetimes.clock_skew,
            web_entries=[
                WebEntry("app", settings.hosts.app, Namespace.APPS.value, *demo_app),
            ],
        )


def ollama_chat(upstream_url: str, model: str) -> dict[str, Any]:
    """ai-proxy for Ollama: clients speak OpenAI chat, Kong translates to Ollama's /api/chat."""
    return {
        "route_type": "llm/v1/chat",
        "llm_format": "openai",
        "model": {
            # Kong's driver for self-hosted Llama-family servers; it speaks Ollama's format.
            "provider": "llama2",
            "name": model,
            "options": {"llama2_format": "ollama", "upstream_url": upstream_url},
        },
        # Prompts and answers stay out of Kong's logs.
        "logging": {"log_statistics": False, "log_payloads": False},
    }


def jwt_config(maximum_expiration: int) -> dict[str, Any]:
    """The bundled jwt plugin: the credential chosen by `iss`, RS256 only, `exp` enforced."""
    return {
        "key_claim_name": "iss",
        "claims_to_verify": ["exp"],
        "maximum_expiration": maximum_expiration,
        # Only the Authorization header: a token in a query string ends up in access logs.
        "header_names": ["authorization"],
        "uri_param_names": [],
        "cookie_names": [],
        "secret_is_base64": False,
        "run_on_preflight": True,
    }


def rate_limit_config(per_minute: int) -> dict[str, Any]:
    # `local` keeps counters in the node's memory: it needs no database, so DB-less Kong
    # accepts it (a `cluster` policy makes the whole DB-less config invalid).
    # TODO: a consumer is a trusted issuer, so the realm's users share one bucket per route;
    # switch to `limit_by: header` on X-Lab-Subject once the live suite shows Kong's
    # rate-limiting reads the header lab-authz sets.
    return {
        "minute": per_minute,
        "policy": "local",
        "limit_by": "consumer",
        "fault_tolerant": False,
    }


def authz_config(args: GatewayArgs, route: Route) -> dict[str, Any]:
    """The lab-authz plugin's config for one route (schema.lua)."""
    return {
        "decision_url": args.decision_url,
        "timeout_ms": args.decision_timeout_ms,
        "audience": route.audience,
        "scopes": list(route.scopes),
        "action": route.action,
        "resource_type": route.resource_type,
        "resource_id": route.resource_id,
        "route": route.name,
        "actor_required": route.actor_required,
        "agent_prefix": args.agent_prefix,
        "max_token_bytes": args.max_token_bytes,
    }


def route_plugins(route: Route) -> list[str]:
    """The plugins on a route, by name: shared jwt and rate limit, its own authz (and AI)."""
    names = ["lab-jwt", f"lab-authz-{route.name}", "lab-rate-limit"]
    if route.ai_proxy is not None:
        names.append(f"lab-ai-proxy-{route.name}")
    return names


def plugin_files(plugin_dir: Path = PLUGIN_DIR) -> dict[str, str]:
    """The plugin's Lua modules, as the ConfigMap the chart mounts at /opt/kong/plugins."""
    files = {p.name: p.read_text() for p in sorted(plugin_dir.glob("*.lua"))}
    missing = {"handler.lua", "schema.lua"} - set(files)
    if missing:
        raise GatewayConfigError(f"{plugin_dir}: the plugin has no {sorted(missing)}")
    return files


class Gateway(pulumi.ComponentResource):
    """Kong with the lab's consumers, plugins and routes."""

    url: str
    """The gateway's public URL (https, on 127.0.0.1 through the kind port mapping)."""
    proxy_service_host: str
    """The proxy Service's cluster name, where pods' DNS sends the public host name."""
    proxy_pod_labels: dict[str, str]
    """Labels of the proxy pods, for NetworkPolicies of the backends it calls."""
    release: k8s.helm.v3.Release
    """The Kong release (values visible in plans)."""

    def __init__(
        self,
        name: str,
        args: GatewayArgs,
        tls_issuer: TlsIssuer,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("identity-lab:gateway:Gateway", name, None, opts)
        self._name = name
        self._args = args
        self.url = args.public_url
        # The ingress chart names its Kong subchart "gateway": <release>-gateway-proxy.
        self.proxy_service_host = (
            f"kong-gateway-proxy.{args.namespace}.svc.{args.cluster_dns_domain}"
        )
        self.proxy_pod_labels = dict(PROXY_POD_LABELS)

        crds = self._create_crds()
        tls_secret, tls_digest = self._create_tls(tls_issuer)
        plugin_map = self._create_plugin_map()
        self.release = self._create_release(crds, tls_secret, tls_digest, plugin_map)
        consumers = self._create_consumers(crds)
        shared = self._create_shared_plugins(crds)
        self._create_routes(crds, [*consumers, *shared])
        self._create_web_entries()

        self.register_outputs({"url": self.url})

    def _opts(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on))

    def _create_crds(self) -> k8s.yaml.v2.ConfigFile:
        # CRDs in their own step: the Kong release skips its copy, and every custom
        # resource below depends on this.
        return k8s.yaml.v2.ConfigFile(
            f"{self._name}-crds",
            file=_CRDS_URL.format(version=self._args.crds_chart.version),
            opts=self._opts(),
        )

    def _create_tls(self, tls_issuer: TlsIssuer) -> tuple[k8s.core.v1.Secret, pulumi.Output[str]]:
        args = self._args
        issued = tls_issuer.issue_tls(f"{self._name}-proxy-tls", args.tls_hosts)
        digest = issued.cert_chain_pem.apply(lambda pem: hashlib.sha256(pem.encode()).hexdigest())
        # Kong hands the whole file to nginx, which sends every certificate in it: the leaf
        # first, then the intermediate, so clients that hold only the root can build the path.
        secret = k8s.core.v1.Secret(
            f"{self._name}-proxy-tls",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="gateway-proxy-tls", namespace=args.namespace),
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": issued.cert_chain_pem,
                "tls.key": pulumi.Output.secret(issued.key_pem),
            },
            opts=self._opts(),
        )
        return secret, digest

    def _create_plugin_map(self) -> k8s.core.v1.ConfigMap:
        return k8s.core.v1.ConfigMap(
            f"{self._name}-plugin-{PLUGIN_NAME}",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=f"kong-plugin-{PLUGIN_NAME}", namespace=self._args.namespace
            ),
            data=plugin_files(),
            opts=self._opts(),
        )

    def release_values(
        self, tls_secret: str, plugin_map: str, tls_digest: pulumi.Input[str] = ""
    ) -> dict[str, Any]:
        """Values of the `ingress` chart: controller and DB-less gateway, TLS entry only.

        `tls_digest` (the served chain's SHA-256) goes on the proxy pods, so a renewed
        certificate rolls them: Kong reads `ssl_cert` only when it starts.
        """
        args = self._args
        return {
            "controller": {
                "ingressController": {
                    "image": {
                        "repository": args.controller_image.repository,
                        "tag": args.controller_image.tag,
                    },
                    "ingressClass": INGRESS_CLASS,
                },
                "resources": args.controller_resources,
            },
            "gateway": {
                "image": {"repository": args.image.repository, "tag": args.image.tag},
                "env": {
                    "database": "off",
                    "role": "traditional",
                    "ssl_cert": f"/etc/secrets/{tls_secret}/tls.crt",
                    "ssl_cert_key": f"/etc/secrets/{tls_secret}/tls.key",
                    # No Kong Manager, and no Lua from plugin configs (serverless functions).
                    "admin_gui_listen": "off",
                    "untrusted_lua": "off",
                    "nginx_worker_processes": "1",
                },
                "secretVolumes": [tls_secret],
                "plugins": {"configMaps": [{"name": plugin_map, "pluginName": PLUGIN_NAME}]},
                # The admin API stays inside the cluster, for the controller only.
                "admin": {
                    "enabled": True,
                    "type": "ClusterIP",
                    "clusterIP": "None",
                    "http": {"enabled": False},
                },
                "manager": {"enabled": False},
                "proxy": {
                    "type": "NodePort",
                    "http": {"enabled": False},
                    "tls": {
                        "enabled": True,
                        "servicePort": args.https_port,
                        "nodePort": args.node_port,
                    },
                },
                "podLabels": dict(PROXY_POD_LABELS),
                "podAnnotations": {TLS_DIGEST_ANNOTATION: tls_digest},
                "resources": args.resources,
            },
        }

    def _create_release(
        self,
        crds: pulumi.Resource,
        tls_secret: k8s.core.v1.Secret,
        tls_digest: pulumi.Output[str],
        plugin_map: k8s.core.v1.ConfigMap,
    ) -> k8s.helm.v3.Release:
        args = self._args
        return k8s.helm.v3.Release(
            f"{self._name}-kong",
            name="kong",
            chart=args.chart.name,
            version=args.chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.chart.repo),
            namespace=args.namespace,
            values=self.release_values(
                "gateway-proxy-tls", f"kong-plugin-{PLUGIN_NAME}", tls_digest
            ),
            skip_crds=True,
            timeout=600,
            opts=self._opts([crds, tls_secret, plugin_map]),
        )

    def _create_consumers(self, crds: pulumi.Resource) -> list[pulumi.Resource]:
        args = self._args
        created: list[pulumi.Resource] = []
        for trusted in args.trusted_issuers:
            consumer = f"issuer-{trusted.name}"
            where = f"trusted issuer {trusted.name!r} ({trusted.issuer})"
            # The controller turns a Secret with this label into a jwt credential.
            credential = k8s.core.v1.Secret(
                f"{self._name}-{consumer}-jwt",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"{consumer}-jwt",
                    namespace=args.namespace,
                    labels={"konghq.com/credential": "jwt"},
                ),
                string_data={
                    "key": trusted.issuer,
                    "algorithm": ALGORITHM,
                    "rsa_public_key": pulumi.Output.from_input(trusted.public_key_pem).apply(
                        lambda pem, where=where: spki_pem(pem, where)
                    ),
                },
                opts=self._opts(),
            )
            created.append(credential)
            created.append(
                KongObject(
                    f"{self._name}-{consumer}",
                    "KongConsumer",
                    {"name": consumer, "namespace": args.namespace, "annotations": _KONG_CLASS},
                    {"username": consumer, "credentials": [f"{consumer}-jwt"]},
                    self._opts([crds, credential]),
                )
            )
        return created

    def _create_shared_plugins(self, crds: pulumi.Resource) -> list[pulumi.Resource]:
        # One definition each, cluster-wide, so every route in any namespace uses the same.
        args = self._args
        shared = {
            "lab-jwt": ("jwt", jwt_config(args.maximum_expiration)),
            "lab-rate-limit": ("rate-limiting", rate_limit_config(args.rate_limit_per_minute)),
        }
        return [
            KongObject(
                f"{self._name}-{plugin_name}",
                "KongClusterPlugin",
                {"name": plugin_name, "annotations": _KONG_CLASS},
                {"plugin": plugin, "config": config},
                self._opts([crds]),
            )
            for plugin_name, (plugin, config) in shared.items()
        ]

    def _create_routes(self, crds: pulumi.Resource, shared: list[pulumi.Resource]) -> None:
        args = self._args
        for route in args.routes:
            plugins = [
                self._route_plugin(
                    crds, route, f"lab-authz-{route.name}", PLUGIN_NAME, authz_config(args, route)
                )
            ]
            if route.ai_proxy is not None:
                plugins.append(
                    self._route_plugin(
                        crds, route, f"lab-ai-proxy-{route.name}", "ai-proxy", route.ai_proxy
                    )
                )
            k8s.networking.v1.Ingress(
                f"{self._name}-route-{route.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"gateway-{route.name}",
                    namespace=route.namespace,
                    annotations={
                        "konghq.com/plugins": ",".join(route_plugins(route)),
                        "konghq.com/protocols": "https",
                        "konghq.com/strip-path": "true",
                    },
                ),
                spec=k8s.networking.v1.IngressSpecArgs(
                    ingress_class_name=INGRESS_CLASS,
                    rules=[
                        k8s.networking.v1.IngressRuleArgs(
                            host=args.hostname,
                            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                                paths=[
                                    k8s.networking.v1.HTTPIngressPathArgs(
                                        path=route.path,
                                        path_type="Prefix",
                                        backend=k8s.networking.v1.IngressBackendArgs(
                                            service=k8s.networking.v1.IngressServiceBackendArgs(
                                                name=route.service,
                                                port=k8s.networking.v1.ServiceBackendPortArgs(
                                                    number=route.port
                                                ),
                                            )
                                        ),
                                    )
                                ]
                            ),
                        )
                    ],
                ),
                opts=self._opts([self.release, *shared, *plugins]),
            )

    def _create_web_entries(self) -> None:
        for entry in self._args.web_entries:
            k8s.networking.v1.Ingress(
                f"{self._name}-web-{entry.name}",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=f"gateway-web-{entry.name}",
                    namespace=entry.namespace,
                    annotations={"konghq.com/protocols": "https"},
                ),
                spec=k8s.networking.v1.IngressSpecArgs(
                    ingress_class_name=INGRESS_CLASS,
                    rules=[
                        k8s.networking.v1.IngressRuleArgs(
                            host=entry.host,
                            http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                                paths=[
                                    k8s.networking.v1.HTTPIngressPathArgs(
                                        path="/",
                                        path_type="Prefix",
                                        backend=k8s.networking.v1.IngressBackendArgs(
                                            service=k8s.networking.v1.IngressServiceBackendArgs(
                                                name=entry.service,
                                                port=k8s.networking.v1.ServiceBackendPortArgs(
                                                    number=entry.port
                                                ),
                                            )
                                        ),
                                    )
                                ]
                            ),
                        )
                    ],
                ),
                opts=self._opts([self.release]),
            )

    def _route_plugin(
        self, crds: pulumi.Resource, route: Route, name: str, plugin: str, config: dict
    ) -> KongObject:
        return KongObject(
            f"{self._name}-{name}",
            "KongPlugin",
            {"name": name, "namespace": route.namespace, "annotations": _KONG_CLASS},
            {"plugin": plugin, "config": config},
            self._opts([crds]),
        )
