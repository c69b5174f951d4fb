"""Secrets read by name, one GET each, never listed or watched: the operator holds no cluster-wide
right on Secrets, only what each tenant namespace grants it (docs/security.md, "Granting access").

A Secret read is kept for SECRET_REFRESH seconds, so a signed webhook or a sync costs no request for
a Secret read moments ago; the Secrets in use are read again every SECRET_REFRESH, and one whose
resourceVersion changed (edited, created, deleted, or access granted or taken away) wakes the rules
that use it, as a watch event did (docs/operations.md, "Secrets")."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from kubernetes.client.exceptions import ApiException

log = logging.getLogger("invsync.operator.secrets")

SECRET_REFRESH = 10.0  # seconds a read is reused, and between two reads of a Secret in use
FORGET_AFTER = 600.0  # a Secret no sync or webhook asked for this long is no longer read again
DENIED = "<forbidden>"  # the version of a Secret the namespace did not grant access to
TENANT_GRANT = "manifests/tenant/"


class SecretAccessDenied(Exception):
    """The API server refused to let the operator read a Secret: its namespace granted no access."""

    def __init__(self, namespace: str, name: str, subject: str | None) -> None:
        who = subject or "invsync's ServiceAccount"
        if subject and subject.startswith("system:serviceaccount:"):
            who = "ServiceAccount " + "/".join(subject.split(":")[2:4])
        super().__init__(
            f"namespace {namespace} has not granted {who} access to Secret {name}: apply a Role and "
            f'RoleBinding in {namespace} as {TENANT_GRANT} does (docs/security.md, "Granting access")'
        )
        self.namespace, self.name = namespace, name


def forbidden_subject(exc: ApiException) -> str | None:
    """The user the API server names in a 403 (`User "system:serviceaccount:NS:NAME" cannot get ...`)."""
    found = re.search(r'User \\?"([^"\\]+)\\?"', str(exc.body or ""))
    return found.group(1) if found else None


@dataclass
class _Entry:
    version: str | None  # None: not found; DENIED: forbidden
    data: Mapping[str, str] | None
    subject: str | None
    fetched: float
    used: float


Fetch = Callable[[str, str], Awaitable[tuple[str, Mapping[str, str]] | None]]


class SecretCache:
    """Secrets by (namespace, name): reused for `ttl`, re-read while in use, changes reported to
    `on_change(namespace, name, resourceVersion or None)`."""

    def __init__(
        self,
        fetch: Fetch,
        on_change: Callable[[str, str, str | None], None],
        ttl: float = SECRET_REFRESH,
        forget_after: float = FORGET_AFTER,
    ) -> None:
        self._fetch, self._on_change, self._ttl, self._forget_after = fetch, on_change, ttl, forget_after
        self._entries: dict[tuple[str, str], _Entry] = {}

    async def read(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The Secret's data, None when it does not exist; raises SecretAccessDenied when forbidden."""
        key = (namespace, name)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is None or now - entry.fetched >= self._ttl:
            entry = await self._read(key)
        entry.used = now
        if entry.version == DENIED:
            raise SecretAccessDenied(namespace, name, entry.subject)
        return entry.data

    async def _read(self, key: tuple[str, str]) -> _Entry:
        subject = None
        try:
            found = await self._fetch(*key)
        except ApiException as exc:
            if exc.status != 403:
                raise
            found, subject = None, forbidden_subject(exc)
            version: str | None = DENIED
        else:
            version = found[0] if found is not None else None
        previous = self._entries.get(key)
        now = time.monotonic()
        entry = _Entry(version, found[1] if found is not None else None, subject, now, now)
        self._entries[key] = entry
        if previous is not None and previous.version != version:
            self._on_change(*key, None if version in (None, DENIED) else version)
        return entry

    async def refresh(self) -> None:
        """Read again every Secret in use whose last read is older than the ttl; forget the others."""
        now = time.monotonic()
        for key, entry in list(self._entries.items()):
            if now - entry.used > self._forget_after:
                del self._entries[key]
            elif now - entry.fetched >= self._ttl:
                try:
                    await self._read(key)
                except Exception as exc:  # the API server away: the next round tries again
                    log.warning("Secret %s/%s: re-read failed: %s", *key, type(exc).__name__)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._ttl)
            await self.refresh()
