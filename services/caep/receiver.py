"""The CAEP receiver: reads SETs from SQS, verifies them and revokes what they name.

Delivery is at least once (SQS), so every effect is idempotent: the deny list is keyed on the
SET's `jti`, a deleted IdP session stays deleted, and a `jti` already acted on is only
acknowledged. A message is deleted only after its actions succeeded; a message that can never
succeed (forged, expired, not a SET) is made visible again at once, so it reaches the dead-letter
queue after the queue's maxReceiveCount receives instead of being dropped silently.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from services.caep import sets

log = logging.getLogger("caep.receiver")

# A SET acted on is remembered this much longer than it can be accepted (clock skew both ways).
_DEDUP_MARGIN = 2


class TransientError(RuntimeError):
    """An action failed in a way that may succeed later (peer down, 5xx); the message stays."""


class JtiStore:
    """The `jti`s already acted on, kept on disk so a restarted receiver still knows them."""

    def __init__(self, path: Path | None = None):
        self._path = path
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        if path is not None and path.exists():
            self._seen = {k: float(v) for k, v in json.loads(path.read_text()).items()}

    def seen(self, jti: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._lock:
            return self._seen.get(jti, 0) > now

    def add(self, jti: str, keep_until: float, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
            self._seen[jti] = keep_until
            if self._path is not None:
                # Written whole and renamed: a crash leaves the old file or the new one.
                fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".jti-")
                with os.fdopen(fd, "w") as out:
                    json.dump(self._seen, out)
                os.replace(tmp, self._path)


@dataclass
class DenyList:
    """The decision service's admin API (docs/contracts.md, "CAEP receiver -> decision")."""

    url: str
    admin_token: str = field(repr=False)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0))

    def add(self, kind: str, value: str, event_id: str, reason: str) -> int:
        try:
            response = self.client.post(
                f"{self.url.rstrip('/')}/admin/v1/revocations",
                json={"kind": kind, "value": value, "event_id": event_id, "reason": reason},
                headers={"Authorization": f"Bearer {self.admin_token}"},
            )
        except httpx.HTTPError as err:
            raise TransientError(f"decision service unreachable: {err}") from None
        if response.status_code not in (200, 201):
            raise TransientError(
                f"decision service answered {response.status_code} to a revocation: "
                f"{response.text[:200]}"
            )
        return response.status_code


@dataclass
class IdpAdmin:
    """Ends sessions through Keycloak's admin REST API with a client-credentials token."""

    admin_url: str
    """The realm's admin base, such as http://keycloak.idp.svc:8080/admin/realms/lab."""
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=5.0))
    _token: tuple[str, float] | None = field(default=None, repr=False)

    def _bearer(self) -> str:
        if self._token is None or self._token[1] < time.time() + 10:
            try:
                response = self.client.post(
                    self.token_url,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self.client_id,
                        "client_secret": self.client_secret,
                    },
                )
            except httpx.HTTPError as err:
                raise TransientError(f"IdP token endpoint unreachable: {err}") from None
            if response.status_code != 200:
                raise TransientError(f"IdP token endpoint answered {response.status_code}")
            body = response.json()
            self._token = (body["access_token"], time.time() + int(body.get("expires_in", 60)))
        return self._token[0]

    def _call(self, method: str, path: str) -> None:
        url = f"{self.admin_url.rstrip('/')}/{path}"
        try:
            response = self.client.request(
                method, url, headers={"Authorization": f"Bearer {self._bearer()}"}
            )
        except httpx.HTTPError as err:
            raise TransientError(f"IdP admin API unreachable: {err}") from None
        # 404: the session or user is already gone, which is what was asked for.
        if response.status_code not in (200, 204, 404):
            raise TransientError(f"IdP admin API answered {response.status_code} to {path}")

    def end_session(self, session_id: str) -> None:
        self._call("DELETE", f"sessions/{session_id}")

    def end_user_sessions(self, user_id: str) -> None:
        self._call("POST", f"users/{user_id}/logout")


@dataclass(frozen=True)
class Outcome:
    """What the receiver did with one message (for logs, tests and the benchmark)."""

    status: str  # acted | duplicate | ignored | rejected | retry
    jti: str | None = None
    detail: str = ""


