"""Reading a lab service's settings from its environment, with errors that say what to fix."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the service refuses to start."""


class Env:
    """Typed access to environment variables; `*_FILE` variants read the value from a file."""

    def __init__(self, service: str, environ: Mapping[str, str] | None = None):
        self.service = service
        self.environ = os.environ if environ is None else environ

    def text(self, name: str, default: str | None = None) -> str:
        value = self.environ.get(name)
        if value is None and f"{name}_FILE" in self.environ:
            path = Path(self.environ[f"{name}_FILE"])
            try:
                value = path.read_text().strip()
            except OSError as err:
                raise ConfigError(f"{self.service}: {name}_FILE={path}: {err.strerror}") from None
        if value is None or not value.strip():
            if default is not None:
                return default
            raise ConfigError(
                f"{self.service}: {name} is not set; set it (or {name}_FILE) in the "
                f"deployment's env"
            )
        return value.strip()

    def optional(self, name: str) -> str | None:
        try:
            return self.text(name)
        except ConfigError:
            if f"{name}_FILE" in self.environ:
                raise
            return None

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int = 86400) -> int:
        raw = self.text(name, str(default))
        if not raw.isdigit() or not minimum <= int(raw) <= maximum:
            raise ConfigError(
                f"{self.service}: {name}={raw!r}: allowed: a whole number {minimum} to {maximum}"
            )
        return int(raw)
