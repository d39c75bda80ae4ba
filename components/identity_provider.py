"""The identity provider's server: Keycloak (codecentric keycloakx chart) on Postgres.

Keycloak serves HTTPS itself on one fixed public URL (hostname v2 as a full URL, backchannel
dynamic), with a certificate from the caller's `TlsIssuer` (in the lab Vault's PKI
intermediate, whose certificate it serves too; Keycloak re-reads the files hourly, so a renewed
certificate needs no restart), and trusts only the lab root outbound. Every token's `iss` is
the realm issuer whether it was fetched from the host or from a pod. The host reaches it
through the kind port mapping (127.0.0.1:<idpHttpsPort> -> NodePort); pods reach the same name
because components/cluster_dns.py rewrites it to the Keycloak Service, on the same port.

The realm itself is configured by components/keycloak_realm.py through a pulumi-keycloak
provider that the caller builds from this component's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import yaml

from components.tls_issuer import TlsIssuer
from lab.naming import Namespace
from lab.versions import Chart, Image

# Server features beyond Keycloak's defaults, each for one sequence step:
#   spiffe: JWT-SVID client assertions (preview); services and agents have no secret.
#   token-exchange-delegation: the exchanged token names the agent in `act` (preview, 26.8).
#   parameterized-scopes: the consent scope delegation:client:<agent> that delegation needs.
# Already on by default and relied on: token-exchange-standard:v2, ciba,
# admin-fine-grained-authz:v2 (the `delegate` permission), client-auth-federated.
FEATURES = ("spiffe", "token-exchange-delegation", "parameterized-scopes")

POSTGRES_PORT = 5432
DATABASE = "keycloak"
DATABASE_USER = "keycloak"
TLS_MOUNT = "/opt/keycloak/conf/tls"


@dataclass(frozen=True)
class IdentityProviderArgs:
    """What the IdP server needs; `__main__` fills it from the settings."""

    public_host: str
    """The one host name of the IdP, such as idp.lab.localhost."""
    https_port: int
    """Port of the public URL: published on the host and served by the Service in-cluster."""
    node_port: int
    """NodePort the kind config maps the host port to."""
    cluster_dns_domain: str
    """Cluster DNS domain, for Service names and the CoreDNS rewrite."""
    image: Image
    """Keycloak image (pinned)."""
    chart: Chart
    """The codecentric keycloakx chart (pinned)."""
    postgres_image: Image
    """Postgres image for the realm database (pinned)."""
    database_storage_gi: int = 1
    """Postgres volume size."""
    ciba_channel_url: str = ""
    """Where Keycloak's CIBA HTTP authentication channel POSTs consent requests."""
    namespace: str = Namespace.IDP.value
    """Namespace to deploy into (created by the Namespaces component)."""
    release_name: str = "keycloak"
    """Helm release name; the Services are <release>-http and <release>-postgres."""

    @property
    def url(self) -> str:
        return f"https://{self.public_host}:{self.https_port}"

    @property
    def service_host(self) -> str:
        return f"{self.release_name}-http.{self.namespace}.svc.{self.cluster_dns_domain}"

    @property
    def tls_hosts(self) -> tuple[str, ...]:
        """The TLS certificate's names: the public host, then the Service's cluster name."""
        return (self.public_host, self.service_host)

    @property
    def database_host(self) -> str:
        return f"{self.release_name}-postgres.{self.namespace}.svc.{self.cluster_dns_domain}"


def server_args(args: IdentityProviderArgs) -> list[str]:
    """Keycloak's start command line: features, hostname v2, TLS, the CIBA channel."""
    line = [
        "start",
        f"--features={','.join(FEATURES)}",
        # One frontend URL for every caller; backchannel URLs follow the request.
        f"--hostname={args.url}",
        "--hostname-backchannel-dynamic=true",
        f"--https-certificate-file={TLS_MOUNT}/tls.crt",
        f"--https-certificate-key-file={TLS_MOUNT}/tls.key",
        "--http-enabled=false",
        # Outbound HTTPS (SPIRE's JWKS) is trusted only if it chains to the lab root.
        f"--truststore-paths={TLS_MOUNT}/ca.crt",
        "--health-enabled=true",
    ]
    if args.ciba_channel_url:
        line.append(
            "--spi-ciba-auth-channel--ciba-http-auth-channel--http-authentication-channel-uri="
            + args.ciba_channel_url
        )
    return line


