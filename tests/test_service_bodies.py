"""Request bodies the lab's services refuse before they cost memory: too large, or not JSON.

Run against the real decision service on loopback; the reader is shared by every service.
"""

from __future__ import annotations

import time

import httpx
import pytest

from services.common.web import MAX_BODY_BYTES
from tests.decision_peer import (
    ADMIN_TOKEN,
    TokenMint,
    running_decision_service,
    service_config,
)

EVALUATION = "/access/v1/evaluation"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    config = service_config(tmp_path_factory.mktemp("bodies"), TokenMint())
    with running_decision_service(config) as running:
        yield running


def chunks(total: int, size: int = 64 * 1024):
    """A chunked body with no Content-Length: the server cannot know its size up front."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def test_a_declared_oversized_body_is_refused_unread(service):
    started = time.perf_counter()
    answer = httpx.post(
        f"{service.url}{EVALUATION}",
        content=chunks(50 * 2**20),
        headers={"content-length": str(50 * 2**20)},
        timeout=10,
    )
    assert answer.status_code == 400
    assert answer.json()["context"]["reason"] == "request too large"
    assert answer.json()["decision"] is False
    assert time.perf_counter() - started < 5


def test_an_undeclared_oversized_body_is_cut_off_at_the_limit(service):
    answer = httpx.post(
        f"{service.url}{EVALUATION}", content=chunks(MAX_BODY_BYTES + 1), timeout=10
    )
    assert answer.status_code == 400
    assert answer.json()["context"]["reason"] == "request too large"


@pytest.mark.parametrize(
    "body",
    [b"[" * 30_000 + b"]" * 30_000, b'{"n": ' + b"9" * 5_000 + b"}", b"\xff\xfe", b"{"],
    ids=["nested 30,000 deep", "5,000-digit number", "not UTF-8", "truncated"],
)
def test_bodies_python_cannot_parse_are_a_400_deny(service, body):
    answer = httpx.post(f"{service.url}{EVALUATION}", content=body, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["decision"] is False
    assert answer.json()["context"]["reason"] == "malformed request: not JSON"


def test_the_admin_api_refuses_the_same_bodies(service):
    headers = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    url = f"{service.url}/admin/v1/revocations"
    nested = httpx.post(url, content=b"[" * 30_000 + b"]" * 30_000, headers=headers, timeout=10)
    large = httpx.post(url, content=chunks(MAX_BODY_BYTES + 1), headers=headers, timeout=10)
    assert (nested.status_code, large.status_code) == (400, 400)
    assert nested.json() == {"error": "body must be JSON: malformed request: not JSON"}
    assert large.json() == {"error": "body must be JSON: request too large"}


def _request(headers: list[tuple[bytes, bytes]], messages: list[dict], pause: float = 0.0):
    """A Starlette request over a scripted ASGI receive: each message after an optional pause."""
    import asyncio

    from starlette.requests import Request

    queue = list(messages)

    async def receive() -> dict:
        await asyncio.sleep(pause)
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    return Request(scope, receive)


def _read(request, seconds: float = 10.0):
    import asyncio

    from services.common.web import read_body

    # A loop of its own, left unset: asyncio.run would clear the thread's current loop, which
    # the Pulumi runtime in later tests relies on.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(read_body(request, seconds=seconds))
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([(b"content-length", "²".encode("latin-1"))], "bad Content-Length"),
        ([(b"content-length", b"-1")], "bad Content-Length"),
        ([(b"content-length", b"2"), (b"content-length", b"3")], "bad Content-Length"),
        (
            [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")],
            "both Content-Length and Transfer-Encoding",
        ),
    ],
    ids=["unicode digit", "negative", "two lengths", "length and chunked"],
)
def test_ambiguous_lengths_are_refused_before_reading(headers, reason):
    from services.common.web import BodyError

    with pytest.raises(BodyError, match=reason):
        _read(_request(headers, [{"type": "http.request", "body": b"{}", "more_body": False}]))


def test_a_sender_that_stops_or_dawdles_is_refused_not_waited_for():
    from services.common.web import BodyError

    part = {"type": "http.request", "body": b"{", "more_body": True}
    with pytest.raises(BodyError, match="client went away mid-body"):
        _read(_request([], [part]))
    started = time.perf_counter()
    with pytest.raises(BodyError, match="request body too slow"):
        _read(_request([], [part] * 50, pause=0.05), seconds=0.3)
    assert time.perf_counter() - started < 2


def test_a_well_formed_body_reads_whole():
    body = [
        {"type": "http.request", "body": b'{"a": ', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]
    assert _read(_request([(b"content-length", b"8")], body)) == b'{"a": 1}'
