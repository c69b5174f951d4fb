"""Secrets are read by name, never watched (docs/operations.md, "Secrets"): a read is reused for the
refresh period, the Secrets in use are read again each period, and a changed resourceVersion (edited,
created, deleted, access granted) wakes the rules using it. The fetch counts GETs; the 403 body is the
API server's own wording."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import pytest
from kubernetes.client.exceptions import ApiException

from invsync.operator.secrets import SecretAccessDenied, SecretCache

TTL = 0.05


class Fetch:
    def __init__(self) -> None:
        self.secrets: dict[str, tuple[str, dict[str, str]]] = {}
        self.forbidden: set[str] = set()
        self.gets: list[str] = []

    async def __call__(self, namespace: str, name: str) -> tuple[str, Mapping[str, str]] | None:
        self.gets.append(name)
        if namespace in self.forbidden:
            user = "system:serviceaccount:invsync-system:invsync"
            message = (
                f'secrets "{name}" is forbidden: User "{user}" cannot get resource "secrets" '
                f'in API group "" in the namespace "{namespace}"'
            )
            exc = ApiException(status=403, reason="Forbidden")
            exc.body = json.dumps({"kind": "Status", "message": message})
            raise exc
        return self.secrets.get(name)


def cache(forget_after: float = 600.0) -> tuple[SecretCache, Fetch, list[tuple[str, str, str | None]]]:
    fetch, changes = Fetch(), []
    secrets = SecretCache(fetch, lambda ns, n, rv: changes.append((ns, n, rv)), TTL, forget_after)
    return secrets, fetch, changes


async def test_a_read_is_reused_then_read_again_and_a_change_wakes_its_rules() -> None:
    secrets, fetch, changes = cache()
    fetch.secrets["tt-creds"] = ("5", {"app_secret": "one"})
    reads = [await secrets.read("shop", "tt-creds") for _ in range(50)]
    assert fetch.gets == ["tt-creds"] and all(r == {"app_secret": "one"} for r in reads)
    assert changes == []  # a first read is no change

    fetch.secrets["tt-creds"] = ("9", {"app_secret": "two"})
    assert await secrets.read("shop", "tt-creds") == {"app_secret": "one"}  # within the period
    await asyncio.sleep(TTL)
    await secrets.refresh()  # in use: read again without any sync asking
    assert changes == [("shop", "tt-creds", "9")]
    assert await secrets.read("shop", "tt-creds") == {"app_secret": "two"}
    assert fetch.gets == ["tt-creds", "tt-creds"]

    del fetch.secrets["tt-creds"]
    await asyncio.sleep(TTL)
    assert await secrets.read("shop", "tt-creds") is None
    assert changes[-1] == ("shop", "tt-creds", None)
    fetch.secrets["tt-creds"] = ("12", {"app_secret": "three"})  # created again: its rules wake
    await asyncio.sleep(TTL)
    await secrets.refresh()
    assert changes[-1] == ("shop", "tt-creds", "12")


async def test_a_namespace_that_granted_nothing_is_named_with_the_grant_and_wakes_once_granted() -> None:
    secrets, fetch, changes = cache()
    fetch.secrets["tt-creds"] = ("5", {"app_secret": "one"})
    fetch.forbidden.add("shop")
    with pytest.raises(SecretAccessDenied) as denied:
        await secrets.read("shop", "tt-creds")
    message = str(denied.value)
    assert (
        "namespace shop has not granted ServiceAccount invsync-system/invsync access to Secret tt-creds"
        in message
    )
    assert "manifests/tenant/" in message and "Granting access" in message
    fetch.forbidden.clear()  # the tenant applies the Role and RoleBinding
    await asyncio.sleep(TTL)
    await secrets.refresh()
    assert changes == [("shop", "tt-creds", "5")]
    assert await secrets.read("shop", "tt-creds") == {"app_secret": "one"}


async def test_a_secret_nobody_asks_for_is_no_longer_read() -> None:
    secrets, fetch, _ = cache(forget_after=TTL)
    fetch.secrets["old"] = ("1", {})
    await secrets.read("shop", "old")
    await asyncio.sleep(TTL * 2)
    await secrets.refresh()
    await secrets.refresh()
    assert fetch.gets == ["old"]
