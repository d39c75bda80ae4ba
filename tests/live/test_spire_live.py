"""Live: a pod in the agents' namespace fetches a JWT-SVID and an X.509-SVID from SPIRE.

The pod mounts the Workload API through the SPIFFE CSI driver (as charts/lab-service does) and
runs the SPIRE agent's own CLI against it; the checks are made here on what it printed.
"""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from lab.naming import Namespace

pytestmark = pytest.mark.live

AUDIENCE = "live-test"

# The agent's own image (read off the deployed DaemonSet) carries the Workload API CLI.
POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  restartPolicy: Never
  serviceAccountName: default
  containers:
    - name: probe
      image: {image}
      command: ["sleep", "300"]
      securityContext:
        allowPrivilegeEscalation: false
        runAsNonRoot: true
        runAsUser: 10001
        capabilities: {{drop: ["ALL"]}}
        seccompProfile: {{type: RuntimeDefault}}
      volumeMounts: [{{name: spiffe, mountPath: /spiffe, readOnly: true}}]
  volumes:
    - name: spiffe
      csi: {{driver: csi.spiffe.io, readOnly: true}}
"""


@pytest.fixture(scope="module")
def probe(live_lab):
    name = f"svid-probe-{uuid.uuid4().hex[:6]}"
    namespace = Namespace.AGENTS.value
    images = live_lab.kubectl(
        "-n",
        Namespace.SPIRE_SYSTEM.value,
        "get",
        "daemonsets",
        "-o",
        "jsonpath={.items[*].spec.template.spec.containers[*].image}",
    ).split()
    image = next(i for i in images if "spire-agent" in i)
    pod = POD.format(name=name, namespace=namespace, image=image)
    live_lab.kubectl("apply", "-f", "-", stdin=pod)
    try:
        live_lab.kubectl(
            "-n",
            namespace,
            "wait",
            "--for=condition=Ready",
            f"pod/{name}",
            "--timeout=120s",
            timeout=150,
        )
        yield lambda *args: live_lab.kubectl("-n", namespace, "exec", name, "--", *args)
    finally:
        live_lab.kubectl("-n", namespace, "delete", "pod", name, "--wait=false")


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_jwt_svid_has_the_issuer_audience_and_a_short_life(live_lab, probe):
    out = probe(
        "/opt/spire/bin/spire-agent",
        "api",
        "fetch",
        "jwt",
        "-audience",
        AUDIENCE,
        "-socketPath",
        "/spiffe/spire-agent.sock",
        "-output",
        "json",
    )
    svids = json.loads(out)[0]["svids"]
    claims = _claims(svids[0]["svid"])
    assert claims["iss"] == live_lab.outputs["spireJwtIssuer"]
    assert claims["aud"] == [AUDIENCE]
    assert claims["sub"] == "spiffe://lab.local/ns/lab-agents/sa/default"
    assert 0 < claims["exp"] - time.time() <= 300


def test_x509_svid_chains_to_the_lab_root(live_lab, probe):
    probe(
        "/opt/spire/bin/spire-agent",
        "api",
        "fetch",
        "x509",
        "-socketPath",
        "/spiffe/spire-agent.sock",
        "-write",
        "/tmp",
    )
    chain_pem = probe("cat", "/tmp/svid.0.pem")
    certs = x509.load_pem_x509_certificates(chain_pem.encode())
    root = x509.load_pem_x509_certificate(live_lab.outputs["trustBundlePem"].encode())
    verifier = PolicyBuilder().store(Store([root])).build_client_verifier()
    verified = verifier.verify(certs[0], certs[1:])
    assert verified.chain[-1] == root
    sans = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://lab.local/ns/lab-agents/sa/default"
    ]
    life = certs[0].not_valid_after_utc - certs[0].not_valid_before_utc
    assert life.total_seconds() <= 3600 + 60
