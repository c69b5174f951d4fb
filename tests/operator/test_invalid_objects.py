"""An object the API server admitted before a bound existed: it gets Ready=False InvalidSpec naming its
field once per generation, the rest of the namespace is parsed as usual, and no loop reads its raw value
(docs/operations.md, "Objects the operator cannot use"). The fake Kube records status patches only."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from invsync.api import GROUP, VERSION
from invsync.operator.kube import Kube
from invsync.operator.runtime import Indices, Operator, Shard
from invsync.operator.worker import RuleWorker


class RecordingKube(Kube):
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Any, timeout: Any = None
    ) -> Any:
        self.patches.append((kind, name, dict(status)))
        return None


def source(name: str, rv: str, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InventorySource",
        "metadata": {"name": name, "namespace": "shop", "resourceVersion": rv, "generation": generation},
        "spec": {"provider": "http", "endpoint": "http://127.0.0.1:1", **spec},
    }


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    posted: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        kopf, "event", lambda body, *, type, reason, message: posted.append((type, reason, message))
    )
    return posted


async def test_an_invalid_source_gets_a_condition_naming_its_field_once_and_others_parse(
    events: list[tuple[str, str, str]],
) -> None:
    kube = RecordingKube()
    op = Operator(kube, Shard())
    sources = {"shop": [source("good", "1"), source("bad", "2", pollInterval="99999999999999999999h")]}
    op.indices = Indices(stores={}, warehouses={}, sources=sources, rules={})

    snap = op.snapshot("shop")
    await asyncio.gather(*op.background)
    assert list(snap.sources) == ["good"]
    [(kind, name, patch)] = kube.patches
    [ready] = patch["conditions"]
    assert (kind, name, ready["type"], ready["status"], ready["reason"]) == (
        "InventorySource", "bad", "Ready", "False", "InvalidSpec"
    )  # fmt: skip
    assert "spec.pollInterval" in ready["message"] and "longer than 720h" in ready["message"]
    assert events == [("Warning", "InvalidSpec", ready["message"])]

    # The status write bumps the resourceVersion: the same generation is not written or announced again.
    sources["shop"][1] = {**source("bad", "3", pollInterval="99999999999999999999h"), "status": patch}
    op.snapshot("shop")
    await asyncio.gather(*op.background)
    assert len(kube.patches) == 1 and len(events) == 1

    # A new generation with another bad value is reported again.
    sources["shop"][1] = source("bad", "4", generation=2, pollInterval="0s")
    op.snapshot("shop")
    await asyncio.gather(*op.background)
    assert len(kube.patches) == 2 and "spec.pollInterval" in kube.patches[1][2]["conditions"][0]["message"]


async def test_a_rule_reading_an_invalid_source_polls_by_the_valid_ones(events: list[Any]) -> None:
    op = Operator(RecordingKube(), Shard())
    sources = {"shop": [source("good", "1", pollInterval="30s"), source("bad", "2", pollInterval="1e9h")]}
    op.indices = Indices(stores={}, warehouses={}, sources=sources, rules={})
    worker = RuleWorker(op, {"metadata": {"name": "r", "namespace": "shop"}, "spec": {"interval": "0s"}})
    worker.deps = {("InventorySource", "good"), ("InventorySource", "bad")}
    op.snapshot("shop")
    await asyncio.gather(*op.background)
    assert worker._poll() == 30.0  # the raw '1e9h' is never parsed by the loop
    assert worker._interval() == 300.0  # an unreadable interval falls back, never raises
