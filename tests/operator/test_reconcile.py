"""One sync of one SyncRule against in-memory platforms: the decisions, without Kubernetes or HTTP.

The end-to-end tests in tests/e2e/ run the same code against the real API server and the sandbox.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from invsync.api import InventorySource, Store, SyncRule, SyncRuleStatus, Warehouse
from invsync.engine.records import ChannelWarehouse, Listing, Location, SlotUpdate, StockRecord
from invsync.operator.conditions import Cond, find
from invsync.operator.objects import object_patch
from invsync.operator.reconcile import sync_rule
from invsync.operator.report import status_patch
from invsync.operator.runtime import stable_shard
from invsync.operator.state import (
    APPROVE_HOLD,
    LAST_GOOD_READ,
    ObjectStatus,
    RuleMemory,
    SharedMemory,
    Snapshot,
    SyncReport,
)
from invsync.providers.base import AuthError, PushOutcome, UnavailableError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NS = "shop"


def meta(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NS,
        "generation": 1,
        "creationTimestamp": "2026-01-01T00:00:00Z",
        **extra,
    }


def source(name: str = "wms") -> InventorySource:
    return InventorySource.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "InventorySource",
            "metadata": meta(name),
            "spec": {
                "provider": "http",
                "endpoint": "http://wms.test",
                "credentialsSecretRef": {"name": "wms-creds"},
            },
        }
    )


def warehouse(name: str, location: str, src: str = "wms") -> Warehouse:
    return Warehouse.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Warehouse",
            "metadata": meta(name),
            "spec": {"sourceRef": {"name": src}, "locationId": location},
        }
    )


def store(name: str, warehouses: Sequence[tuple[str, list[str]]] = (), secret: str = "tt-creds") -> Store:
    return Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": meta(name),
            "spec": {
                "platform": "tiktok",
                "shopCipher": f"C-{name}",
                "credentialsSecretRef": {"name": secret},
                "multiWarehouse": len(warehouses) > 1,
                "warehouses": [{"channelWarehouseId": c, "warehouseRefs": w} for c, w in warehouses],
            },
        }
    )


def rule(name: str = "rule", annotations: Mapping[str, str] | None = None, **spec: Any) -> SyncRule:
    body = {"stores": {"names": ["tt"]}, "warehouses": [{"name": "jkt"}], **spec}
    return SyncRule.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "SyncRule",
            "metadata": meta(name, annotations=dict(annotations or {})),
            "spec": body,
        }
    )


class FakeChannel:
    def __init__(
        self, listings: list[Listing], fail_skus: Collection[str] = (), read_error: Exception | None = None
    ):
        self.listings = {(x.product_id, x.sku_id, x.channel_warehouse_id): x for x in listings}
        self.fail_skus = set(fail_skus)
        self.read_error = read_error
        self.pushes: list[tuple[str, tuple[SlotUpdate, ...]]] = []
        self.reads: list[frozenset[str] | None] = []  # seller SKUs of each listings read, None: all

    async def list_warehouses(self) -> list[ChannelWarehouse]:
        if self.read_error:
            raise self.read_error
        return [ChannelWarehouse(cw) for cw in sorted({k[2] for k in self.listings})]

    async def list_listings(self, seller_skus: Collection[str] | None = None) -> list[Listing]:
        if self.read_error:
            raise self.read_error
        self.reads.append(None if seller_skus is None else frozenset(seller_skus))
        return [x for x in self.listings.values() if seller_skus is None or x.sku in seller_skus]

    async def push(self, product_id: str, updates: Sequence[SlotUpdate]) -> list[PushOutcome]:
        self.pushes.append((product_id, tuple(updates)))
        out = []
        for u in updates:
            ok = u.sku not in self.fail_skus
            if ok:
                key = (u.product_id, u.sku_id, u.channel_warehouse_id)
                self.listings[key] = msgspec.structs.replace(self.listings[key], quantity=u.quantity)
            out.append(PushOutcome(u, ok, "" if ok else "sku locked"))
        return out

    async def aclose(self) -> None:
        return None

    @property
    def pushed(self) -> dict[str, int]:
        """What the plan changed: carried slots (sent at their live value) left out."""
        return {u.sku: u.quantity for _, batch in self.pushes for u in batch if not u.carried}


class FakeSource:
    def __init__(
        self, records: list[StockRecord], locations: Sequence[str] = ("L1",), error: Exception | None = None
    ):
        self.records = records
        self.locations = [Location(x) for x in locations]
        self.error = error

    async def list_locations(self) -> list[Location]:
        if self.error:
            raise self.error
        return self.locations

    async def read_stock(self, location_ids: Collection[str]) -> list[StockRecord]:
        return [r for r in self.records if r.location in location_ids]

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> list[StockRecord]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


class FakePorts:
    def __init__(self, channels: dict[str, FakeChannel], sources: dict[str, FakeSource], secrets: set[str]):
        self.channels, self.sources, self.secrets = channels, sources, secrets

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return {"token": "x"} if name in self.secrets else None

    def channel(self, store: Store, secret: Mapping[str, str]) -> FakeChannel:
        return self.channels[store.name]

    def source(self, source: InventorySource, secret: Mapping[str, str] | None) -> FakeSource:
        return self.sources[source.name]


def listing(sku: str, qty: int, cw: str = "CW1", store_name: str = "tt") -> Listing:
    return Listing(store_name, sku, f"p-{sku}", f"s-{sku}", cw, qty)


def stock(sku: str, available: int, location: str = "L1", **kw: Any) -> StockRecord:
    return StockRecord("wms", location, sku, available, **kw)


def world(
    r: SyncRule, stores: Sequence[Store] = (), whs: Sequence[Warehouse] = (), rules: Sequence[SyncRule] = ()
) -> Snapshot:
    return Snapshot(
        NS,
        rules=[r, *rules],
        stores={s.name: s for s in (stores or [store("tt")])},
        warehouses={w.name: w for w in (whs or [warehouse("jkt", "L1")])},
        sources={"wms": source()},
    )


async def run(
    r: SyncRule, snap: Snapshot, ports: FakePorts, memory: RuleMemory | None = None, **kw: Any
) -> SyncReport:
    return await sync_rule(r, snap, ports, memory or RuleMemory(), SharedMemory(), now=NOW, **kw)


def ready(report: SyncReport) -> Mapping[str, Any]:
    cond = find(report.status["conditions"], "Ready")
    assert cond is not None
    return cond


SECRETS = {"tt-creds", "wms-creds"}


async def test_aftership_seed_quantities_are_pushed_and_summarised() -> None:
    ch = FakeChannel([listing("A", 0), listing("B", 3), listing("C", 7), listing("D", 0), listing("X", 4)])
    src = FakeSource([stock("A", 100), stock("B", 5), stock("C", 6), stock("D", 0, continue_selling=True)])
    r = rule(warehouses=[{"name": "jkt", "ratio": 90}], outOfStockThreshold=5)
    report = await run(r, world(r), FakePorts({"tt": ch}, {"wms": src}, SECRETS))
    assert ch.pushed == {"A": 90, "B": 0, "C": 5, "D": 99999}
    assert ready(report)["status"] == "True" and report.result == "success"
    assert report.status["summary"] == {
        "listings": 4,
        "inSync": 4,
        "drifted": 0,
        "pushed": 4,
        "failed": 0,
        "unmatched": 1,
        "held": 0,
        "conflicted": 0,
    }


async def test_easyboss_multi_warehouse_slot_gets_45_and_the_skus_other_warehouses_ride_along() -> None:
    st = store("tt", [("CW1", ["w1"]), ("CW2", ["w2"]), ("CW3", ["w3"])])
    whs = [warehouse("w1", "L1"), warehouse("w2", "L2"), warehouse("w3", "L3")]
    ch = FakeChannel([listing("A", 0, "CW1"), listing("A", 0, "CW2"), listing("A", 0, "CW3")])
    src = FakeSource(
        [stock("A", 100, "L1"), stock("A", 0, "L2", enabled=False), stock("A", 0, "L3", enabled=False)],
        locations=("L1", "L2", "L3"),
    )
    r = rule(warehouses=[{"name": w, "ratio": 50} for w in ("w1", "w2", "w3")], executionRatio=90)
    report = await run(r, world(r, [st], whs), FakePorts({"tt": ch}, {"wms": src}, SECRETS))
    # TikTok takes every warehouse of the SKU in each update: CW2 and CW3 go at their live values.
    sent = [(u.channel_warehouse_id, u.quantity, u.carried) for _, b in ch.pushes for u in b]
    assert sent == [("CW1", 45, False), ("CW2", 0, True), ("CW3", 0, True)]
    assert report.status["summary"]["inSync"] == 3 and report.status["summary"]["pushed"] == 1


async def test_second_sync_of_an_unchanged_world_pushes_and_writes_nothing() -> None:
    ch = FakeChannel([listing("A", 1)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 10)])}, SECRETS)
    r = rule()
    first = await run(r, world(r), ports)
    assert len(ch.pushes) == 1
    written = {**first.status, "lastSyncTime": "2026-01-01T00:00:00Z"}
    r2 = r.model_copy(update={"status": SyncRuleStatus.model_validate(written)})
    second = await run(r2, world(r2), ports)
    assert len(ch.pushes) == 1
    third = await run(r2, world(r2), ports)
    # The second sync reports pushed 0 (a change), the third finds nothing to write at all.
    assert status_patch(written, second.status, NOW + timedelta(minutes=1)) is not None
    after = {**second.status, "lastSyncTime": "2026-01-01T00:01:00Z"}
    assert status_patch(after, third.status, NOW + timedelta(minutes=2)) is None


async def test_failed_source_read_pushes_nothing_it_feeds_and_says_why() -> None:
    ch = FakeChannel([listing("A", 7)])
    src = FakeSource([], error=UnavailableError("HTTP 503 after 5 attempts"))
    r = rule()
    report = await run(r, world(r), FakePorts({"tt": ch}, {"wms": src}, SECRETS))
    assert ch.pushes == []
    assert ready(report)["reason"] == "SourceUnavailable"
    assert "InventorySource wms could not be read" in ready(report)["message"]
    assert report.result == "failure"


async def test_suddenly_empty_read_pushes_nothing() -> None:
    ch = FakeChannel([listing("A", 7)])
    src = FakeSource([stock("A", 7)])
    ports = FakePorts({"tt": ch}, {"wms": src}, SECRETS)
    shared = SharedMemory()
    r = rule()
    await sync_rule(r, world(r), ports, RuleMemory(), shared, now=NOW)
    src.records = []
    report = await sync_rule(r, world(r), ports, RuleMemory(), shared, now=NOW)
    assert ch.pushes == []
    assert ready(report)["reason"] == "SourceUnavailable"
    assert "returned no stock where the last read had 1" in ready(report)["message"]


async def test_the_empty_read_guard_survives_a_restart_through_the_sources_annotation() -> None:
    ch = FakeChannel([listing("A", 7)])
    src = FakeSource([stock("A", 7)])
    ports = FakePorts({"tt": ch}, {"wms": src}, SECRETS)
    r = rule()
    first = await sync_rule(r, world(r), ports, RuleMemory(), SharedMemory(), now=NOW)
    [obs] = [o for o in first.objects if o.kind == "InventorySource"]
    assert obs.annotations == {LAST_GOOD_READ: '{"L1":1}'}
    # A new process (fresh memory) finds the annotation on the object the index hands it.
    snap = world(r)
    remembered = source().model_copy(
        update={"metadata": source().metadata.model_copy(update={"annotations": obs.annotations})}
    )
    snap = replace(snap, sources={"wms": remembered})
    src.records = []
    report = await sync_rule(r, snap, ports, RuleMemory(), SharedMemory(), now=NOW)
    assert ch.pushes == []
    assert "returned no stock where the last read had 1 records (location L1)" in ready(report)["message"]


async def test_missing_secret_and_missing_store_are_named_while_the_other_store_syncs() -> None:
    good, bad = store("tt"), store("tt-bad", secret="nope")
    ch = FakeChannel([listing("A", 0)])
    r = rule(stores={"names": ["tt", "tt-bad", "ghost"]})
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 4)])}, SECRETS)
    report = await run(r, world(r, [good, bad]), ports)
    assert ch.pushed == {"A": 4}
    cond = ready(report)
    assert cond["status"] == "False" and cond["reason"] == "StoreNotFound"
    assert "Store ghost not found" in cond["message"]
    assert "Secret nope (credentials of Store tt-bad) not found" in cond["message"]
    statuses = {(o.kind, o.name): o for o in report.objects}
    assert statuses[("Store", "tt-bad")].conditions[0].reason == "SecretNotFound"


async def test_wrong_credentials_mark_the_store() -> None:
    ch = FakeChannel([], read_error=AuthError("access token invalid (code 105002)"))
    r = rule()
    report = await run(r, world(r), FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 1)])}, SECRETS))
    store_status = next(o for o in report.objects if o.kind == "Store")
    assert store_status.conditions[0].reason == "AuthFailed"
    assert "refused the credentials in Secret tt-creds" in store_status.conditions[0].message


async def test_unknown_location_holds_what_it_feeds() -> None:
    whs = [warehouse("jkt", "L1"), warehouse("sby", "L9")]
    st = store("tt", [("CW1", ["jkt"]), ("CW2", ["sby"])])
    ch = FakeChannel([listing("A", 0, "CW1"), listing("A", 5, "CW2")])
    r = rule(warehouses=[{"name": "jkt"}, {"name": "sby"}])
    report = await run(
        r, world(r, [st], whs), FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 3)])}, SECRETS)
    )
    assert ch.pushed == {"A": 3}
    assert [(u.channel_warehouse_id, u.carried) for _, b in ch.pushes for u in b] == [
        ("CW1", False),
        ("CW2", True),
    ]
    wh = next(o for o in report.objects if o.kind == "Warehouse" and o.name == "sby")
    assert wh.conditions[0].reason == "LocationNotFound"
    assert "location L9 not found in InventorySource wms" in wh.conditions[0].message
    assert ready(report)["reason"] == "LocationNotFound"
    assert report.status["summary"]["held"] == 1  # the CW2 slot, fed by the unknown location


async def test_safety_hold_until_approved() -> None:
    ch = FakeChannel([listing(f"S{i}", 5) for i in range(4)])
    src = FakeSource([stock(f"S{i}", 0) for i in range(4)])
    ports = FakePorts({"tt": ch}, {"wms": src}, SECRETS)
    r = rule(safety={"maxZeroFraction": 0.5, "minListings": 2})
    report = await run(r, world(r), ports)
    assert ch.pushes == [] and report.result == "held"
    hold = report.status["hold"]
    assert hold["zeroing"] == 4 and hold["of"] == 4
    assert report.status["summary"]["held"] == 4 and report.stores["tt"].held == 4
    assert find(report.status["conditions"], "Stalled") is not None
    approved = rule(annotations={APPROVE_HOLD: hold["id"]}, safety={"maxZeroFraction": 0.5, "minListings": 2})
    report = await run(approved, world(approved), ports)
    assert ch.pushed == {f"S{i}": 0 for i in range(4)}
    assert report.status["hold"] is None and find(report.status["conditions"], "Stalled") is None


@pytest.mark.parametrize("spec", [{"push": {"mode": "DryRun"}}, {"suspend": True}])
async def test_dry_run_and_suspend_push_nothing_but_count(spec: dict[str, Any]) -> None:
    ch = FakeChannel([listing("A", 1), listing("B", 2)])
    r = rule(**spec)
    report = await run(
        r, world(r), FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 5), stock("B", 2)])}, SECRETS)
    )
    assert ch.pushes == []
    assert report.status["summary"]["drifted"] == 1 and report.status["summary"]["inSync"] == 1
    assert ready(report)["status"] == "True"


async def test_partial_push_failure_counts_only_the_named_skus() -> None:
    ch = FakeChannel([listing("A", 1), listing("B", 1)], fail_skus={"B"})
    r = rule()
    report = await run(
        r, world(r), FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 5), stock("B", 6)])}, SECRETS)
    )
    s = report.status["summary"]
    assert (s["pushed"], s["failed"], s["drifted"], s["inSync"]) == (1, 1, 1, 1)
    assert report.result == "partial" and ready(report)["reason"] == "PushFailed"
    assert any(e.reason == "PushFailed" and "sku locked" in e.message for e in report.events)


async def test_increase_waits_for_settle_but_decrease_does_not() -> None:
    ch = FakeChannel([listing("UP", 1), listing("DOWN", 9)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("UP", 5), stock("DOWN", 2)])}, SECRETS)
    memory = RuleMemory()
    r = rule(push={"increaseSettle": "1h"})
    report = await run(r, world(r), ports, memory)
    assert ch.pushed == {"DOWN": 2}
    assert report.requeue_after is not None and 3500 < report.requeue_after <= 3600
    assert report.status["summary"]["drifted"] == 1
    # Once the source has shown the value long enough, the increase goes.
    memory.first_seen = {k: (v[0], v[1], v[2] - 3600) for k, v in memory.first_seen.items()}
    await run(r, world(r), ports, memory)
    assert ch.pushed == {"DOWN": 2, "UP": 5}


async def test_webhook_sync_replans_only_the_named_skus() -> None:
    ch = FakeChannel([listing("A", 1), listing("B", 2)])
    src = FakeSource([stock("A", 1), stock("B", 2)])
    ports = FakePorts({"tt": ch}, {"wms": src}, SECRETS)
    memory = RuleMemory()
    r = rule()
    await run(r, world(r), ports, memory)
    assert ch.pushes == []
    src.records = []  # a webhook sync must not re-read the source
    ch.listings[("p-B", "s-B", "CW1")] = msgspec.structs.replace(
        ch.listings[("p-B", "s-B", "CW1")], quantity=50
    )  # hand edit, not re-read either
    report = await run(r, world(r), ports, memory, skus=frozenset({"A"}), webhook_rows=[stock("A", 8)])
    assert ch.pushed == {"A": 8}
    assert report.status["summary"]["pushed"] == 1 and report.status["summary"]["inSync"] == 2


async def test_younger_rule_reports_conflict_and_pushes_nothing_there() -> None:
    older = rule("a-old")
    younger = SyncRule.model_validate(
        {
            **rule("b-young").model_dump(by_alias=True, exclude_none=True),
            "metadata": meta("b-young", creationTimestamp="2026-02-01T00:00:00Z"),
        }
    )
    ch = FakeChannel([listing("A", 0)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 3)])}, SECRETS)
    report = await run(younger, world(younger, rules=[older]), ports)
    assert ch.pushes == []
    conflict = find(report.status["conditions"], "Conflict")
    assert conflict is not None and "owned by SyncRule a-old" in conflict["message"]
    assert report.status["summary"]["conflicted"] == 1


def test_shard_is_stable_and_spreads() -> None:
    owners = [stable_shard("ns", f"rule-{i}", 3) for i in range(300)]
    assert owners == [stable_shard("ns", f"rule-{i}", 3) for i in range(300)]
    assert min(owners.count(k) for k in range(3)) > 70


def test_object_status_is_rewritten_only_on_change_or_when_the_fetch_time_is_stale() -> None:
    obs = ObjectStatus("InventorySource", "wms", [Cond("Ready", "True", "Fetched", "3 records")], {})
    obs.fields = {"items": 3, "lastFetchTime": "2026-01-01T00:00:00Z"}
    first = object_patch(None, obs, 1, NOW)
    assert first is not None and first["items"] == 3
    later = replace(obs, fields={"items": 3, "lastFetchTime": "2026-01-01T00:01:00Z"})
    assert (
        object_patch(first, later, 1, NOW + timedelta(minutes=1), refresh_after=timedelta(minutes=5)) is None
    )
    stale = object_patch(first, later, 1, NOW + timedelta(minutes=6), refresh_after=timedelta(minutes=5))
    assert stale is not None and stale["lastFetchTime"] == "2026-01-01T00:01:00Z"
    changed = replace(obs, fields={"items": 4, "lastFetchTime": "2026-01-01T00:01:00Z"})
    assert object_patch(first, changed, 1, NOW + timedelta(minutes=1), refresh_after=timedelta(minutes=5))


async def test_a_seller_sku_on_two_products_is_pushed_to_both_and_reported_as_oversell_risk() -> None:
    twice = [Listing("tt", "DUP", "p1", "s1", "CW1", 0), Listing("tt", "DUP", "p2", "s2", "CW1", 3)]
    ch = FakeChannel([*twice, listing("ONE", 0)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("DUP", 7), stock("ONE", 2)])}, SECRETS)
    r = rule()
    report = await run(r, world(r), ports)
    assert sorted((pid, u.quantity) for pid, batch in ch.pushes for u in batch) == [
        ("p-ONE", 2),
        ("p1", 7),
        ("p2", 7),
    ]
    assert report.status["summary"]["listings"] == 3 and report.status["summary"]["inSync"] == 3
    risk = find(report.status["conditions"], "OversellRisk")
    assert risk is not None and risk["reason"] == "DuplicateSku" and "DUP" in risk["message"]
    assert ready(report)["status"] == "True"


async def test_two_warehouses_on_one_location_hold_what_they_feed_and_name_both() -> None:
    ch = FakeChannel([listing("A", 5)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 100)])}, SECRETS)
    r = rule(warehouses=[{"name": "jkt"}, {"name": "jkt-copy"}])
    report = await run(r, world(r, whs=[warehouse("jkt", "L1"), warehouse("jkt-copy", "L1")]), ports)
    assert ch.pushes == []  # not 200 for 100 real units
    cond = ready(report)
    assert cond["status"] == "False" and cond["reason"] == "DuplicateLocation"
    assert "jkt, jkt-copy" in cond["message"]
    assert report.status["summary"]["held"] == 1


async def test_a_selector_matching_nothing_makes_the_rule_not_ready_and_names_it() -> None:
    ch = FakeChannel([listing("A", 5)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 100)])}, SECRETS)
    r = rule(stores={"selector": {"matchLabels": {"tier": "typo"}}})
    report = await run(r, world(r), ports)
    cond = ready(report)
    assert cond["status"] == "False" and cond["reason"] == "SelectorMatchesNothing"
    assert "stores.selector matches no Store" in cond["message"]
    assert ch.pushes == []


async def test_a_listing_the_platform_takes_no_update_for_is_never_pushed_and_is_reported() -> None:
    draft = Listing("tt", "D", "p-D", "s-D", "CW1", 3, status="DRAFT", writable=False)
    ch = FakeChannel([draft, listing("A", 0)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("D", 9), stock("A", 4)])}, SECRETS)
    r = rule()
    report = await run(r, world(r), ports)
    assert ch.pushed == {"A": 4}
    assert report.stores["tt"].not_writable == 1 and report.status["summary"]["listings"] == 1
    assert "product status DRAFT: TikTok updates only ACTIVATE products" in ready(report)["message"]
    assert any(e.reason == "NotWritable" for e in report.events)


async def test_webhook_sync_reads_its_skus_live_and_a_channel_changed_behind_its_back_calls_a_reread() -> (
    None
):
    ch = FakeChannel([listing("A", 0), listing("B", 0), listing("C", 0)])
    src = FakeSource([stock("A", 10), stock("B", 20), stock("C", 30)])
    ports = FakePorts({"tt": ch}, {"wms": src}, SECRETS)
    memory = RuleMemory()
    r = rule()
    first = await run(r, world(r), ports, memory)
    assert ch.pushed == {"A": 10, "B": 20, "C": 30}
    assert first.status["lastFullReadTime"] == "2026-01-01T00:00:00Z"
    assert first.status["acknowledgedSinceFullRead"] == 3
    assert (
        ready(first)["message"]
        == "3 of 3 listings in sync (read 2026-01-01T00:00:00Z, 3 pushes acknowledged since)"
    )
    assert not first.live.reread
    # The platform loses the writes (restarted with other data); then a webhook names A only.
    for sku, qty in (("A", 4), ("B", 0), ("C", 0)):
        key = (f"p-{sku}", f"s-{sku}", "CW1")
        ch.listings[key] = msgspec.structs.replace(ch.listings[key], quantity=qty)
    ch.pushes.clear()
    report = await run(r, world(r), ports, memory, skus=frozenset({"A"}), webhook_rows=[stock("A", 10)])
    assert ch.reads[-1] == frozenset({"A"})
    # Planned against the live 4, not the remembered 10: pushed back to 10.
    assert ch.pushed == {"A": 10}
    assert (report.live.read, report.live.changed) == (1, 1) and report.live.reread
    cond = ready(report)
    assert cond["reason"] == "ChannelChanged" and "in sync" not in cond["message"]
    assert find(report.status["conditions"], "Reconciling") is not None
    assert [e.reason for e in report.events if e.type == "Warning"] == ["ChannelChanged"]
    assert report.status["acknowledgedSinceFullRead"] == 4
    # The re-read the worker runs at once finds B and C and converges them.
    later = NOW + timedelta(seconds=5)
    full = await sync_rule(r, world(r), ports, memory, SharedMemory(), now=later)
    assert ch.pushed == {"A": 10, "B": 20, "C": 30}
    assert not full.live.reread and find(full.status["conditions"], "Reconciling") is None
    assert full.status["lastFullReadTime"] == "2026-01-01T00:00:05Z"
    assert (
        ready(full)["message"]
        == "3 of 3 listings in sync (read 2026-01-01T00:00:05Z, 2 pushes acknowledged since)"
    )


async def test_a_webhook_sync_that_matches_what_invsync_remembers_calls_no_reread() -> None:
    ch = FakeChannel([listing("A", 1), listing("B", 2)])
    src = FakeSource([stock("A", 1), stock("B", 2)])
    ports = FakePorts({"tt": ch}, {"wms": src}, SECRETS)
    memory = RuleMemory()
    r = rule()
    await run(r, world(r), ports, memory)
    report = await run(r, world(r), ports, memory, skus=frozenset({"A"}), webhook_rows=[stock("A", 5)])
    assert ch.pushed == {"A": 5}
    assert (report.live.read, report.live.changed, report.live.reread) == (1, 0, False)
    assert (
        ready(report)["message"]
        == "2 of 2 listings in sync (read 2026-01-01T00:00:00Z, 1 push acknowledged since)"
    )


async def test_a_store_unreadable_in_a_webhook_sync_is_not_pushed_to_and_calls_a_reread() -> None:
    ch = FakeChannel([listing("A", 1)])
    src = FakeSource([stock("A", 1)])
    ports = FakePorts({"tt": ch}, {"wms": src}, SECRETS)
    memory = RuleMemory()
    r = rule()
    await run(r, world(r), ports, memory)
    ch.read_error = UnavailableError("HTTP 503 after 5 attempts")
    report = await run(r, world(r), ports, memory, skus=frozenset({"A"}), webhook_rows=[stock("A", 5)])
    assert ch.pushes == [] and report.live.reread
    assert ready(report)["reason"] == "StoreUnavailable"
    assert "live listings of 1 SKUs could not be read" in ready(report)["message"]


async def test_an_unchanged_full_read_keeps_last_full_read_time_for_an_hour() -> None:
    ch = FakeChannel([listing("A", 10)])
    ports = FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 10)])}, SECRETS)
    r = rule()
    first = await run(r, world(r), ports)
    written = {**first.status, "lastSyncTime": "2026-01-01T00:00:00Z"}
    r2 = r.model_copy(update={"status": SyncRuleStatus.model_validate(written)})

    async def full_read_at(minutes: int) -> SyncReport:
        return await sync_rule(
            r2, world(r2), ports, RuleMemory(), SharedMemory(), now=NOW + timedelta(minutes=minutes)
        )

    quiet = await full_read_at(10)
    assert quiet.status["lastFullReadTime"] == "2026-01-01T00:00:00Z"
    assert status_patch(written, quiet.status, NOW + timedelta(minutes=10)) is None
    stale = await full_read_at(61)
    assert stale.status["lastFullReadTime"] == "2026-01-01T01:01:00Z"
    assert "read 2026-01-01T01:01:00Z" in ready(stale)["message"]
    assert status_patch(written, stale.status, NOW + timedelta(minutes=61)) is not None
    src_changed = FakePorts({"tt": ch}, {"wms": FakeSource([stock("A", 3)])}, SECRETS)
    changed = await sync_rule(
        r2, world(r2), src_changed, RuleMemory(), SharedMemory(), now=NOW + timedelta(minutes=10)
    )
    assert changed.status["lastFullReadTime"] == "2026-01-01T00:10:00Z"
    assert changed.status["acknowledgedSinceFullRead"] == 1
