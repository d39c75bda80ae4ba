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
