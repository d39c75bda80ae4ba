"""The deny list: admin API with a bearer token, idempotent on event id, entries that expire
after the retention and survive a restart of the service."""

from __future__ import annotations

import httpx
import pytest

from services.decision.deny_list import ConflictError, DenyList
from tests.decision_peer import ADMIN_TOKEN, TokenMint, running_decision_service, service_config

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Clock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_retention(tmp_path):
    clock = Clock()
    deny = DenyList(tmp_path / "d.sqlite3", retention=360, clock=clock)
    entry, new = deny.add("session", "s-1", "e-1", "session-revoked")
    assert new and entry.expires_at == 1_000_360
    clock.now += 359
    assert deny.is_revoked("session", "s-1")
    clock.now += 1
    assert not deny.is_revoked("session", "s-1")
    assert deny.entries() == []


def test_the_same_event_twice_is_one_entry_and_a_conflict_is_refused(tmp_path):
    deny = DenyList(tmp_path / "d.sqlite3", retention=360, clock=Clock())
    first, new = deny.add("subject", "alice-id", "e-1", "credential-change")
    again, new_again = deny.add("subject", "alice-id", "e-1", "credential-change")
    assert (new, new_again, again) == (True, False, first)
    with pytest.raises(ConflictError, match="e-1"):
        deny.add("subject", "bob-id", "e-1", "credential-change")
    assert [e.value for e in deny.entries()] == ["alice-id"]


def test_entries_survive_a_restart(tmp_path):
    clock = Clock()
    path = tmp_path / "d.sqlite3"
    first = DenyList(path, retention=360, clock=clock)
    first.add("session", "s-1", "e-1", "session-revoked")
    first.close()
    clock.now += 100
    second = DenyList(path, retention=360, clock=clock)
    assert second.is_revoked("session", "s-1")
    assert not second.is_revoked("subject", "s-1")
    assert second.add("session", "s-1", "e-1", "session-revoked")[1] is False


def test_admin_api_through_http_and_a_restart(tmp_path):
    mint = TokenMint()
    config = service_config(tmp_path, mint)
    body = {"kind": "session", "value": "session-1", "event_id": "jti-1", "reason": "x"}
    with running_decision_service(config) as service:
        url = f"{service.url}/admin/v1/revocations"
        assert httpx.post(url, json=body, timeout=5).status_code == 401
        wrong = {"Authorization": "Bearer " + "y" * 49}
        assert httpx.post(url, json=body, headers=wrong, timeout=5).status_code == 401
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.post(url, json=body, headers=AUTH, timeout=5).status_code == 201
        assert httpx.post(url, json=body, headers=AUTH, timeout=5).status_code == 200
        conflict = {**body, "value": "session-2"}
        assert httpx.post(url, json=conflict, headers=AUTH, timeout=5).status_code == 409
        bad = {**body, "kind": "device"}
        answer = httpx.post(url, json=bad, headers=AUTH, timeout=5)
        assert answer.status_code == 400 and "kind" in answer.json()["error"]
    with running_decision_service(config) as service:
        listed = httpx.get(f"{service.url}/admin/v1/revocations", headers=AUTH, timeout=5).json()
        assert [(e["kind"], e["value"], e["event_id"]) for e in listed["entries"]] == [
            ("session", "session-1", "jti-1")
        ]
        evaluation = {
            "action": {"name": "invoke_chat_model"},
            "resource": {"type": "model", "id": "chat"},
            "context": {"token": mint.token()},
        }
        got = httpx.post(f"{service.url}/access/v1/evaluation", json=evaluation, timeout=5).json()
        assert got["context"]["reason"] == "session revoked"
        assert httpx.get(f"{service.url}/readyz", timeout=5).json() == {
            "status": "ready",
            "backend": "local",
        }
        assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200