class Receiver:
    """One SQS consumer; `poll_once` handles a batch, `run` loops until stopped."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        verifier: sets.SetVerifier,
        deny_list: DenyList,
        idp: IdpAdmin | None,
        store: JtiStore,
        wait_seconds: int = 20,
        retry_delay_seconds: int = 5,
        on_outcome: Callable[[Outcome], None] | None = None,
    ):
        self.sqs = sqs
        self.queue_url = queue_url
        self.verifier = verifier
        self.deny_list = deny_list
        self.idp = idp
        self.store = store
        self.wait_seconds = wait_seconds
        self.retry_delay_seconds = retry_delay_seconds
        self.on_outcome = on_outcome
        self.healthy = False

    def poll_once(self, limit: int | None = None) -> list[Outcome]:
        """Receive one batch and handle up to `limit` messages of it (the rest stay in flight)."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self.wait_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        self.healthy = True
        outcomes = []
        for message in answer.get("Messages", [])[:limit]:
            outcome = self.handle(message)
            outcomes.append(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
        return outcomes

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                # The queue itself is unreachable: report unready and try again shortly.
                self.healthy = False
                log.exception("receiving from the queue failed")
                stop.wait(self.retry_delay_seconds)

    def handle(self, message: dict[str, Any]) -> Outcome:
        receipt = message["ReceiptHandle"]
        try:
            event = self.verifier.verify(sets.unwrap_message(message["Body"]))
        except sets.SetError as err:
            # Never valid: visible again now, so redrive moves it to the DLQ quickly.
            self._visible_in(receipt, 0)
            log.warning("rejected message %s: %s", message.get("MessageId"), err)
            return Outcome("rejected", None, str(err))

        if self.store.seen(event.jti):
            self._delete(receipt)
            log.info("duplicate SET %s acknowledged without acting", event.jti)
            return Outcome("duplicate", event.jti)
        if not event.known:
            self._delete(receipt)
            log.info("unknown event type %s in SET %s acknowledged", event.event_type, event.jti)
            return Outcome("ignored", event.jti, event.event_type)

        try:
            detail = self._act(event)
        except TransientError as err:
            self._visible_in(receipt, self.retry_delay_seconds)
            log.warning("SET %s not acted on yet, will retry: %s", event.jti, err)
            return Outcome("retry", event.jti, str(err))
        keep = event.issued_at + self.verifier.max_age_seconds
        self.store.add(event.jti, keep + _DEDUP_MARGIN * self.verifier.clock_skew_seconds)
        self._delete(receipt)
        log.info("SET %s (%s): %s", event.jti, event.event_type, detail)
        return Outcome("acted", event.jti, detail)

    def _act(self, event: sets.SecurityEvent) -> str:
        session, user = event.session_id, event.user_id
        reason = event.event_type.rsplit("/", 1)[1]
        if event.event_type == sets.ASSURANCE_LEVEL_CHANGE and (
            event.event.get("change_direction") == "increase"
        ):
            return "assurance raised: nothing to revoke"
        if session is None and user is None:
            return "no session or user in the subject: nothing to revoke"

        # A credential change invalidates everything the user holds; the other events the
        # session they name (or the user, when no session is named).
        if event.event_type == sets.CREDENTIAL_CHANGE and user is not None:
            kind, value = "subject", user
        else:
            kind, value = ("session", session) if session is not None else ("subject", user)

        if self.idp is not None and event.event_type in (
            sets.SESSION_REVOKED,
            sets.CREDENTIAL_CHANGE,
        ):
            if kind == "session":
                self.idp.end_session(value)
            else:
                self.idp.end_user_sessions(value)
        status = self.deny_list.add(kind, value, event.jti, reason)
        return f"denied {kind} {value} ({'new' if status == 201 else 'already known'})"

    def _delete(self, receipt: str) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)

    def _visible_in(self, receipt: str, seconds: int) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
        )


def create_app(receiver: Receiver):
    """Health endpoints: alive while the process runs, ready once the queue answered."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def alive(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> JSONResponse:
        if receiver.healthy:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "queue not reachable yet"}, status_code=503)

    return Starlette(routes=[Route("/healthz", alive), Route("/readyz", ready)])


def from_env(env=None) -> Receiver:
    """The receiver from the deployment's environment (queue, keys, peers)."""
    import boto3

    from services.common.envconfig import Env
    from services.common.web import http_client

    env = env or Env("caep-receiver")
    verifier = sets.SetVerifier.from_certificate(
        env.text("SET_CERT_PEM"),
        env.text("LAB_ROOT_CA_PEM"),
        issuer=env.text("CAEP_ISSUER"),
        audience=env.text("CAEP_AUDIENCE"),
        max_age_seconds=env.integer("SET_MAX_AGE_SECONDS", 300, 10, 3600),
        clock_skew_seconds=env.integer("CLOCK_SKEW_SECONDS", 30, 0, 120),
    )
    idp = None
    if env.optional("IDP_URL"):
        idp = IdpAdmin(
            admin_url=f"{env.text('IDP_URL').rstrip('/')}/admin/realms/{env.text('IDP_REALM')}",
            token_url=env.text("IDP_TOKEN_URL"),
            client_id=env.text("IDP_ADMIN_CLIENT_ID"),
            client_secret=env.text("IDP_ADMIN_CLIENT_SECRET"),
            # The IdP's public URL is TLS under the lab root (CA_BUNDLE).
            client=http_client(5.0),
        )
    state = env.optional("STATE_DIR")
    return Receiver(
        sqs=boto3.client("sqs", region_name=env.text("AWS_REGION")),
        queue_url=env.text("CAEP_QUEUE_URL"),
        verifier=verifier,
        deny_list=DenyList(env.text("DECISION_URL"), env.text("DECISION_ADMIN_TOKEN")),
        idp=idp,
        store=JtiStore(Path(state) / "jti.json" if state else None),
        wait_seconds=env.integer("WAIT_SECONDS", 20, 0, 20),
    )


def main() -> None:
    from services.common.envconfig import Env
    from services.common.web import serve

    env = Env("caep-receiver")
    receiver = from_env(env)
    stop = threading.Event()
    worker = threading.Thread(target=receiver.run, args=(stop,), name="sqs-poll", daemon=True)
    worker.start()
    try:
        serve(create_app(receiver), "caep-receiver")
    finally:
        stop.set()
        worker.join(timeout=env.integer("WAIT_SECONDS", 20, 0, 20) + 5)


if __name__ == "__main__":
    main()
