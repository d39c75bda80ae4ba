"""The CAEP transmitter and receiver against moto's real SNS/SQS server on loopback."""

from __future__ import annotations

import json
import threading
import time
import uuid

import httpx
import pytest

from services.caep import sets
from services.caep.receiver import DenyList, IdpAdmin, JtiStore, Receiver
from services.caep.transmitter import Transmitter, create_app
from tests.signals_peers import (
    aws_client,
    deny_list_service,
    fake_idp,
    make_pki,
    moto_server,
    serve_app,
)

ISSUER = "https://caep.lab.localhost"
AUDIENCE = "spiffe://lab.local/ns/lab-system/sa/caep-receiver"
MAX_RECEIVES = 3
REALM = "https://idp.lab.localhost:9443/realms/lab"
USER = {"format": "iss_sub", "iss": REALM, "sub": "u-1"}


def session_subject(sid: str) -> dict:
    return {"format": "complex", "user": USER, "session": {"format": "opaque", "id": sid}}


@pytest.fixture(scope="module")
def moto():
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.fixture
def stream(moto):
    """A topic delivering raw to a queue with a DLQ, as the Signals component builds them."""
    sns, sqs = aws_client("sns", moto), aws_client("sqs", moto)
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"caep-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
    redrive = {
        "deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"],
        "maxReceiveCount": str(MAX_RECEIVES),
    }
    queue = sqs.create_queue(
        QueueName=f"caep-{suffix}",
        Attributes={"VisibilityTimeout": "1", "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    topic = sns.create_topic(Name=f"caep-{suffix}")["TopicArn"]
    sns.subscribe(
        TopicArn=topic,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    return {"sns": sns, "sqs": sqs, "topic": topic, "queue": queue, "dlq": dlq}


@pytest.fixture
def deny_list(tmp_path):
    with deny_list_service(tmp_path) as peer:
        yield peer


@pytest.fixture
def idp():
    with fake_idp() as peer:
        yield peer


def transmitter(stream, pki, **overrides) -> Transmitter:
    args = {
        "sns": stream["sns"],
        "topic_arn": stream["topic"],
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "private_key_pem": pki.set_key_pem,
        **overrides,
    }
    return Transmitter(**args)


def receiver(stream, pki, deny_list, idp=None, store=None, **extra) -> Receiver:
    verifier = sets.SetVerifier.from_certificate(
        pki.set_cert_pem, pki.root_pem, ISSUER, AUDIENCE, REALM
    )
    admin = None
    if idp is not None:
        admin = IdpAdmin(
            admin_url=f"{idp.url}/admin/realms/lab",
            token_url=f"{idp.url}/realms/lab/protocol/openid-connect/token",
            client_id="caep-receiver",
            client_secret="receiver-secret",
        )
    return Receiver(
        stream["sqs"],
        stream["queue"],
        verifier,
        DenyList(deny_list.url, deny_list.admin_token),
        admin,
        store or JtiStore(),
        wait_seconds=1,
        retry_delay_seconds=1,
        **extra,
    )


def drain(rx: Receiver, settled: int, rounds: int = 8) -> list:
    """Poll until `settled` messages were finished (acted, duplicate, ignored) or redriven
    (rejected MAX_RECEIVES times), at most `rounds` times; in-flight messages reappear after
    the queue's 1 s visibility timeout."""
    outcomes: list = []
    for _ in range(rounds):
        outcomes += rx.poll_once()
        done = sum(o.status in ("acted", "duplicate", "ignored") for o in outcomes)
        done += sum(o.status == "rejected" for o in outcomes) // MAX_RECEIVES
        if done >= settled:
            break
    return outcomes


def test_publish_is_delivered_raw(stream, pki):
    jti = transmitter(stream, pki).emit(sets.SESSION_REVOKED, session_subject("s-raw"))
    got = stream["sqs"].receive_message(QueueUrl=stream["queue"], WaitTimeSeconds=2)
    (message,) = got["Messages"]
    assert message["Body"].count(".") == 2, "raw delivery hands over the compact JWS itself"
    assert json.loads(sets.jwt.utils.base64url_decode(message["Body"].split(".")[1]))["jti"] == jti


def test_session_revoked_ends_the_idp_session_and_denies_it(stream, pki, deny_list, idp):
    assert deny_list.decide(sid="s-42")["decision"] is True
    jti = transmitter(stream, pki).emit(sets.SESSION_REVOKED, session_subject("s-42"))
    outcomes = drain(receiver(stream, pki, deny_list, idp), 1)
    assert [(o.status, o.jti) for o in outcomes] == [("acted", jti)]
    assert deny_list.denied("session", "s-42")
    assert not deny_list.denied("session", "s-other")
    (entry,) = deny_list.entries()
    assert {k: entry[k] for k in ("kind", "value", "event_id", "reason")} == {
        "kind": "session",
        "value": "s-42",
        "event_id": jti,
        "reason": "session-revoked",
    }
    assert idp.paths("DELETE") == ["/admin/realms/lab/sessions/s-42"]
    refused = deny_list.decide(sid="s-42")
    assert refused["decision"] is False
    assert refused["context"]["reason"] == "session revoked"
    assert deny_list.decide(sid="s-other")["decision"] is True
    assert stream["sqs"].receive_message(QueueUrl=stream["queue"]).get("Messages") is None


def test_credential_change_denies_the_user_and_logs_them_out(stream, pki, deny_list, idp):
    transmitter(stream, pki).emit(sets.CREDENTIAL_CHANGE, session_subject("s-7"))
    drain(receiver(stream, pki, deny_list, idp), 1)
    assert deny_list.denied("subject", "u-1")
    assert deny_list.decide(sub="u-1", sid="s-new")["context"]["reason"] == "subject revoked"
    assert idp.paths("POST")[-1] == "/admin/realms/lab/users/u-1/logout"


def test_raised_assurance_revokes_nothing_lowered_assurance_does(stream, pki, deny_list):
    tx = transmitter(stream, pki)
    tx.emit(sets.ASSURANCE_LEVEL_CHANGE, session_subject("s-up"), {"change_direction": "increase"})
    tx.emit(sets.ASSURANCE_LEVEL_CHANGE, session_subject("s-dn"), {"change_direction": "decrease"})
    outcomes = drain(receiver(stream, pki, deny_list), 2)
    assert sorted(o.status for o in outcomes) == ["acted", "acted"]
    assert [e["value"] for e in deny_list.entries()] == ["s-dn"]


def test_a_duplicate_jti_is_acted_on_once(stream, pki, deny_list, idp):
    token, jti = sets.build_set(
        private_key_pem=pki.set_key_pem,
        issuer=ISSUER,
        audience=AUDIENCE,
        event_type=sets.SESSION_REVOKED,
        subject=session_subject("s-dup"),
    )
    for _ in range(3):
        stream["sns"].publish(TopicArn=stream["topic"], Message=token)
    outcomes = drain(receiver(stream, pki, deny_list, idp), 3)
    assert sorted(o.status for o in outcomes) == ["acted", "duplicate", "duplicate"]
    assert {o.jti for o in outcomes} == {jti}
    assert idp.paths("DELETE") == ["/admin/realms/lab/sessions/s-dup"]
    assert len(deny_list.entries()) == 1


def test_forged_and_expired_sets_are_rejected_and_reach_the_dlq(stream, pki, deny_list):
    forged = transmitter(stream, pki, private_key_pem=pki.other_key_pem)
    forged.emit(sets.SESSION_REVOKED, session_subject("s-forged"))
    token, _ = sets.build_set(
        private_key_pem=pki.set_key_pem,
        issuer=ISSUER,
        audience=AUDIENCE,
        event_type=sets.SESSION_REVOKED,
        subject=session_subject("s-stale"),
        now=int(sets.time.time()) - 3600,
    )
    stream["sns"].publish(TopicArn=stream["topic"], Message=token)
    stream["sqs"].send_message(QueueUrl=stream["queue"], MessageBody="not a token at all")

    rx = receiver(stream, pki, deny_list)
    rejected = [o for o in drain(rx, 3, rounds=2 * MAX_RECEIVES + 4) if o.status == "rejected"]
    # Each poison message is received exactly maxReceiveCount times, then redriven.
    assert len(rejected) == 3 * MAX_RECEIVES
    assert deny_list.entries() == []
    # The next receive past maxReceiveCount is what moves them (as in SQS): none comes back.
    sqs = stream["sqs"]
    assert sqs.receive_message(QueueUrl=stream["queue"], WaitTimeSeconds=1).get("Messages") is None
    dead = sqs.receive_message(QueueUrl=stream["dlq"], MaxNumberOfMessages=10)["Messages"]
    assert len(dead) == 3
    assert "not a token at all" in {m["Body"] for m in dead}


def test_unknown_event_types_are_acknowledged_without_action(stream, pki, deny_list, caplog):
    other = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
    transmitter(stream, pki).emit(other, session_subject("s-risc"))
    with caplog.at_level("INFO", logger="caep.receiver"):
        outcomes = drain(receiver(stream, pki, deny_list), 1)
    assert [(o.status, o.detail) for o in outcomes] == [("ignored", other)]
    assert deny_list.entries() == []
    assert f"unknown event type {other}" in caplog.text
    assert stream["sqs"].receive_message(QueueUrl=stream["queue"]).get("Messages") is None


def test_a_receiver_restarted_mid_stream_loses_nothing(stream, pki, deny_list, idp, tmp_path):
    tx = transmitter(stream, pki)
    sent = {tx.emit(sets.SESSION_REVOKED, session_subject(f"s-{i}")) for i in range(8)}
    state = tmp_path / "jti.json"

    # The first receiver handles part of a batch and dies: the rest stays in flight.
    first = receiver(stream, pki, deny_list, idp, store=JtiStore(state))
    handled = first.poll_once(limit=3)
    assert [o.status for o in handled] == ["acted"] * 3

    # One SET acted on and remembered, but its delete was lost with the process.
    stream["sns"].publish(TopicArn=stream["topic"], Message=_resign_as(pki, handled[0].jti))

    second = receiver(stream, pki, deny_list, idp, store=JtiStore(state))
    later = drain(second, 6, rounds=10)
    acted = {o.jti for o in handled} | {o.jti for o in later if o.status == "acted"}
    assert acted == sent
    assert [o.jti for o in later if o.status == "duplicate"] == [handled[0].jti]
    assert {e["event_id"] for e in deny_list.entries()} == sent
    assert sorted(idp.paths("DELETE")) == sorted(
        f"/admin/realms/lab/sessions/s-{i}" for i in range(8)
    )


def _resign_as(pki, jti: str) -> str:
    token, _ = sets.build_set(
        private_key_pem=pki.set_key_pem,
        issuer=ISSUER,
        audience=AUDIENCE,
        event_type=sets.SESSION_REVOKED,
        subject=session_subject("s-replayed"),
        jti=jti,
    )
    return token


def test_a_deny_list_outage_is_retried_not_lost(stream, pki, deny_list):
    jti = transmitter(stream, pki).emit(sets.SESSION_REVOKED, session_subject("s-later"))
    down = receiver(stream, pki, deny_list)
    down.deny_list = DenyList("http://127.0.0.1:9", deny_list.admin_token)
    assert [o.status for o in down.poll_once()] == ["retry"]
    assert deny_list.entries() == []
    outcomes = drain(receiver(stream, pki, deny_list), 1)
    assert [(o.status, o.jti) for o in outcomes] == [("acted", jti)]


def test_the_transmitter_api_needs_its_token_and_a_known_event(stream, pki):
    body = {"event": "session-revoked", "subject": session_subject("s-api"), "reason": "admin"}
    auth = {"Authorization": "Bearer tx-token"}
    with serve_app(create_app(transmitter(stream, pki), "tx-token")) as url:
        assert httpx.post(f"{url}/v1/events", json=body).status_code == 401
        bad = httpx.post(f"{url}/v1/events", json={**body, "event": "nope"}, headers=auth)
        ok = httpx.post(f"{url}/v1/events", json=body, headers=auth)
    assert bad.status_code == 400 and "session-revoked" in bad.json()["error"]
    assert ok.status_code == 202
    got = stream["sqs"].receive_message(QueueUrl=stream["queue"], WaitTimeSeconds=2)["Messages"]
    claims = sets.jwt.decode(got[0]["Body"], options={"verify_signature": False})
    assert claims["jti"] == ok.json()["jti"]
    assert claims["events"][sets.SESSION_REVOKED]["reason_admin"] == {"en": "admin"}


def test_the_poll_loop_stops_when_asked(stream, pki, deny_list):
    rx = receiver(stream, pki, deny_list)
    stop = threading.Event()
    worker = threading.Thread(target=rx.run, args=(stop,))
    worker.start()
    stop.set()
    worker.join(timeout=5)
    assert not worker.is_alive() and rx.healthy


def _dead_letters(stream) -> list[str]:
    got = stream["sqs"].receive_message(QueueUrl=stream["dlq"], MaxNumberOfMessages=10)
    return [m["Body"] for m in got.get("Messages", [])]


def _queue_is_empty(stream) -> bool:
    got = stream["sqs"].receive_message(QueueUrl=stream["queue"], WaitTimeSeconds=1)
    return got.get("Messages") is None


def test_an_idp_outage_never_costs_the_deny_list_entry(stream, pki, deny_list, idp, tmp_path):
    idp.refuse_admin = 503
    start = time.monotonic()
    jti = transmitter(stream, pki).emit(sets.SESSION_REVOKED, session_subject("s-idp-down"))
    rx = receiver(stream, pki, deny_list, idp, store=JtiStore(tmp_path / "jti.json"))
    outcomes = drain(rx, 1)
    # The gateway's source of truth refuses the session while the IdP still refuses us.
    assert deny_list.decide(sid="s-idp-down")["context"]["reason"] == "session revoked"
    assert time.monotonic() - start < 3.0
    assert [(o.status, o.jti) for o in outcomes] == [("acted", jti)]
    assert "IdP end_session s-idp-down pending" in outcomes[0].detail
    assert idp.paths("DELETE", status=503) == ["/admin/realms/lab/sessions/s-idp-down"]
    # The message is settled: it can neither come back stale nor be dead-lettered.
    assert _queue_is_empty(stream) and _dead_letters(stream) == []
    assert list(rx.store.pending()) == [jti]

    idp.refuse_admin = None
    retried = []
    for _ in range(6):
        retried += [o.status for o in rx.poll_once()]
        if "idp-done" in retried:
            break
    for _ in range(2):  # nothing is left to do afterwards
        retried += [o.status for o in rx.poll_once()]
    assert retried.count("idp-done") == 1 and "idp-gave-up" not in retried
    assert idp.paths("DELETE", status=204) == ["/admin/realms/lab/sessions/s-idp-down"]
    assert len(idp.paths("DELETE")) == 2  # the refused attempt and the one that ended it
    assert rx.store.pending() == {}
    assert [e["event_id"] for e in deny_list.entries()] == [jti]


def test_a_restarted_receiver_finishes_the_idp_step_once(stream, pki, deny_list, idp, tmp_path):
    idp.refuse_admin = 503
    state = tmp_path / "jti.json"
    transmitter(stream, pki).emit(sets.CREDENTIAL_CHANGE, session_subject("s-any"))
    assert [o.status for o in drain(receiver(stream, pki, deny_list, idp, JtiStore(state)), 1)] == [
        "acted"
    ]
    assert deny_list.denied("subject", "u-1")

    idp.refuse_admin = None
    second = receiver(stream, pki, deny_list, idp, JtiStore(state))
    time.sleep(1.0)  # the first retry is due one retry delay after the failure
    statuses = [o.status for _ in range(3) for o in second.poll_once()]
    assert statuses == ["idp-done"]
    assert idp.paths("POST", status=204) == ["/admin/realms/lab/users/u-1/logout"]
    assert JtiStore(state).pending() == {}


def test_an_idp_down_past_the_retries_leaves_the_deny_list_entry_and_says_so(
    stream, pki, deny_list, idp, caplog
):
    idp.refuse_admin = 403
    transmitter(stream, pki).emit(sets.SESSION_REVOKED, session_subject("s-never"))
    rx = receiver(stream, pki, deny_list, idp, idp_retry_seconds=0)
    with caplog.at_level("ERROR", logger="caep.receiver"):
        outcomes = drain(rx, 1) + rx.poll_once()
    assert [o.status for o in outcomes] == ["acted"]
    assert "given up" in outcomes[0].detail
    assert "GAVE UP on the IdP" in caplog.text and "end_session s-never" in caplog.text
    assert deny_list.decide(sid="s-never")["decision"] is False
    assert rx.store.pending() == {}
    assert len(idp.paths("DELETE")) == 1


def test_an_email_subject_is_resolved_through_the_idp(stream, pki, deny_list, idp):
    idp.users["alice@lab.local"] = "u-alice"
    subject = {"format": "email", "email": "Alice@lab.local"}
    jti = transmitter(stream, pki).emit(sets.CREDENTIAL_CHANGE, subject)
    outcomes = drain(receiver(stream, pki, deny_list, idp), 1)
    assert [(o.status, o.jti) for o in outcomes] == [("acted", jti)]
    assert deny_list.denied("subject", "u-alice")
    assert idp.paths("POST")[-1] == "/admin/realms/lab/users/u-alice/logout"


@pytest.mark.parametrize(
    ("with_idp", "why"),
    [(False, "by email only"), (True, "no IdP user has the subject's email")],
)
def test_an_email_subject_that_cannot_be_resolved_goes_to_the_dlq(
    stream, pki, deny_list, idp, caplog, with_idp, why
):
    subject = {"format": "email", "email": "nobody@lab.local"}
    jti = transmitter(stream, pki).emit(sets.SESSION_REVOKED, subject)
    rx = receiver(stream, pki, deny_list, idp if with_idp else None)
    with caplog.at_level("WARNING", logger="caep.receiver"):
        outcomes = drain(rx, 1, rounds=MAX_RECEIVES + 2)
    assert [o.status for o in outcomes] == ["rejected"] * MAX_RECEIVES
    assert {o.jti for o in outcomes} == {jti} and why in outcomes[0].detail
    assert f"SET {jti} cannot be acted on, left for the DLQ" in caplog.text
    assert deny_list.entries() == []
    assert _queue_is_empty(stream) and len(_dead_letters(stream)) == 1


def test_a_subject_from_another_issuer_goes_to_the_dlq(stream, pki, deny_list, idp):
    foreign = {"format": "iss_sub", "iss": "https://evil.example/realms/lab", "sub": "u-1"}
    transmitter(stream, pki).emit(sets.CREDENTIAL_CHANGE, foreign)
    outcomes = drain(receiver(stream, pki, deny_list, idp), 1, rounds=MAX_RECEIVES + 2)
    assert [o.status for o in outcomes] == ["rejected"] * MAX_RECEIVES
    assert "is not the IdP realm issuer" in outcomes[0].detail
    assert deny_list.entries() == [] and idp.paths("POST") == []
    assert _queue_is_empty(stream) and len(_dead_letters(stream)) == 1
