"""What a component needs to get a TLS server certificate: a `TlsIssuer`.

Components that serve TLS take an issuer instead of a CA, so the same component runs under
Vault's PKI intermediate (the lab: `VaultConfig`) or directly under a root (`RootCa`, for a
stack without Vault). The issuer decides the key type, usages and lifetime; the component
says only which host names it serves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class IssuedTls:
    """A server certificate and its key, ready for a `kubernetes.io/tls` Secret."""

    cert_chain_pem: pulumi.Output[str]
    """The leaf, then each CA between it and the root (the root itself left out), PEM."""
    key_pem: pulumi.Output[str]
    """The leaf's private key, PKCS#8 PEM (secret)."""

    @property
    def cert_pem(self) -> pulumi.Output[str]:
        """The leaf alone."""
        return self.cert_chain_pem.apply(leaf_pem)


class TlsIssuer(Protocol):
    """Issues TLS server certificates for a component's host names."""

    def issue_tls(self, name: str, hosts: Sequence[str]) -> IssuedTls:
        """A certificate for `hosts` (the first is its common name), under a child `name`."""
        ...


def leaf_pem(chain_pem: str) -> str:
    """The first certificate of a PEM chain, newline-ended."""
    found = _PEM_CERT.search(chain_pem)
    if found is None:
        raise ValueError("the certificate chain holds no PEM certificate")
    return found.group(0) + "\n"


def chain_of(*pems: str) -> str:
    """PEM blocks one after the other, each ending in a newline."""
    return "".join(p.strip() + "\n" for p in pems)


def check_hosts(where: str, hosts: Sequence[str]) -> tuple[str, ...]:
    """The host names as given, or a clear error: at least one, no wildcard, no IP, no dups."""
    names = tuple(hosts)
    if not names:
        raise ValueError(f"{where}: a TLS certificate needs at least one host name")
    bad = [
        h
        for h in names
        if not all(_DNS_LABEL.match(label) for label in h.split(".")) or h[-1].isdigit()
    ]
    if bad:
        raise ValueError(
            f"{where}: {bad} are not lower-case DNS names (no wildcards, IPs or ports); "
            "give plain host names such as api.lab.localhost"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: host names repeat in {list(names)}")
    return names
