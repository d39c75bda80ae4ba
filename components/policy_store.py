"""Authorization as code: the repo's Cedar files in a policy store, and the decision service.

aws mode: a Verified Permissions policy store with STRICT validation, the schema, and one
policy resource per policy file, each created after the schema (a strict store refuses
policies its schema does not yet define). Both modes: the lab's decision service in
lab-system, the one place the gateway asks. It gets the same files (a ConfigMap), the IdP
realm's public key (SPKI PEM), a persistent volume for the deny list, and an admin token the
CAEP receiver mounts too; in aws mode it asks the store through `IsAuthorized`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.demo_workloads import SERVICE_CALLER, SERVICE_TARGET
from components.lab_workload import LabWorkload, LabWorkloadArgs
from lab.naming import GATEWAY_PROXY_LABELS, Namespace, issuers, spiffe_id
from lab.settings import LabSettings, Lifetimes

ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = ROOT / "policies" / "cedar"
SCHEMA_FILE = "schema.cedarschema.json"

# The release name is the Service name the gateway calls (components/gateway.py).
RELEASE = "decision"
PORT = 8080
ADMIN_SECRET = "decision-admin"  # noqa: S105 - a Secret's name
"""Kubernetes Secret (key `token`) with the deny-list admin token; the CAEP receiver mounts it."""
ADMIN_SECRET_KEY = "token"  # noqa: S105 - a key name
AWS_SECRET = "decision-aws"  # noqa: S105 - a Secret's name
POLICY_MOUNT = "/etc/decision/policies"
KEYS_MOUNT = "/etc/decision/keys"
DENY_LIST_PATH = "/data/deny-list.sqlite3"


def declared_targets(trust_domain: str) -> dict[str, list[str]]:
    """Sequence 1's declaration: the demo caller may call the demo target, and nothing else."""
    caller = spiffe_id(trust_domain, Namespace.SERVICES, SERVICE_CALLER)
    return {caller: [spiffe_id(trust_domain, Namespace.SERVICES, SERVICE_TARGET)]}


def policy_files(folder: Path = POLICY_DIR) -> dict[str, str]:
    """Policy id (file stem, equal to its @id) -> Cedar text, in name order."""
    return {p.stem: p.read_text() for p in sorted(folder.glob("*.cedar"))}


