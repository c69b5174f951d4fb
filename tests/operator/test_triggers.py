"""Which changes wake which rule's worker, and which process owns a rule (no Kubernetes needed)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest

from invsync.engine.records import StockRecord
from invsync.operator.kube import Kube
from invsync.operator.runtime import Operator, Shard
from invsync.operator.worker import REREAD_MIN_GAP, RuleWorker


def body(name: str, generation: int = 1, **annotations: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop", "generation": generation, "resourceVersion": "1",
                     "annotations": annotations},
        "spec": {"interval": "5m"},
    }  # fmt: skip


def worker(op: Operator, name: str, deps: set[tuple[str, str]], started: bool = True) -> RuleWorker:
    w = RuleWorker(op, body(name))
    w.deps = deps
    if started:
        w.synced_generation, w.synced_marks, w.full = 1, (None, None), False
    op.workers[("shop", name)] = w
    return w


@pytest.fixture
def op() -> Operator:
    return Operator(Kube.__new__(Kube), Shard())


def test_a_referenced_object_wakes_only_the_rules_using_it(op: Operator) -> None:
    a = worker(op, "a", {("Store", "tt"), ("Secret", "tt-creds")})
    b = worker(op, "b", {("Store", "other")})
    op.touched("Secret", "shop", "tt-creds", "rv-1")
    assert a.wake.is_set() and not b.wake.is_set()
    a.wake.clear()
    op.touched("Secret", "shop", "tt-creds", "rv-1")  # same resourceVersion: a status-only echo
    assert not a.wake.is_set()


async def test_a_label_selector_rule_wakes_on_any_store(op: Operator) -> None:
    a = worker(op, "a", set())
    a.selects = {"Store"}
    op.touched("Store", "shop", "new-store", (1, ()))
    assert a.wake.is_set()
    # No rule names the store: it gets a status probe of its own (cancelled here).
    assert list(op.probes) == [("shop", "Store", "new-store")]
    await op.stop()


def test_another_rule_changing_wakes_the_rest_of_the_namespace(op: Operator) -> None:
    a, b = worker(op, "a", set()), worker(op, "b", set())
    op.touched("SyncRule", "shop", "b", 2)
    assert a.wake.is_set() and not b.wake.is_set()


def test_spec_change_and_requested_at_trigger_but_a_status_write_does_not(op: Operator) -> None:
    a = worker(op, "a", set())
    a.update(body("a"))
    assert not a.wake.is_set()
    a.update(body("a", generation=2))
    assert a.wake.is_set()
    a.wake.clear()
    a.synced_generation = 2
    a.update(body("a", generation=2, **{"invsync.dev/requested-at": "2026-01-01T00:00:00Z"}))
    assert a.wake.is_set()


async def test_nothing_wakes_a_worker_before_its_first_sync(op: Operator) -> None:
    a = worker(op, "a", {("Store", "tt")}, started=False)
    op.touched("Store", "shop", "tt", (2, ()))
    assert not a.wake.is_set()
    await op.stop()


def test_webhook_rows_go_to_the_rules_reading_that_source(op: Operator) -> None:
    a = worker(op, "a", {("InventorySource", "wms")})
    b = worker(op, "b", {("InventorySource", "shopify")})
    rows = [StockRecord("wms", "L1", "A-1", 5)]
    assert op.webhook("shop", "wms", rows) == 1
    assert a.wake.is_set() and a.skus == {"A-1"} and a.webhook_rows == rows and "A-1" in a.memory.arrivals
    assert not b.wake.is_set()


def test_shard_parsing_and_ownership() -> None:
    with pytest.raises(ValueError, match="I/N"):
        Shard.parse("two")
    with pytest.raises(ValueError, match="0 <= I < N"):
        Shard.parse("2/2")
    shards = [Shard.parse(f"{i}/3") for i in range(3)]
    owners = [[s.owns("shop", f"rule-{n}") for s in shards] for n in range(50)]
    assert all(sum(o) == 1 for o in owners)


def test_a_channel_changed_behind_invsyncs_back_is_re_read_at_once_but_never_back_to_back(
    op: Operator,
) -> None:
    """docs/rules.md, "How a sync runs": orders on a busy shop must not chain full reads."""
    w = worker(op, "a", set())
    assert w._reread(changed=1, read=1, unreadable=0, requeue=None) is None  # no full sync yet: now
    assert w.full and w.wake.is_set()
    w.full, w.full_synced_at = False, time.monotonic()
    w.wake.clear()
    wait = w._reread(changed=1, read=1, unreadable=0, requeue=None)
    assert wait is not None and 0 < wait <= REREAD_MIN_GAP and not w.full  # a full sync just ended
    assert w._reread(changed=1, read=1, unreadable=0, requeue=2.0) == 2.0  # a sooner requeue stands
    w.full_synced_at -= REREAD_MIN_GAP
    assert w._reread(changed=1, read=1, unreadable=0, requeue=None) is None and w.full


async def test_webhook_syncs_do_not_postpone_the_full_sync_interval_brings(
    op: Operator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy shop sends webhooks without pause; the full re-read that `interval` brings (the only
    sync that sees a channel changed without a webhook) still comes every interval."""
    w = worker(op, "a", set())
    w.body["spec"]["interval"] = "1s"
    syncs: list[bool] = []

    async def sync(skus: frozenset[str] | None, rows: list[StockRecord]) -> float | None:
        syncs.append(skus is None)
        return None

    monkeypatch.setattr(w, "sync", sync)
    task = asyncio.create_task(w.run())
    row = StockRecord("wms", "L1", "SKU-1", 1)
    deadline = time.monotonic() + 2.6
    while time.monotonic() < deadline:
        w.webhook([row], time.monotonic())
        await asyncio.sleep(0.05)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert syncs.count(False) > 10  # the webhooks were synced as they came
    assert syncs.count(True) >= 3  # the first sync, and one each interval since
