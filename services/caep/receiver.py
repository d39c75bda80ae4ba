"""The CAEP receiver: reads SETs from SQS, verifies them and revokes what they name.

Delivery is at least once (SQS), so every effect is idempotent: the deny list is keyed on the
SET's `jti`, a deleted IdP session stays deleted, and a `jti` already acted on is only
acknowledged. The deny list is written first, because it is what makes the gateway refuse; a
message is deleted only once that write succeeded and the `jti` (with any IdP step still to do)
is on disk. Ending the IdP sessions is a second step retried from that record, not from the
message, so an IdP outage can never cost the deny list entry. A message that can never succeed
(forged, expired, not a SET, a subject the lab cannot resolve) is made visible again at once, so
it reaches the dead-letter queue after the queue's maxReceiveCount receives instead of being
dropped silently.
"""

from __future__ import annotations

import json
import logging
import math
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
# The longest wait between two attempts at an IdP step.
_IDP_MAX_BACKOFF = 60


class TransientError(RuntimeError):
    """An action failed in a way that may succeed later (peer down, 5xx); the message stays."""


class UnresolvableError(RuntimeError):
    """A verified SET whose subject the lab cannot turn into a revocation; left for the DLQ."""


class JtiStore:
    """The SETs acted on (their deny list entry written), kept on disk so a restarted receiver
    still knows them, with the IdP step each one still owes.

    A record is `{"keep_until": epoch, "idp": step}`; `step` is present while the IdP sessions
    are not ended yet: `{"action": "end_session" | "end_user_sessions", "target": id,
    "attempts": n, "next_at": epoch, "give_up_at": epoch}`. A record lives until its
    `keep_until` (the SET can no longer be accepted) and its IdP step is settled.
    """

    def __init__(self, path: Path | None = None):
        self._path = path
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}
        if path is not None and path.exists():
            for jti, value in json.loads(path.read_text()).items():
                # A bare number is the file a receiver wrote before IdP steps were recorded.
                record = value if isinstance(value, dict) else {"keep_until": float(value)}
                self._records[jti] = record

    def seen(self, jti: str, now: float | None = None) -> bool:
        """Whether this SET's deny list entry is written (its IdP step may still be pending)."""
        now = time.time() if now is None else now
        with self._lock:
            record = self._records.get(jti)
            return record is not None and (record["keep_until"] > now or "idp" in record)

    def add(
        self,
        jti: str,
        keep_until: float,
        idp: dict[str, Any] | None = None,
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._records = {
                k: v for k, v in self._records.items() if v["keep_until"] > now or "idp" in v
            }
            self._records[jti] = {"keep_until": keep_until, **({"idp": dict(idp)} if idp else {})}
            self._save()

    def pending(self) -> dict[str, dict[str, Any]]:
        """The IdP steps not settled yet, by jti."""
        with self._lock:
            return {k: dict(v["idp"]) for k, v in self._records.items() if "idp" in v}

    def update_idp(self, jti: str, step: dict[str, Any] | None) -> None:
        """Record a retried step (attempts, next_at), or settle it with None."""
        with self._lock:
            record = self._records.get(jti)
            if record is None:
                return
            if step is None:
                record.pop("idp", None)
            else:
                record["idp"] = dict(step)
            self._save()

    def _save(self) -> None:
        if self._path is not None:
            # Written whole and renamed: a crash leaves the old file or the new one.
            fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=".jti-")
            with os.fdopen(fd, "w") as out:
                json.dump(self._records, out)
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

    def _call(self, method: str, path: str, params: dict[str, str] | None = None):
        url = f"{self.admin_url.rstrip('/')}/{path}"
        try:
            response = self.client.request(
                method, url, params=params, headers={"Authorization": f"Bearer {self._bearer()}"}
            )
        except httpx.HTTPError as err:
            raise TransientError(f"IdP admin API unreachable: {err}") from None
        # 404: the session or user is already gone, which is what was asked for.
        if response.status_code not in (200, 204, 404):
            raise TransientError(f"IdP admin API answered {response.status_code} to {path}")
        return response

    def end_session(self, session_id: str) -> None:
        self._call("DELETE", f"sessions/{session_id}")

    def end_user_sessions(self, user_id: str) -> None:
        self._call("POST", f"users/{user_id}/logout")

    def users_by_email(self, email: str) -> list[str]:
        """The ids of the realm's users whose email is exactly `email`."""
        response = self._call("GET", "users", {"email": email, "exact": "true"})
        users = response.json() if response.status_code == 200 else []
        if not isinstance(users, list):
            raise TransientError("IdP admin API answered a user search with a non-list")
        # Compared again here: email matching in the IdP is case-insensitive, and so is this.
        return [
            str(u["id"])
            for u in users
            if isinstance(u, dict)
            and u.get("id")
            and str(u.get("email", "")).lower() == email.lower()
        ]


