"""The lab's signal services in the cluster: the push-consent relay, CAEP transmitter, receiver.

Each is a LabWorkload in lab-system with its own IAM identity (from the Signals component),
its settings as env and its secrets as Kubernetes Secrets. The transmitter's SET signing key
is made here and certified under the lab root; the receiver is given that certificate and
the root at deploy time, so it never fetches a key over the network to trust an event.

Who may connect (NetworkPolicy; the namespace denies everything else):
- relay: the IdP namespace only (Keycloak's CIBA authentication channel);
- transmitter and receiver: nobody; operators reach the transmitter with a port-forward, and
  the receiver only polls SQS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.lab_workload import LabWorkload, LabWorkloadArgs
from components.root_ca import TOKEN_SIGNING, RootCa, Subject
from components.signals import Signals, WorkloadCredentials
from lab.naming import PUSH_CONSENT_RELAY, PUSH_CONSENT_RELAY_PORT, Namespace, spiffe_id

TRANSMITTER = "caep-transmitter"
RECEIVER = "caep-receiver"
TRUST_DIR = "/etc/lab/trust"
TRUST_CONFIG_MAP = "signals-trust"


@dataclass(frozen=True)
class IdpAdminAccess:
    """A realm client allowed to end sessions (realm-management manage-users)."""

    idp_url: str
    """The IdP's base URL as pods reach it, such as https://idp.lab.localhost:9443."""
    realm: str
    """The realm whose sessions are ended (its admin API is under the base URL)."""
    token_url: str
    client_id: str
    client_secret: pulumi.Input[str]
    """Secret."""


@dataclass(frozen=True)
class SignalServicesArgs:
    registry: str
    """Registry the images are pushed to."""
    trust_domain: str
    aws_region: str
    caep_issuer: str
    """`iss` of the SETs (lab.naming.issuers(settings).caep)."""
    idp_issuer: str
    """The realm issuer: the relay checks the CIBA channel token against it."""
    idp_realm_key_pem: pulumi.Input[str]
    """The realm signing key's public half (SPKI or certificate PEM)."""
    decision_url: str
    """The decision service, whose deny list the receiver writes."""
    decision_admin_secret: str
    """Kubernetes Secret (in the namespace) holding the deny-list admin token."""
    decision_admin_secret_key: str = "token"  # noqa: S105 - a key name
    aws_endpoint: str | None = None
    """The in-cluster AWS emulator (local mode); None on real AWS."""
    idp_admin: IdpAdminAccess | None = None
    """When set, the receiver also ends IdP sessions; without it, it only denies."""
    set_max_age_seconds: int = 300
    clock_skew_seconds: int = 30
    cluster_dns_domain: str = "cluster.local"
    namespace: str = Namespace.LAB_SYSTEM.value

    def service_url(self, service: str, port: int = 8080) -> str:
        return f"http://{service}.{self.namespace}.svc.{self.cluster_dns_domain}:{port}"

    @property
    def caep_audience(self) -> str:
        """`aud` of the SETs: the receiver's SPIFFE ID (its account in lab-system)."""
        return spiffe_id(self.trust_domain, self.namespace, RECEIVER)