@dataclass(frozen=True)
class PolicyStoreArgs:
    mode: str
    """`aws`: Verified Permissions decides; `local`: the service's cedarpy backend does."""
    issuer: str
    """The IdP realm issuer (lab.naming.issuers(settings).idp), compared byte for byte."""
    signing_key_pem: pulumi.Input[str]
    """The realm signing key's public half, SPKI PEM, certified under the lab root."""
    trust_domain: str
    registry: str
    """Registry the service's image is pushed to."""
    lifetimes: Lifetimes
    service_targets: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Caller SPIFFE ID -> the SPIFFE IDs it may call (sequence 1)."""
    aws_region: str | None = None
    policy_dir: Path = POLICY_DIR
    namespace: str = Namespace.LAB_SYSTEM.value
    callers: tuple[tuple[str, dict[str, str]], ...] = (
        (Namespace.GATEWAY.value, GATEWAY_PROXY_LABELS),
        (Namespace.LAB_SYSTEM.value, {"app.kubernetes.io/name": "caep-receiver"}),
    )
    """(namespace, pod labels) of the only pods that may reach the service: Kong's proxy,
    which asks for decisions, and the CAEP receiver, which writes the deny list."""

    @classmethod
    def from_settings(
        cls,
        settings: LabSettings,
        signing_key_pem: pulumi.Input[str],
        service_targets: Mapping[str, Sequence[str]] | None = None,
    ) -> PolicyStoreArgs:
        return cls(
            mode=settings.mode,
            issuer=issuers(settings).idp,
            signing_key_pem=signing_key_pem,
            trust_domain=settings.trust_domain,
            registry=settings.image_registry,
            lifetimes=settings.lifetimes,
            service_targets=(
                declared_targets(settings.trust_domain)
                if service_targets is None
                else service_targets
            ),
            aws_region=settings.aws_region,
        )


class PolicyStore(pulumi.ComponentResource):
    """The Cedar policy store (aws) and the decision service (both modes)."""

    policy_store_id: pulumi.Output[str] | None
    """The Verified Permissions store, aws mode only."""
    admin_secret_name: str
    """Secret (key `token`) holding the deny-list admin token, in the service's namespace."""
    url: str
    """In-cluster base URL of the decision service (cluster DNS suffix left to the caller)."""

    def __init__(
        self, name: str, args: PolicyStoreArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("identity-lab:authz:PolicyStore", name, None, opts)
        self._name = name
        self.admin_secret_name = ADMIN_SECRET
        self.url = f"http://{RELEASE}.{args.namespace}.svc:{PORT}"
        files = policy_files(args.policy_dir)
        schema_json = (args.policy_dir / SCHEMA_FILE).read_text()

        env: dict[str, pulumi.Input[str]] = {}
        secret_env: dict[str, dict[str, str]] = {}
        self.policy_store_id = None
        if args.mode == "aws":
            store, policies = self._create_store(schema_json, files)
            self.policy_store_id = store.policy_store_id
            env.update(self._aws_env(args, store, policies))
            secret_env.update(self._create_aws_credentials(args, store))
        admin = self._create_admin_secret(args)
        config_maps = self._create_config_maps(args, schema_json, files)
        self.workload = self._create_service(
            args, env, secret_env, files, schema_json, [admin, *config_maps]
        )
        self.register_outputs({"policyStoreId": self.policy_store_id})

    def _create_store(
        self, schema_json: str, files: dict[str, str]
    ) -> tuple[aws.verifiedpermissions.PolicyStore, dict[str, aws.verifiedpermissions.Policy]]:
        child = pulumi.ResourceOptions(parent=self)
        store = aws.verifiedpermissions.PolicyStore(
            f"{self._name}-store",
            description="identity-lab: Cedar policies for the gateway's decisions",
            validation_settings={"mode": "STRICT"},
            opts=child,
        )
        schema = aws.verifiedpermissions.Schema(
            f"{self._name}-schema",
            policy_store_id=store.policy_store_id,
            definition={"value": schema_json},
            opts=child,
        )
        # STRICT validation checks each policy against the schema when it is created.
        policies = {
            policy_id: aws.verifiedpermissions.Policy(
                f"{self._name}-{policy_id}",
                policy_store_id=store.policy_store_id,
                definition={"static": {"statement": text, "description": policy_id}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[schema]),
            )
            for policy_id, text in files.items()
        }
        return store, policies

    def _aws_env(
        self,
        args: PolicyStoreArgs,
        store: aws.verifiedpermissions.PolicyStore,
        policies: dict[str, aws.verifiedpermissions.Policy],
    ) -> dict[str, pulumi.Input[str]]:
        names = list(policies)
        # The store names policies by its own ids; the service reports the files' @ids.
        id_map = pulumi.Output.all(*[p.policy_id for p in policies.values()]).apply(
            lambda ids: json.dumps(dict(zip(ids, names, strict=True)), sort_keys=True)
        )
        return {
            "DECISION_BACKEND": "verified-permissions",
            "DECISION_POLICY_STORE_ID": store.policy_store_id,
            "DECISION_POLICY_IDS": id_map,
            "AWS_REGION": args.aws_region or "us-east-1",
        }

    def _create_aws_credentials(
        self, args: PolicyStoreArgs, store: aws.verifiedpermissions.PolicyStore
    ) -> dict[str, dict[str, str]]:
        child = pulumi.ResourceOptions(parent=self)
        # TODO: a long-lived access key, since kind has no AWS workload identity; goes when the
        # service can exchange its SVID for AWS credentials (IAM Roles Anywhere or OIDC).
        user = aws.iam.User(f"{self._name}-caller", path="/identity-lab/", opts=child)
        # The service may ask this one store and do nothing else.
        aws.iam.UserPolicy(
            f"{self._name}-is-authorized",
            user=user.name,
            policy=store.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["verifiedpermissions:IsAuthorized"],
                                "Resource": arn,
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        key = aws.iam.AccessKey(f"{self._name}-caller-key", user=user.name, opts=child)
        k8s.core.v1.Secret(
            f"{self._name}-aws-credentials",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=AWS_SECRET, namespace=args.namespace),
            string_data={
                "access-key-id": key.id,
                "secret-access-key": key.secret,
            },
            opts=child,
        )
        return {
            "AWS_ACCESS_KEY_ID": {"secret": AWS_SECRET, "key": "access-key-id"},
            "AWS_SECRET_ACCESS_KEY": {"secret": AWS_SECRET, "key": "secret-access-key"},
        }

    def _create_admin_secret(self, args: PolicyStoreArgs) -> k8s.core.v1.Secret:
        password = random.RandomPassword(
            f"{self._name}-admin-token",
            length=48,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return k8s.core.v1.Secret(
            f"{self._name}-admin",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=ADMIN_SECRET, namespace=args.namespace),
            string_data={ADMIN_SECRET_KEY: pulumi.Output.secret(password.result)},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _create_config_maps(
        self, args: PolicyStoreArgs, schema_json: str, files: dict[str, str]
    ) -> list[k8s.core.v1.ConfigMap]:
        child = pulumi.ResourceOptions(parent=self)
        policies = k8s.core.v1.ConfigMap(
            f"{self._name}-policies",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="decision-policies", namespace=args.namespace),
            data={SCHEMA_FILE: schema_json, **{f"{pid}.cedar": t for pid, t in files.items()}},
            opts=child,
        )
        keys = k8s.core.v1.ConfigMap(
            f"{self._name}-keys",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="decision-keys", namespace=args.namespace),
            data={"realm.pem": args.signing_key_pem},
            opts=child,
        )
        return [policies, keys]

    def _create_service(
        self,
        args: PolicyStoreArgs,
        env: dict[str, pulumi.Input[str]],
        secret_env: dict[str, dict[str, str]],
        files: dict[str, str],
        schema_json: str,
        after: list[pulumi.Resource],
    ) -> LabWorkload:
        life = args.lifetimes
        # A changed policy or key must restart the pod: mounted ConfigMaps are read at start.
        digest = hashlib.sha256((schema_json + "".join(files.values())).encode()).hexdigest()
        key_digest = pulumi.Output.from_input(args.signing_key_pem).apply(
            lambda pem: hashlib.sha256(pem.encode()).hexdigest()[:16]
        )
        values = {
            "port": PORT,
            "env": {
                "DECISION_HOST": "0.0.0.0",  # noqa: S104 - the pod's own interface
                "DECISION_ISSUER": args.issuer,
                "DECISION_TRUST_DOMAIN": args.trust_domain,
                "DECISION_KEYS_DIR": KEYS_MOUNT,
                "DECISION_POLICY_DIR": POLICY_MOUNT,
                "DECISION_DENY_LIST_PATH": DENY_LIST_PATH,
                "DECISION_CLOCK_SKEW_SECONDS": str(life.clock_skew),
                "DECISION_CONSENT_MAX_AGE_SECONDS": str(life.consent_max_age),
                "DECISION_DENY_LIST_RETENTION_SECONDS": str(life.deny_list_retention),
                # Access and delegated tokens reach the gateway; JWT-SVIDs never do.
                "DECISION_MAX_TOKEN_LIFETIME_SECONDS": str(life.access_token),
                "DECISION_MAX_DELEGATED_TOKEN_LIFETIME_SECONDS": str(life.delegated_token),
                "DECISION_SERVICE_TARGETS": json.dumps(
                    {k: list(v) for k, v in args.service_targets.items()}, sort_keys=True
                ),
                "DECISION_BACKEND": "local",
                **env,
            },
            "secretEnv": {
                "DECISION_ADMIN_TOKEN": {"secret": ADMIN_SECRET, "key": ADMIN_SECRET_KEY},
                **secret_env,
            },
            "configMounts": [
                {
                    "name": "policies",
                    "configMapName": "decision-policies",
                    "mountPath": POLICY_MOUNT,
                },
                {"name": "keys", "configMapName": "decision-keys", "mountPath": KEYS_MOUNT},
            ],
            "persistence": {"enabled": True, "size": "1Gi", "mountPath": "/data"},
            "networkPolicy": {
                "ingressFrom": [
                    {"namespace": ns, "podLabels": dict(labels)} for ns, labels in args.callers
                ]
            },
            "podAnnotations": {
                "identity-lab/policies-sha256": digest[:16],
                "identity-lab/keys-sha256": key_digest,
            },
        }
        return LabWorkload(
            RELEASE,
            LabWorkloadArgs(
                service="decision",
                namespace=args.namespace,
                registry=args.registry,
                values=values,
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after),
        )