@dataclass(frozen=True)
class Outcome:
    """What the receiver did with one message (for logs, tests and the benchmark)."""

    status: (
        str  # acted | duplicate | ignored | rejected | retry | idp-done | idp-retry | idp-gave-up
    )
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
        idp_retry_seconds: int = 900,
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
        self.idp_retry_seconds = idp_retry_seconds
        """How long an IdP step is retried after its deny list entry was written."""
        self.healthy = False

    def poll_once(self, limit: int | None = None) -> list[Outcome]:
        """Retry the IdP steps that are due, then receive one batch and handle up to `limit`
        messages of it (the rest stay in flight)."""
        outcomes = self.retry_idp_steps()
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=self._wait_seconds(),
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        self.healthy = True
        for message in answer.get("Messages", [])[:limit]:
            outcomes.append(self.handle(message))
        if self.on_outcome is not None:
            for outcome in outcomes:
                self.on_outcome(outcome)
        return outcomes

    def _wait_seconds(self) -> int:
        """Long polling, cut short when an IdP step is due sooner."""
        due = [step["next_at"] for step in self.store.pending().values()]
        if not due:
            return self.wait_seconds
        return max(0, min(self.wait_seconds, math.ceil(min(due) - time.time())))

    def retry_idp_steps(self, now: float | None = None) -> list[Outcome]:
        """Try again each IdP step whose time has come (its deny list entry already stands)."""
        now = time.time() if now is None else now
        outcomes = []
        for jti, step in self.store.pending().items():
            if step["next_at"] <= now:
                status, detail = self._end_idp_sessions(jti, step)
                outcomes.append(Outcome(status, jti, detail))
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
            target = self._target(event)
        except UnresolvableError as err:
            # Never actionable as sent: visible again now, so redrive moves it to the DLQ.
            self._visible_in(receipt, 0)
            log.warning("SET %s cannot be acted on, left for the DLQ: %s", event.jti, err)
            return Outcome("rejected", event.jti, str(err))
        except TransientError as err:
            self._visible_in(receipt, self.retry_delay_seconds)
            log.warning("SET %s not acted on yet, will retry: %s", event.jti, err)
            return Outcome("retry", event.jti, str(err))

        keep = event.issued_at + self.verifier.max_age_seconds
        keep += _DEDUP_MARGIN * self.verifier.clock_skew_seconds
        if target is None:
            self.store.add(event.jti, keep)
            self._delete(receipt)
            log.info(
                "SET %s (%s): assurance raised, nothing to revoke", event.jti, event.event_type
            )
            return Outcome("acted", event.jti, "assurance raised: nothing to revoke")

        kind, value = target
        try:
            status = self.deny_list.add(kind, value, event.jti, event.event_type.rsplit("/", 1)[1])
        except TransientError as err:
            self._visible_in(receipt, self.retry_delay_seconds)
            log.warning("SET %s not acted on yet, will retry: %s", event.jti, err)
            return Outcome("retry", event.jti, str(err))
        detail = f"denied {kind} {value} ({'new' if status == 201 else 'already known'})"

        step = self._idp_step(event, kind, value)
        # On disk before the delete: from here the record, not the message, carries the IdP step.
        self.store.add(event.jti, keep, idp=step)
        self._delete(receipt)
        log.info("SET %s (%s): %s", event.jti, event.event_type, detail)
        if step is not None:
            _, idp_detail = self._end_idp_sessions(event.jti, step)
            detail = f"{detail}; {idp_detail}"
        return Outcome("acted", event.jti, detail)

    def _target(self, event: sets.SecurityEvent) -> tuple[str, str] | None:
        """What the deny list gets: (kind, value), or None when the event revokes nothing."""
        if event.event_type == sets.ASSURANCE_LEVEL_CHANGE and (
            event.event.get("change_direction") == "increase"
        ):
            return None
        session, user = event.session_id, event.user_id
        needs_user = session is None or event.event_type == sets.CREDENTIAL_CHANGE
        if user is None and needs_user and event.user_email is not None:
            user = self._user_by_email(event.user_email)
        if session is None and user is None:
            raise UnresolvableError(
                f"subject {event.subject.get('format')!r} names no session and no user id"
            )
        # A credential change invalidates everything the user holds; the other events the
        # session they name (or the user, when no session is named).
        # TODO: a credential-change denies the subject for the deny list's retention, including
        # tokens issued after the change; it can go once the deny list compares the token's
        # `iat` with the event time (a "subject before <time>" entry in the decision service).
        if event.event_type == sets.CREDENTIAL_CHANGE and user is not None:
            return "subject", user
        return ("session", session) if session is not None else ("subject", user)

    def _user_by_email(self, email: str) -> str:
        """The IdP user id of an email subject; the deny list and the IdP know users by id."""
        # TODO: while the IdP is down an email subject writes nothing and may dead-letter; it can
        # go once the decision service's deny list can match tokens by their `email` claim.
        if self.idp is None:
            raise UnresolvableError(
                "the subject names the user by email only, and this receiver has no IdP admin "
                "API (IDP_URL) to resolve it"
            )
        users = self.idp.users_by_email(email)
        if len(users) != 1:
            found = "no IdP user has" if not users else f"{len(users)} IdP users have"
            raise UnresolvableError(
                f"{found} the subject's email, so it names nobody unambiguously"
            )
        return users[0]

    def _idp_step(self, event: sets.SecurityEvent, kind: str, value: str) -> dict | None:
        if self.idp is None or event.event_type not in (
            sets.SESSION_REVOKED,
            sets.CREDENTIAL_CHANGE,
        ):
            return None
        now = time.time()
        return {
            "action": "end_session" if kind == "session" else "end_user_sessions",
            "target": value,
            "attempts": 0,
            "next_at": now,
            "give_up_at": now + self.idp_retry_seconds,
        }

    def _end_idp_sessions(self, jti: str, step: dict[str, Any]) -> tuple[str, str]:
        """One attempt at an IdP step; its outcome (status, detail) is recorded in the store."""
        if self.idp is None:
            # Recorded by a receiver that had an IdP; this one cannot act on it.
            self.store.update_idp(jti, None)
            return "idp-gave-up", "no IdP admin API configured"
        what = f"{step['action']} {step['target']}"
        try:
            if step["action"] == "end_session":
                self.idp.end_session(step["target"])
            else:
                self.idp.end_user_sessions(step["target"])
        except TransientError as err:
            attempts = int(step.get("attempts", 0)) + 1
            now = time.time()
            if now >= step["give_up_at"]:
                self.store.update_idp(jti, None)
                log.error(
                    "GAVE UP on the IdP for SET %s: %s failed %d times over %d s (%s). The deny "
                    "list entry still refuses it at the gateway, but the IdP session lives on: "
                    "end it by hand in the IdP admin console",
                    jti,
                    what,
                    attempts,
                    self.idp_retry_seconds,
                    err,
                )
                return "idp-gave-up", f"IdP {what} given up: {err}"
            delay = min(self.retry_delay_seconds * 2 ** (attempts - 1), _IDP_MAX_BACKOFF)
            self.store.update_idp(jti, {**step, "attempts": attempts, "next_at": now + delay})
            log.warning(
                "SET %s: IdP %s failed (attempt %d), retrying in %d s; the deny list entry "
                "already stands: %s",
                jti,
                what,
                attempts,
                delay,
                err,
            )
            return "idp-retry", f"IdP {what} pending: {err}"
        self.store.update_idp(jti, None)
        log.info("SET %s: IdP %s done", jti, what)
        return "idp-done", f"IdP {what} done"

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
        subject_issuer=env.text("IDP_ISSUER"),
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
        idp_retry_seconds=env.integer("IDP_RETRY_SECONDS", 900, 0, 86400),
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