class SignalServices(pulumi.ComponentResource):
    """Relay, transmitter and receiver, released into lab-system."""

    workloads: dict[str, LabWorkload]
    set_cert_pem: pulumi.Output[str]
    """The transmitter's SET signing certificate (under the lab root)."""
    approver_token: pulumi.Output[str]
    """Secret: what an approver presents to the relay."""
    transmitter_token: pulumi.Output[str]
    """Secret: what an operator presents to the transmitter's API."""

    def __init__(
        self,
        name: str,
        args: SignalServicesArgs,
        root_ca: RootCa,
        signals: Signals,
        after: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("identity-lab:signals:SignalServices", name, None, opts)
        self._name = name
        self._args = args
        self._signals = signals
        child = pulumi.ResourceOptions(parent=self)

        set_key, set_cert = root_ca.issue(
            f"{name}-set-signing",
            Subject(
                common_name=TRANSMITTER,
                uris=[spiffe_id(args.trust_domain, args.namespace, TRANSMITTER)],
            ),
            TOKEN_SIGNING,
            opts=child,
        )
        self.set_cert_pem = set_cert.cert_pem
        self.approver_token = self._token("approver-token")
        self.transmitter_token = self._token("transmitter-token")

        trust = k8s.core.v1.ConfigMap(
            f"{name}-trust",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=TRUST_CONFIG_MAP, namespace=args.namespace),
            data={
                "ca.pem": root_ca.cert_pem,
                "caep-transmitter.pem": set_cert.cert_pem,
                "idp-realm.pem": args.idp_realm_key_pem,
            },
            opts=child,
        )
        ready = [*after, trust]
        self.workloads = {
            PUSH_CONSENT_RELAY: self._create_relay(signals.credentials, ready),
            TRANSMITTER: self._create_transmitter(
                signals.credentials, set_key.private_key_pem_pkcs8, ready
            ),
            RECEIVER: self._create_receiver(signals.credentials, ready),
        }
        self.register_outputs({"setCertPem": self.set_cert_pem})

    def _token(self, suffix: str) -> pulumi.Output[str]:
        password = random.RandomPassword(
            f"{self._name}-{suffix}",
            length=40,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(password.result)

    def _secret(self, workload: str, data: dict[str, pulumi.Input[str]]) -> k8s.core.v1.Secret:
        return k8s.core.v1.Secret(
            f"{self._name}-{workload}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=workload, namespace=self._args.namespace),
            string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _aws(self, workload: str, creds: WorkloadCredentials) -> tuple[dict, dict, dict]:
        """(plain env, secretEnv, Secret data) for the AWS SDK."""
        env = {"AWS_REGION": self._args.aws_region}
        if self._args.aws_endpoint:
            env["AWS_ENDPOINT_URL"] = self._args.aws_endpoint
        secret_env = {
            name: {"secret": workload, "key": name}
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
        data = {
            "AWS_ACCESS_KEY_ID": creds.access_key_id,
            "AWS_SECRET_ACCESS_KEY": creds.secret_access_key,
        }
        return env, secret_env, data

    def _release(
        self,
        workload: str,
        service: str,
        env: dict,
        secret_env: dict,
        ready: list[pulumi.Resource],
        **values,
    ) -> LabWorkload:
        all_values = {
            "env": {
                # The pod's address: the NetworkPolicy, not the bind address, limits callers.
                "HOST": "0.0.0.0",  # noqa: S104
                "CA_BUNDLE": f"{TRUST_DIR}/ca.pem",
                **env,
            },
            "secretEnv": secret_env,
            "configMounts": [
                {"name": "trust", "configMapName": TRUST_CONFIG_MAP, "mountPath": TRUST_DIR}
            ],
            **values,
        }
        return LabWorkload(
            workload,
            LabWorkloadArgs(
                service=service,
                namespace=self._args.namespace,
                registry=self._args.registry,
                values=all_values,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
        )

    def _create_relay(self, creds: dict, ready: list) -> LabWorkload:
        args = self._args
        env, secret_env, data = self._aws(PUSH_CONSENT_RELAY, creds["push-consent-relay"])
        secret = self._secret(PUSH_CONSENT_RELAY, {**data, "APPROVER_TOKEN": self.approver_token})
        env.update(
            {
                "PUSH_TOPIC_ARN": self._signals.push_topic_arn,
                "IDP_ISSUER": args.idp_issuer,
                "IDP_REALM_URL": args.idp_issuer,
                "IDP_REALM_KEY_PEM_FILE": f"{TRUST_DIR}/idp-realm.pem",
                "ANSWER_URL": args.service_url(PUSH_CONSENT_RELAY, PUSH_CONSENT_RELAY_PORT),
            }
        )
        secret_env["APPROVER_TOKEN"] = {"secret": PUSH_CONSENT_RELAY, "key": "APPROVER_TOKEN"}
        return self._release(
            PUSH_CONSENT_RELAY,
            "push_consent_relay",
            env,
            secret_env,
            [*ready, secret],
            port=PUSH_CONSENT_RELAY_PORT,
            networkPolicy={"ingressFrom": [{"namespace": Namespace.IDP.value}]},
        )

    def _create_transmitter(self, creds: dict, key_pem: pulumi.Output, ready: list) -> LabWorkload:
        args = self._args
        env, secret_env, data = self._aws(TRANSMITTER, creds[TRANSMITTER])
        secret = self._secret(
            TRANSMITTER,
            {**data, "SET_SIGNING_KEY": key_pem, "TRANSMITTER_TOKEN": self.transmitter_token},
        )
        env.update(
            {
                "CAEP_TOPIC_ARN": self._signals.caep_topic_arn,
                "CAEP_ISSUER": args.caep_issuer,
                "CAEP_AUDIENCE": args.caep_audience,
            }
        )
        for name in ("SET_SIGNING_KEY", "TRANSMITTER_TOKEN"):
            secret_env[name] = {"secret": TRANSMITTER, "key": name}
        return self._release(
            TRANSMITTER,
            "caep",
            env,
            secret_env,
            [*ready, secret],
            command=["python", "-m", "services.caep.transmitter"],
            networkPolicy={"ingressFrom": []},
        )

    def _create_receiver(self, creds: dict, ready: list) -> LabWorkload:
        args = self._args
        env, secret_env, data = self._aws(RECEIVER, creds[RECEIVER])
        env.update(
            {
                "CAEP_QUEUE_URL": self._signals.caep_queue_url,
                "CAEP_ISSUER": args.caep_issuer,
                "CAEP_AUDIENCE": args.caep_audience,
                # iss_sub subjects must name users of this realm (their sub means nothing else).
                "IDP_ISSUER": args.idp_issuer,
                "SET_CERT_PEM_FILE": f"{TRUST_DIR}/caep-transmitter.pem",
                "LAB_ROOT_CA_PEM_FILE": f"{TRUST_DIR}/ca.pem",
                "SET_MAX_AGE_SECONDS": str(args.set_max_age_seconds),
                "CLOCK_SKEW_SECONDS": str(args.clock_skew_seconds),
                "DECISION_URL": args.decision_url,
                "STATE_DIR": "/data",
            }
        )
        secret_env["DECISION_ADMIN_TOKEN"] = {
            "secret": args.decision_admin_secret,
            "key": args.decision_admin_secret_key,
        }
        if args.idp_admin is not None:
            data["IDP_ADMIN_CLIENT_SECRET"] = args.idp_admin.client_secret
            secret_env["IDP_ADMIN_CLIENT_SECRET"] = {
                "secret": RECEIVER,
                "key": "IDP_ADMIN_CLIENT_SECRET",
            }
            env.update(
                {
                    "IDP_URL": args.idp_admin.idp_url,
                    "IDP_REALM": args.idp_admin.realm,
                    "IDP_TOKEN_URL": args.idp_admin.token_url,
                    "IDP_ADMIN_CLIENT_ID": args.idp_admin.client_id,
                }
            )
        secret = self._secret(RECEIVER, data)
        return self._release(
            RECEIVER,
            "caep",
            env,
            secret_env,
            [*ready, secret],
            command=["python", "-m", "services.caep.receiver"],
            # The jti store: a restarted receiver still knows which SETs it acted on.
            persistence={"enabled": True, "size": "64Mi", "mountPath": "/data"},
            networkPolicy={"ingressFrom": []},
        )