class IdentityProvider(pulumi.ComponentResource):
    """Keycloak with its database, TLS certificate and cluster DNS name."""

    url: str
    """The public base URL (also what pods use), such as https://idp.lab.localhost:9443."""
    service_host: str
    """Keycloak's Service name in the cluster, where pods' DNS sends the public host name."""
    admin_username: str
    """The bootstrap admin of the master realm."""
    admin_password: pulumi.Output[str]
    """Its password (secret)."""
    tls_cert_pem: pulumi.Output[str]
    """The IdP's TLS certificate, the leaf alone (chains to the lab root)."""
    release: k8s.helm.v3.Release
    """Keycloak's release: depend on it before talking to the server."""

    def __init__(
        self,
        name: str,
        args: IdentityProviderArgs,
        tls_issuer: TlsIssuer,
        trust_anchor_pem: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`tls_issuer` issues the server certificate; `trust_anchor_pem` (the lab root) is
        the only CA Keycloak trusts for its own outbound calls."""
        super().__init__("identity-lab:idp:IdentityProvider", name, None, opts)
        self.url = args.url
        self.service_host = args.service_host
        self.admin_username = "lab-admin"
        child = pulumi.ResourceOptions(parent=self)

        admin = random.RandomPassword(
            f"{name}-admin-password", length=32, special=False, opts=child
        )
        self.admin_password = pulumi.Output.secret(admin.result)
        db_password = random.RandomPassword(
            f"{name}-db-password", length=32, special=False, opts=child
        )

        tls_secret, self.tls_cert_pem = self._create_tls(name, args, tls_issuer, trust_anchor_pem)
        credentials = self._create_credentials(name, args, admin, db_password)
        database = self._create_database(name, args, credentials)
        self.release = self._create_keycloak(name, args, tls_secret, credentials, database)

        self.register_outputs({"url": self.url, "tlsCertPem": self.tls_cert_pem})

    def _create_tls(
        self,
        name: str,
        args: IdentityProviderArgs,
        tls_issuer: TlsIssuer,
        trust_anchor_pem: pulumi.Input[str],
    ):
        issued = tls_issuer.issue_tls(f"{name}-tls", args.tls_hosts)
        # tls.crt is the served chain (leaf, then intermediate): clients that hold only the
        # root can verify the server. ca.crt is Keycloak's truststore, the root alone.
        secret = k8s.core.v1.Secret(
            f"{name}-tls",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="keycloak-tls", namespace=args.namespace),
            type="kubernetes.io/tls",
            string_data={
                "tls.crt": issued.cert_chain_pem,
                "ca.crt": trust_anchor_pem,
                # PKCS#8: the form Keycloak's PEM reader takes for any key type.
                "tls.key": pulumi.Output.secret(issued.key_pem),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        return secret, issued.cert_pem

    def _create_credentials(self, name, args, admin, db_password) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name="keycloak-credentials", namespace=args.namespace
            ),
            string_data={
                "admin-username": self.admin_username,
                "admin-password": pulumi.Output.secret(admin.result),
                "db-password": pulumi.Output.secret(db_password.result),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_database(
        self, name: str, args: IdentityProviderArgs, credentials: k8s.core.v1.Secret
    ) -> k8s.apps.v1.StatefulSet:
        labels = {"app.kubernetes.io/name": "keycloak-postgres", "app.kubernetes.io/part-of": "idp"}
        service_name = f"{args.release_name}-postgres"
        k8s.core.v1.Service(
            f"{name}-postgres",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=service_name, namespace=args.namespace),
            spec=k8s.core.v1.ServiceSpecArgs(
                selector=labels,
                ports=[k8s.core.v1.ServicePortArgs(name="postgres", port=POSTGRES_PORT)],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        password_env = k8s.core.v1.EnvVarArgs(
            name="POSTGRES_PASSWORD",
            value_from=k8s.core.v1.EnvVarSourceArgs(
                secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                    name=credentials.metadata.name, key="db-password"
                )
            ),
        )
        # A StatefulSet with its own volume: the realm survives pod and node restarts.
        return k8s.apps.v1.StatefulSet(
            f"{name}-postgres",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=service_name, namespace=args.namespace),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                service_name=service_name,
                replicas=1,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        security_context=k8s.core.v1.PodSecurityContextArgs(
                            run_as_user=70, run_as_group=70, fs_group=70, run_as_non_root=True
                        ),
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name="postgres",
                                image=args.postgres_image.ref,
                                env=[
                                    k8s.core.v1.EnvVarArgs(name="POSTGRES_DB", value=DATABASE),
                                    k8s.core.v1.EnvVarArgs(
                                        name="POSTGRES_USER", value=DATABASE_USER
                                    ),
                                    password_env,
                                    k8s.core.v1.EnvVarArgs(
                                        name="PGDATA", value="/var/lib/postgresql/data/pgdata"
                                    ),
                                ],
                                ports=[k8s.core.v1.ContainerPortArgs(container_port=POSTGRES_PORT)],
                                readiness_probe=k8s.core.v1.ProbeArgs(
                                    exec_=k8s.core.v1.ExecActionArgs(
                                        command=["pg_isready", "-U", DATABASE_USER, "-d", DATABASE]
                                    ),
                                    period_seconds=5,
                                ),
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": "50m", "memory": "128Mi"},
                                    limits={"cpu": "500m", "memory": "512Mi"},
                                ),
                                security_context=k8s.core.v1.SecurityContextArgs(
                                    allow_privilege_escalation=False,
                                    capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
                                ),
                                volume_mounts=[
                                    k8s.core.v1.VolumeMountArgs(
                                        name="data", mount_path="/var/lib/postgresql/data"
                                    )
                                ],
                            )
                        ],
                    ),
                ),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name="data"),
                        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                            access_modes=["ReadWriteOnce"],
                            resources=k8s.core.v1.VolumeResourceRequirementsArgs(
                                requests={"storage": f"{args.database_storage_gi}Gi"}
                            ),
                        ),
                    )
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_keycloak(self, name, args, tls_secret, credentials, database):
        def from_secret(env: str, key: str) -> dict:
            ref = {"name": "keycloak-credentials", "key": key}
            return {"name": env, "valueFrom": {"secretKeyRef": ref}}

        extra_env = [
            from_secret("KC_BOOTSTRAP_ADMIN_USERNAME", "admin-username"),
            from_secret("KC_BOOTSTRAP_ADMIN_PASSWORD", "admin-password"),
            # One node: local caches, no cluster discovery.
            {"name": "KC_CACHE", "value": "local"},
        ]
        values = {
            "image": {"repository": args.image.repository, "tag": args.image.tag},
            "command": ["/opt/keycloak/bin/kc.sh"],
            "args": server_args(args),
            "http": {"relativePath": "/", "internalScheme": "HTTPS"},
            # No reverse proxy in front: forwarded headers must not be trusted.
            "proxy": {"enabled": False, "http": {"enabled": False}},
            "cache": {"stack": "custom"},
            "database": {
                "vendor": "postgres",
                "hostname": args.database_host,
                "port": POSTGRES_PORT,
                "database": DATABASE,
                "username": DATABASE_USER,
                "existingSecret": "keycloak-credentials",
                "existingSecretKey": "db-password",
            },
            "dbchecker": {"enabled": True},
            "extraEnv": _yaml(extra_env),
            "extraVolumes": _yaml([{"name": "tls", "secret": {"secretName": "keycloak-tls"}}]),
            "extraVolumeMounts": _yaml([{"name": "tls", "mountPath": TLS_MOUNT, "readOnly": True}]),
            "service": {
                "type": "NodePort",
                # The same port number in-cluster as on the host keeps one URL everywhere.
                "httpsPort": args.https_port,
                "httpsNodePort": args.node_port,
            },
            "resources": {
                "requests": {"cpu": "250m", "memory": "768Mi"},
                # Start-up (schema migration, Quarkus boot) is CPU-bound: room, but a ceiling.
                "limits": {"cpu": "2", "memory": "1536Mi"},
            },
            "securityContext": {
                "runAsUser": 1000,
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
        return k8s.helm.v3.Release(
            f"{name}-keycloak",
            name=args.release_name,
            chart=args.chart.name,
            version=args.chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=args.chart.repo),
            namespace=args.namespace,
            values=values,
            # First start migrates the database schema; give it time before failing.
            timeout=600,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[tls_secret, credentials, database]
            ),
        )


def _yaml(value) -> str:
    # The chart renders these values through `tpl`, so it takes them as YAML text.
    return yaml.safe_dump(value, sort_keys=False)
