"""Where a workload gets its JWT-SVID: the SPIFFE Workload API, or a file for local runs.

Both return the compact token for one audience, checked with py-spiffe's own parser (audience
present, not expired), so a wrong SVID fails here with a clear message, not at the IdP.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from spiffe import JwtSvid, WorkloadApiClient
from spiffe.errors import PySpiffeError


class SvidError(ValueError):
    """The SVID at hand cannot be used for the audience asked for."""


class JwtSvidSource(Protocol):
    def fetch(self, audience: str) -> str: ...


class WorkloadApiSource:
    """Asks the SPIRE agent over the Workload API socket (SPIFFE_ENDPOINT_SOCKET)."""

    def __init__(self, socket_path: str | None = None, timeout: float = 10.0):
        self._client = WorkloadApiClient(socket_path=socket_path, default_timeout=timeout)

    def fetch(self, audience: str) -> str:
        return self._client.fetch_jwt_svid(audience={audience}).token


class FileSource:
    """Reads a JWT-SVID written by a SPIFFE helper (or a test) to a file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def fetch(self, audience: str) -> str:
        token = self.path.read_text().strip()
        # parse_insecure checks the audience and expiry; the IdP verifies the signature.
        try:
            JwtSvid.parse_insecure(token, {audience})
        except PySpiffeError as err:
            raise SvidError(f"JWT-SVID in {self.path} for audience {audience!r}: {err}") from None
        return token
