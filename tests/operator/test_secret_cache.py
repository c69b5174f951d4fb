"""Secrets come from the watch cache: an unchanged Secret is read from the API server once, a changed
one (the watch reports a new resourceVersion) at once, a deleted one never (docs/operations.md, "Secrets").
The fake Kube counts GETs; the index holds what the operator's watch holds: names and resourceVersions."""

from __future__ import annotations

from collections.abc import Mapping

from invsync.operator.kube import Kube
from invsync.operator.runtime import Indices, Operator, Shard


class CountingKube(Kube):
    def __init__(self, data: dict[str, dict[str, str]]) -> None:
        self.data = data
        self.gets: list[str] = []

    async def read_secret(self, namespace: str, name: str, timeout: float = 10.0) -> dict[str, str] | None:
        self.gets.append(name)
        return self.data.get(name)


async def test_an_unchanged_secret_is_read_once_and_a_changed_one_at_once() -> None:
    kube = CountingKube({"tt-creds": {"app_secret": "one"}})
    secrets: dict[str, list[tuple[str, str]]] = {"shop": [("tt-creds", "5"), ("other", "7")]}
    op = Operator(kube, Shard())
    op.indices = Indices(stores={}, warehouses={}, sources={}, rules={}, secrets=secrets)

    reads: list[Mapping[str, str] | None] = [await op.read_secret("shop", "tt-creds") for _ in range(50)]
    assert kube.gets == ["tt-creds"] and all(r == {"app_secret": "one"} for r in reads)

    kube.data["tt-creds"] = {"app_secret": "two"}
    assert await op.read_secret("shop", "tt-creds") == {"app_secret": "one"}  # the watch has not seen it
    secrets["shop"][0] = ("tt-creds", "9")  # the watch event arrives
    assert await op.read_secret("shop", "tt-creds") == {"app_secret": "two"}
    assert await op.read_secret("shop", "tt-creds") == {"app_secret": "two"}
    assert kube.gets == ["tt-creds", "tt-creds"]

    # Absent from the watch (deleted, or never there; another namespace's Secret too): no GET at all.
    secrets["shop"].pop(0)
    assert await op.read_secret("shop", "tt-creds") is None
    assert await op.read_secret("elsewhere", "tt-creds") is None
    assert kube.gets == ["tt-creds", "tt-creds"] and ("shop", "tt-creds") not in op.secret_data
