"""The revocation deny list: sessions and subjects, persisted in SQLite on the data volume.

The CAEP receiver adds entries; every decision reads them. Each entry lasts `retention`
seconds (longer than any token it could refer to) and survives a restart, because the
database lives on the pod's persistent volume. Adding is idempotent on the event id. Reads are
served from memory, loaded from the database at start and kept in step on every write.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

KINDS = ("session", "subject")


class ConflictError(ValueError):
    """The event id is known with a different entry."""


@dataclass(frozen=True)
class Entry:
    kind: str
    value: str
    event_id: str
    reason: str
    created_at: int
    expires_at: int

    def to_json(self) -> dict:
        return self.__dict__.copy()


class DenyList:
    def __init__(self, path: Path | str, retention: int, clock: Callable[[], float] = time.time):
        self.retention = retention
        self.clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS revocations ("
            " event_id TEXT PRIMARY KEY, kind TEXT NOT NULL, value TEXT NOT NULL,"
            " reason TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL)"
        )
        self._live: dict[tuple[str, str], int] = {}
        for kind, value, expires_at in self._db.execute(
            "SELECT kind, value, expires_at FROM revocations WHERE expires_at > ?",
            (int(self.clock()),),
        ):
            key = (kind, value)
            self._live[key] = max(self._live.get(key, 0), expires_at)

    def add(self, kind: str, value: str, event_id: str, reason: str) -> tuple[Entry, bool]:
        """Record a revocation; returns the entry and whether it was new."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        now = int(self.clock())
        with self._lock:
            row = self._db.execute(
                "SELECT kind, value, event_id, reason, created_at, expires_at"
                " FROM revocations WHERE event_id = ?",
                (event_id,),
            ).fetchone()
            if row is not None:
                known = Entry(*row)
                if (known.kind, known.value) != (kind, value):
                    raise ConflictError(f"event {event_id} is already recorded for another entry")
                return known, False
            entry = Entry(kind, value, event_id, reason, now, now + self.retention)
            self._db.execute(
                "INSERT INTO revocations VALUES (?, ?, ?, ?, ?, ?)",
                (event_id, kind, value, reason, entry.created_at, entry.expires_at),
            )
            # Expired rows are of no use to anyone; drop them while holding the lock anyway.
            self._db.execute("DELETE FROM revocations WHERE expires_at <= ?", (now,))
            key = (kind, value)
            self._live[key] = max(self._live.get(key, 0), entry.expires_at)
            return entry, True

    def is_revoked(self, kind: str, value: str | None) -> bool:
        if value is None:
            return False
        expires_at = self._live.get((kind, value))
        return expires_at is not None and expires_at > self.clock()

    def entries(self) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, value, event_id, reason, created_at, expires_at FROM revocations"
                " WHERE expires_at > ? ORDER BY created_at, event_id",
                (int(self.clock()),),
            ).fetchall()
        return [Entry(*row) for row in rows]

    def ready(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._db.close()
