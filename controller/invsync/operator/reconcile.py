"""One sync of one SyncRule, as a plain async function: no Kubernetes, no kopf.

Everything the cluster holds arrives as a `Snapshot` of parsed resources; credentials and
platform clients come through `Ports`, so the whole decision logic runs in unit tests against
fakes and in the operator against the real providers. The result is a `SyncReport`: the rule's
new status, the statuses of the Stores / Warehouses / InventorySources it observed, the Events to
post and the counts the metrics need. The caller writes what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Literal, Protocol

from ..api import InventorySource, Store, SyncRule, Warehouse, parse_duration
from ..engine import PlanRow, ProductBatch, RulePlan, World, compute_plan, push_batches, safety_hold
from ..engine.records import ChannelWarehouse, Listing, Location, StockRecord
from ..providers.base import (
    AuthError,
    InventorySourceProvider,
    MultiWarehouseRefusedError,
    ProviderError,
    PushOutcome,
    SalesChannel,
)
from .conditions import CONFLICT, MULTI_WAREHOUSE, OVERSELL_RISK, READY, STALLED, Cond, merge, rfc3339

REQUESTED_AT = "invsync.dev/requested-at"
APPROVE_HOLD = "invsync.dev/approve-hold"

SlotKey = tuple[str, str, str]  # store, channel warehouse id, seller SKU
Result = Literal["success", "partial", "failure", "held", "dry_run"]
Progress = Callable[[int, int], Awaitable[None]]


class Ports(Protocol):
    """What a sync needs from outside: Secret values and platform clients."""

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        """The Secret's decoded data, or None when it does not exist."""
        ...

    def channel(self, store: Store, secret: Mapping[str, str]) -> SalesChannel: ...

    def source(
        self, source: InventorySource, secret: Mapping[str, str] | None
    ) -> InventorySourceProvider: ...


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The namespace as the operator's indices see it, parsed."""

    namespace: str
    rules: Sequence[SyncRule]
    stores: Mapping[str, Store]
    warehouses: Mapping[str, Warehouse]
    sources: Mapping[str, InventorySource]


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that makes the rule not Ready, with a message naming the missing or broken thing."""

    reason: str
    message: str


@dataclass(slots=True)
class ObjectStatus:
    """The status a sync observed for a Store, Warehouse or InventorySource."""

    kind: Literal["Store", "Warehouse", "InventorySource"]
    name: str
    conditions: list[Cond]
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(slots=True)
class StoreCounts:
    """One store's slots after a sync. `failed` and `held` slots are drifted too; `unmatched` and
    `conflicted` ones are not managed by the rule, so not among its `listings`."""

    listings: int = 0
    in_sync: int = 0
    drifted: int = 0
    pushed: int = 0
    failed: int = 0
    unmatched: int = 0
    held: int = 0
    conflicted: int = 0
    drift_units: int = 0


@dataclass(slots=True)
class ReadState:
    """What the last full read found; a webhook-triggered sync re-plans against it."""

    stock: dict[tuple[str, str, str], StockRecord]
    listings: dict[SlotKey, Listing]
    unready: frozenset[str]
    # Named Warehouses that do not exist: the engine cannot see which slots they would feed, so the
    # slots a Store maps to them are held here (unready ones are held by the engine itself).
    missing: frozenset[str]
    channel_warehouse_status: dict[tuple[str, str], str]
    problems: list[Problem]
    objects: list[ObjectStatus]
    read_stores: frozenset[str]


@dataclass(slots=True)
class RuleMemory:
    """Per-rule state kept in memory between syncs (lost on restart, which only costs a full read)."""

    last_read: ReadState | None = None
    first_seen: dict[SlotKey, tuple[int, float]] = field(default_factory=dict)
    arrivals: dict[str, float] = field(default_factory=dict)  # SKU -> monotonic webhook arrival


@dataclass(slots=True)
class SharedMemory:
    """State shared by every rule of the operator process."""

    # (ns, source, location) -> records there in the last good read, to refuse a sudden empty one.
    source_items: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # (ns, store) -> (the Store's generation, message): kept until the Store's spec changes.
    refused_multi_warehouse: dict[tuple[str, str], tuple[int | None, str]] = field(default_factory=dict)

    def refusal(self, store: Store) -> str | None:
        """Why the platform refused the Store's per-warehouse writes, unless its spec changed since."""
        seen = self.refused_multi_warehouse.get((store.namespace, store.name))
        return seen[1] if seen is not None and seen[0] == store.metadata.generation else None


@dataclass(slots=True)
class SyncReport:
    status: dict[str, Any]
    objects: list[ObjectStatus]
    events: list[Event]
    result: Result
    stores: dict[str, StoreCounts]
    allocation: Mapping[str, Fraction]
    change_to_push: list[float]
    requeue_after: float | None  # seconds until a settling increase becomes due


# --------------------------------------------------------------------------- selection


def selected_stores(rule: SyncRule, stores: Mapping[str, Store]) -> tuple[list[str], list[str]]:
    """(existing store names the rule selects, named stores that do not exist)."""
    sel = rule.spec.stores
    names = list(dict.fromkeys(sel.names))
    if sel.selector is not None:
        names += [n for n, s in sorted(stores.items()) if sel.selector.matches(s.metadata.labels)]
    names = list(dict.fromkeys(names))
    return [n for n in names if n in stores], [n for n in names if n not in stores]


def selected_warehouses(rule: SyncRule, warehouses: Mapping[str, Warehouse]) -> tuple[list[str], list[str]]:
    """(existing warehouse names the rule selects, named warehouses that do not exist)."""
    found: list[str] = []
    missing: list[str] = []
    for entry in rule.spec.warehouses:
        if entry.name is not None:
            (found if entry.name in warehouses else missing).append(entry.name)
        elif entry.selector is not None:
            found += [n for n, w in sorted(warehouses.items()) if entry.selector.matches(w.metadata.labels)]
    return list(dict.fromkeys(found)), list(dict.fromkeys(missing))


def feeders(store: Store, channel_warehouse_id: str, rule_warehouses: Collection[str]) -> set[str]:
    """Warehouse names (existing or not) whose data decides this channel slot's quantity."""
    if not store.spec.warehouses:
        return set(rule_warehouses)
    for mapping in store.spec.warehouses:
        if mapping.channel_warehouse_id == channel_warehouse_id:
            return set(mapping.warehouse_refs) & set(rule_warehouses)
    return set()


def dependencies(rule: SyncRule, snap: Snapshot) -> set[tuple[str, str]]:
    """(kind, name) of every object whose change must re-trigger this rule, missing ones included."""
    stores, missing_stores = selected_stores(rule, snap.stores)
    whs, missing_whs = selected_warehouses(rule, snap.warehouses)
    deps = {("Store", n) for n in (*stores, *missing_stores)} | {
        ("Warehouse", n) for n in (*whs, *missing_whs)
    }
    for name in stores:
        deps.add(("Secret", snap.stores[name].spec.credentials_secret_ref.name))
        deps |= {("Warehouse", ref) for m in snap.stores[name].spec.warehouses for ref in m.warehouse_refs}
    for name in whs:
        src_name = snap.warehouses[name].spec.source_ref.name
        deps.add(("InventorySource", src_name))
        src = snap.sources.get(src_name)
        if src is not None and src.spec.credentials_secret_ref is not None:
            deps.add(("Secret", src.spec.credentials_secret_ref.name))
    return deps


# --------------------------------------------------------------------------- reading


@dataclass(slots=True)
class _SourceRead:
    records: list[StockRecord] = field(default_factory=list)
    locations: dict[str, Location] = field(default_factory=dict)
    problem: Problem | None = None


async def _read_source(
    snap: Snapshot, name: str, ports: Ports, shared: SharedMemory, now: datetime
) -> tuple[_SourceRead, ObjectStatus | None]:
    src = snap.sources.get(name)
    if src is None:
        return _SourceRead(problem=Problem("SourceNotFound", f"InventorySource {name} not found")), None
    secret: Mapping[str, str] | None = None
    ref = src.spec.credentials_secret_ref
    if ref is not None:
        secret = await ports.read_secret(snap.namespace, ref.name)
        if secret is None:
            msg = f"Secret {ref.name} (credentials of InventorySource {name}) not found"
            return _SourceRead(problem=Problem("SecretNotFound", msg)), _source_status(
                src, msg, "SecretNotFound"
            )
    locations_wanted = sorted(
        {w.spec.location_id for w in snap.warehouses.values() if w.spec.source_ref.name == name}
    )
    read = _SourceRead()
    known: list[str] = []
    try:
        provider = ports.source(src, secret)
    except ProviderError as exc:
        msg = f"InventorySource {name}: {exc}"
        return _SourceRead(problem=Problem("InvalidCredentials", msg)), _source_status(
            src, msg, "InvalidCredentials"
        )
    try:
        read.locations = {loc.id: loc for loc in await provider.list_locations()}
        # A generic HTTP source may not list its locations: then every location is taken as known.
        known = [loc for loc in locations_wanted if loc in read.locations or not read.locations]
        read.records = await provider.read_stock(known) if known else []
    except AuthError as exc:
        read.problem = Problem("AuthFailed", f"InventorySource {name} refused the credentials: {exc}")
    except ProviderError as exc:
        read.problem = Problem("SourceUnavailable", f"InventorySource {name} could not be read: {exc}")
    finally:
        await provider.aclose()
    if read.problem is None and known:
        # Per location: one location answering empty would otherwise zero every slot it feeds.
        counts = Counter(r.location for r in read.records)
        emptied = [
            (loc, before)
            for loc in known
            if not counts[loc] and (before := shared.source_items.get((snap.namespace, name, loc), 0)) > 0
        ]
        if emptied:
            loc, before = emptied[0]
            read.problem = Problem(
                "SourceUnavailable",
                f"InventorySource {name} returned no stock where the last read had {before} records "
                f"(location {loc}); nothing is pushed from it until it returns data",
            )
        else:
            for loc in known:
                shared.source_items[(snap.namespace, name, loc)] = counts[loc]
    if read.problem is not None:
        return read, _source_status(src, read.problem.message, read.problem.reason)
    status = ObjectStatus(
        "InventorySource",
        name,
        [
            Cond(
                READY,
                "True",
                "Fetched",
                f"{len(read.records)} stock records at {len(read.locations)} locations",
            )
        ],
        {
            "locations": [{"id": x.id, "name": x.name, "active": x.active} for x in read.locations.values()],
            "items": len(read.records),
            "lastFetchTime": rfc3339(now),
        },
    )
    return read, status


def _source_status(src: InventorySource, message: str, reason: str) -> ObjectStatus:
    return ObjectStatus("InventorySource", src.name, [Cond(READY, "False", reason, message)], {})


@dataclass(slots=True)
class _StoreRead:
    channel: SalesChannel | None = None
    warehouses: list[ChannelWarehouse] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    problem: Problem | None = None


async def _read_store(snap: Snapshot, name: str, ports: Ports) -> _StoreRead:
    store = snap.stores[name]
    secret_name = store.spec.credentials_secret_ref.name
    secret = await ports.read_secret(snap.namespace, secret_name)
    if secret is None:
        msg = f"Secret {secret_name} (credentials of Store {name}) not found"
        return _StoreRead(problem=Problem("SecretNotFound", msg))
    read = _StoreRead()
    try:
        read.channel = ports.channel(store, secret)
    except ProviderError as exc:
        return _StoreRead(problem=Problem("InvalidCredentials", f"Store {name}: {exc}"))
    try:
        read.warehouses = await read.channel.list_warehouses()
        read.listings = await read.channel.list_listings()
    except AuthError as exc:
        read.problem = Problem(
            "AuthFailed", f"Store {name}: the platform refused the credentials in Secret {secret_name}: {exc}"
        )
    except ProviderError as exc:
        read.problem = Problem("StoreUnavailable", f"Store {name} could not be read: {exc}")
    return read


def _with_refusal(obs: ObjectStatus, message: str) -> ObjectStatus:
    conds = [
        Cond(READY, "False", "NotWhitelisted", message),
        Cond(MULTI_WAREHOUSE, "False", "NotWhitelisted", message),
    ]
    return replace(obs, conditions=conds)


def _store_status(store: Store, read: _StoreRead, refused: str | None, listings: int) -> ObjectStatus:
    multi = (
        Cond(MULTI_WAREHOUSE, "False", "NotWhitelisted", refused)
        if refused is not None
        else Cond(MULTI_WAREHOUSE, "True", "Enabled", "per-warehouse quantities are pushed")
        if store.spec.multi_warehouse
        else Cond(MULTI_WAREHOUSE, "False", "Disabled", "multiWarehouse is false: one quantity per listing")
    )
    if read.problem is not None:
        return ObjectStatus(
            "Store", store.name, [Cond(READY, "False", read.problem.reason, read.problem.message), multi], {}
        )
    ready = (
        Cond(READY, "False", "NotWhitelisted", refused)
        if refused is not None
        else Cond(
            READY, "True", "Connected", f"{listings} listings in {len(read.warehouses)} channel warehouses"
        )
    )
    cws = [
        {"id": w.id, "name": w.name, "type": w.type, "effectStatus": w.effect_status} for w in read.warehouses
    ]
    return ObjectStatus("Store", store.name, [ready, multi], {"channelWarehouses": cws, "listings": listings})


def _warehouse_status(wh: Warehouse, problem: Problem | None, records: Iterable[StockRecord]) -> ObjectStatus:
    if problem is not None:
        return ObjectStatus("Warehouse", wh.name, [Cond(READY, "False", problem.reason, problem.message)], {})
    mine = [r for r in records if r.location == wh.spec.location_id and r.enabled]
    return ObjectStatus(
        "Warehouse",
        wh.name,
        [Cond(READY, "True", "Available", f"{len(mine)} SKUs at location {wh.spec.location_id}")],
        {"skus": len({r.sku for r in mine}), "available": sum(max(r.available, 0) for r in mine)},
    )


def _warehouse_problem(wh: Warehouse, read: _SourceRead) -> Problem | None:
    """Why a Warehouse is not Ready after its source was read, if it is not."""
    if read.problem is not None:
        return read.problem
    # A source that lists no locations (a generic HTTP source may not) knows every location.
    loc = read.locations.get(wh.spec.location_id, None if read.locations else Location(""))
    where = f"Warehouse {wh.name}: location {wh.spec.location_id}"
    if loc is None:
        return Problem("LocationNotFound", f"{where} not found in InventorySource {wh.spec.source_ref.name}")
    if not loc.active:
        return Problem(
            "LocationInactive", f"{where} is inactive in InventorySource {wh.spec.source_ref.name}"
        )
    return None


async def observe_source(
    snap: Snapshot, name: str, ports: Ports, shared: SharedMemory, now: datetime
) -> list[ObjectStatus]:
    """The status of an InventorySource and of every Warehouse in it, for objects no rule reads."""
    read, status = await _read_source(snap, name, ports, shared, now)
    found = [status] if status is not None else []
    return found + [
        _warehouse_status(wh, _warehouse_problem(wh, read), read.records)
        for wh in snap.warehouses.values()
        if wh.spec.source_ref.name == name
    ]


async def observe_store(snap: Snapshot, name: str, ports: Ports, shared: SharedMemory) -> list[ObjectStatus]:
    """The status of a Store no rule uses: its credentials, channel warehouses and listings."""
    read = await _read_store(snap, name, ports)
    if read.channel is not None:
        await read.channel.aclose()
    store = snap.stores[name]
    return [_store_status(store, read, shared.refusal(store), len(read.listings))]


async def read_world(
    rule: SyncRule, snap: Snapshot, ports: Ports, shared: SharedMemory, now: datetime
) -> tuple[ReadState, dict[str, SalesChannel]]:
    """Read every source and store the rule uses, concurrently; failures become Problems."""
    problems: list[Problem] = []
    objects: list[ObjectStatus] = []
    store_names, missing_stores = selected_stores(rule, snap.stores)
    wh_names, missing_whs = selected_warehouses(rule, snap.warehouses)
    problems += [Problem("StoreNotFound", f"Store {n} not found") for n in missing_stores]
    problems += [Problem("WarehouseNotFound", f"Warehouse {n} not found") for n in missing_whs]

    source_names = sorted({snap.warehouses[w].spec.source_ref.name for w in wh_names})
    source_reads, store_reads = await asyncio.gather(
        asyncio.gather(*(_read_source(snap, s, ports, shared, now) for s in source_names)),
        asyncio.gather(*(_read_store(snap, s, ports) for s in store_names)),
    )
    sources = dict(zip(source_names, (r for r, _ in source_reads), strict=True))
    objects += [o for _, o in source_reads if o is not None]

    unready: set[str] = set()
    stock: dict[tuple[str, str, str], StockRecord] = {}
    for sread in sources.values():
        if sread.problem is not None:
            problems.append(sread.problem)
        else:
            stock.update({(r.source, r.location, r.sku): r for r in sread.records})
    for wname in wh_names:
        wh = snap.warehouses[wname]
        sread = sources[wh.spec.source_ref.name]
        problem = _warehouse_problem(wh, sread)
        if problem is not None:
            unready.add(wname)
            if problem.reason in ("LocationNotFound", "LocationInactive"):
                problems.append(problem)
        objects.append(_warehouse_status(wh, problem, sread.records))
    listings: dict[SlotKey, Listing] = {}
    cw_status: dict[tuple[str, str], str] = {}
    channels: dict[str, SalesChannel] = {}
    read_ok: set[str] = set()
    for name, sread_store in zip(store_names, store_reads, strict=True):
        if sread_store.channel is not None:
            channels[name] = sread_store.channel
        if sread_store.problem is not None:
            problems.append(sread_store.problem)
        else:
            read_ok.add(name)
            cw_status.update({(name, w.id): w.effect_status for w in sread_store.warehouses})
            listings.update({(x.store, x.channel_warehouse_id, x.sku): x for x in sread_store.listings})
        refused = shared.refusal(snap.stores[name])
        if refused is not None:
            problems.append(Problem("NotWhitelisted", refused))
        objects.append(_store_status(snap.stores[name], sread_store, refused, len(sread_store.listings)))
    state = ReadState(
        stock=stock,
        listings=listings,
        unready=frozenset(unready),
        missing=frozenset(missing_whs),
        channel_warehouse_status=cw_status,
        problems=problems,
        objects=objects,
        read_stores=frozenset(read_ok),
    )
    return state, channels


# --------------------------------------------------------------------------- pushing


async def push_rows(
    rows: Sequence[PlanRow],
    order: str,
    channels: Mapping[str, SalesChannel],
    progress: Progress,
    *,
    listings: Iterable[Listing],
    concurrency: Mapping[str, int],
    progress_every: float = 1.0,
) -> tuple[dict[SlotKey, PushOutcome], dict[str, str]]:
    """Push in the plan's priority order, each store's products through a few workers (the
    provider's transport enforces the store's rate limit, so enough requests are in flight to use
    it). Returns per-slot outcomes and, per store whose platform refused per-warehouse writes, the
    refusal message."""
    queues: dict[str, deque[ProductBatch]] = {store: deque() for store in channels}
    total = 0
    for batch in push_batches(rows, order, listings=listings):
        if batch.store in queues:
            queues[batch.store].append(batch)
            total += sum(not u.carried for u in batch.updates)
    outcomes: dict[SlotKey, PushOutcome] = {}
    refused: dict[str, str] = {}
    done = 0
    last_report = time.monotonic()

    async def worker(store: str) -> None:
        nonlocal done, last_report
        queue = queues[store]
        while queue:
            batch = queue.popleft()
            try:
                results = await channels[store].push(batch.product_id, batch.updates)
            except MultiWarehouseRefusedError as exc:
                refused[store] = str(exc)
                results = [PushOutcome(u, False, str(exc)) for u in batch.updates]
            except ProviderError as exc:
                results = [PushOutcome(u, False, str(exc)) for u in batch.updates]
            planned = [out for out in results if not out.update.carried]
            for out in planned:
                outcomes[(store, out.update.channel_warehouse_id, out.update.sku)] = out
            done += len(planned)
            if time.monotonic() - last_report >= progress_every and done < total:
                last_report = time.monotonic()
                await progress(done, total)

    await asyncio.gather(
        *(
            worker(store)
            for store, queue in queues.items()
            for _ in range(min(concurrency.get(store, 1), len(queue)))
        )
    )
    return outcomes, refused


def push_concurrency(store: Store) -> int:
    """Requests in flight per store: about half a second of its rate limit, so the limit (not the
    round trip) decides the pace; at least the burst, within [2, 64]."""
    limit = store.spec.rate_limit
    return max(2, min(64, max(limit.burst, math.ceil(limit.requests_per_second / 2))))


# --------------------------------------------------------------------------- the sync


def _slot(row: PlanRow) -> SlotKey:
    return (row.store, row.channel_warehouse_id, row.sku)


def hold_is_approved(rule: SyncRule, hold_id: str) -> bool:
    return rule.metadata.annotations.get(APPROVE_HOLD) == hold_id


def _tainted(row: PlanRow, snap: Snapshot, rule_whs: Collection[str], missing: Collection[str]) -> bool:
    store = snap.stores.get(row.store)
    return store is not None and bool(feeders(store, row.channel_warehouse_id, rule_whs) & set(missing))


async def sync_rule(
    rule: SyncRule,
    snap: Snapshot,
    ports: Ports,
    memory: RuleMemory,
    shared: SharedMemory,
    *,
    now: datetime,
    skus: frozenset[str] | None = None,
    webhook_rows: Sequence[StockRecord] = (),
    progress: Progress | None = None,
) -> SyncReport:
    """Run one sync. `skus` (from a webhook) re-plans only those SKUs against the last full read,
    with `webhook_rows` applied; without a previous read it falls back to a full sync."""

    async def no_progress(done: int, total: int) -> None:
        return None

    report_progress = progress or no_progress
    partial = skus is not None and memory.last_read is not None
    channels: dict[str, SalesChannel] = {}
    try:
        if partial and memory.last_read is not None:
            state = memory.last_read
            for rec in webhook_rows:
                state.stock[(rec.source, rec.location, rec.sku)] = rec
            for name in sorted(state.read_stores & snap.stores.keys()):
                store = snap.stores[name]
                secret = await ports.read_secret(snap.namespace, store.spec.credentials_secret_ref.name)
                if secret is not None:
                    with contextlib.suppress(ProviderError):
                        channels[name] = ports.channel(store, secret)
        else:
            state, channels = await read_world(rule, snap, ports, shared, now)
            memory.last_read = state
        return await _plan_and_push(
            rule,
            snap,
            state,
            channels,
            memory,
            shared,
            now=now,
            skus=skus if partial else None,
            progress=report_progress,
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in channels.values()), return_exceptions=True)


async def _plan_and_push(
    rule: SyncRule,
    snap: Snapshot,
    state: ReadState,
    channels: Mapping[str, SalesChannel],
    memory: RuleMemory,
    shared: SharedMemory,
    *,
    now: datetime,
    skus: frozenset[str] | None,
    progress: Progress,
) -> SyncReport:
    spec = rule.spec
    rule_whs, missing_whs = selected_warehouses(rule, snap.warehouses)
    feeding = set(rule_whs) | set(missing_whs)
    world = World(
        rules=list(snap.rules),
        stores=list(snap.stores.values()),
        warehouses=list(snap.warehouses.values()),
        stock=list(state.stock.values()),
        listings=list(state.listings.values()),
        unready_warehouses=state.unready,
        channel_warehouse_status=state.channel_warehouse_status,
    )
    plan = compute_plan(world, skus=skus)
    rplan = plan.rules[rule.name]
    problems = list(state.problems)
    events: list[Event] = []

    rows = list(rplan.rows)
    # Slots a missing Warehouse would feed: the engine cannot know them, so they are held here.
    tainted = {_slot(r) for r in rows if _tainted(r, snap, feeding, state.missing)}
    candidates = [r for r in rows if _slot(r) not in tainted and r.live != r.desired]

    due, settling_for = _settle(
        candidates, memory, skus, parse_duration(spec.push.increase_settle).total_seconds()
    )

    hold = safety_hold([r for r in rows if _slot(r) not in tainted], spec.safety)
    held_rows: list[PlanRow] = []
    if hold is not None and not hold_is_approved(rule, hold.id):
        held_rows, due = due, []
        events.append(
            Event(
                "Warning",
                "SafetyHold",
                f"plan held: it would set {hold.zeroing} of {hold.of} listings with stock to zero; "
                f"set annotation {APPROVE_HOLD}={hold.id} to release it",
            )
        )
    else:
        hold = None
    pushing = spec.push.mode == "Enforce" and not spec.suspend
    outcomes: dict[SlotKey, PushOutcome] = {}
    if pushing and due:
        concurrency = {name: push_concurrency(snap.stores[name]) for name in channels if name in snap.stores}
        outcomes, refused = await push_rows(
            due,
            spec.push.order,
            channels,
            progress,
            listings=state.listings.values(),
            concurrency=concurrency,
        )
        for name in refused:
            msg = (
                f"Store {name}: TikTok refused a per-warehouse inventory update: the shop is not whitelisted "
                "for multi-warehouse inventory; ask the TikTok account manager to enable it, or set "
                "multiWarehouse: false"
            )
            generation = snap.stores[name].metadata.generation
            shared.refused_multi_warehouse[(snap.namespace, name)] = (generation, msg)
            problems.append(Problem("NotWhitelisted", msg))
            for i, obs in enumerate(state.objects):
                if obs.kind == "Store" and obs.name == name:
                    state.objects[i] = _with_refusal(obs, msg)
    acked = time.monotonic()
    # Remember what the channel acknowledged as its new live value.
    for key, outcome in outcomes.items():
        if outcome.ok and key in state.listings:
            state.listings[key] = replace(state.listings[key], quantity=outcome.update.quantity)

    # Counts cover every slot of the rule: on a webhook sync, the full plan over the remembered read.
    if skus is None:
        full_plan, full_rows = rplan, rows
    else:
        full_plan = compute_plan(replace(world, listings=list(state.listings.values()))).rules[rule.name]
        full_rows = list(full_plan.rows)
        tainted |= {_slot(r) for r in full_rows if _tainted(r, snap, feeding, state.missing)}
    counts = _count(rule, snap, full_plan, full_rows, tainted, {_slot(r) for r in held_rows}, outcomes)

    for store_name, c in counts.items():
        if c.failed:
            first = next(o.message for k, o in outcomes.items() if k[0] == store_name and not o.ok)
            events.append(
                Event(
                    "Warning",
                    "PushFailed",
                    f"{c.failed} of {c.failed + c.pushed} updates to Store {store_name} failed: {first}",
                )
            )
    changed = [o for o in outcomes.values() if o.ok]
    if changed:
        events.append(Event("Normal", "Pushed", f"set {len(changed)} listing quantities"))
    change_to_push = [
        acked - arrived for o in changed if (arrived := memory.arrivals.pop(o.update.sku, None)) is not None
    ]

    events += [
        Event(
            "Warning", "Conflict", f"{c.count} SKUs on Store {c.store} are owned by older SyncRule {c.owner}"
        )
        for c in full_plan.conflicts
    ]
    not_pushed = sum(full_plan.held.values()) + len(tainted)
    if not_pushed and problems:
        problems.append(
            Problem(
                problems[0].reason,
                f"{not_pushed} listings not pushed because the data feeding them is unavailable",
            )
        )
    events += [Event("Warning", p.reason, p.message) for p in problems]

    conds = _rule_conditions(
        rule, problems, counts, full_plan.conflicts, full_plan.oversell_risk, hold, pushing
    )
    result: Result
    if hold is not None:
        result = "held"
    elif spec.push.mode == "DryRun":
        result = "dry_run"
    elif problems and not any(c.pushed or c.in_sync for c in counts.values()):
        result = "failure"
    elif problems or any(c.failed for c in counts.values()):
        result = "partial"
    else:
        result = "success"

    status = _rule_status(rule, conds, counts, hold, now)
    return SyncReport(
        status=status,
        objects=state.objects,
        events=events,
        result=result,
        stores=counts,
        allocation=plan.allocation,
        change_to_push=change_to_push,
        requeue_after=settling_for,
    )


def _settle(
    candidates: Sequence[PlanRow], memory: RuleMemory, skus: frozenset[str] | None, settle: float
) -> tuple[list[PlanRow], float | None]:
    """Split differing rows into those due now and the increases still settling (push.increaseSettle):
    an increase waits until the source has shown the same value for `settle` seconds."""
    mono = time.monotonic()
    due: list[PlanRow] = []
    requeue: float | None = None
    seen: dict[SlotKey, tuple[int, float]] = {}
    for row in candidates:
        key = _slot(row)
        if settle > 0 and row.desired > row.live:
            first = memory.first_seen.get(key)
            if first is None or first[0] != row.desired:
                first = (row.desired, mono)
            seen[key] = first
            left = settle - (mono - first[1])
            if left > 0:
                requeue = left if requeue is None else min(requeue, left)
                continue
        due.append(row)
    if skus is None:
        memory.first_seen = seen
    else:
        memory.first_seen = {k: v for k, v in memory.first_seen.items() if k[2] not in skus} | seen
    return due, requeue


def _count(
    rule: SyncRule,
    snap: Snapshot,
    plan: RulePlan,
    rows: Sequence[PlanRow],
    tainted: Collection[SlotKey],
    held: Collection[SlotKey],
    outcomes: Mapping[SlotKey, PushOutcome],
) -> dict[str, StoreCounts]:
    """Per-store counts after the sync: `drifted` is what still differs once the pushes are done."""
    counts = {s: StoreCounts() for s in selected_stores(rule, snap.stores)[0]}
    # what the rule leaves alone comes straight from the plan (plan.counts() would walk every row again)
    for store, n in plan.unmatched.items():
        counts.setdefault(store, StoreCounts()).unmatched = n
    for store, n in plan.held.items():
        counts.setdefault(store, StoreCounts()).held = n
    for conflict in plan.conflicts:
        counts.setdefault(conflict.store, StoreCounts()).conflicted += conflict.count
    for row in rows:
        key = _slot(row)
        c = counts.setdefault(row.store, StoreCounts())
        c.listings += 1
        if key in tainted:
            c.held += 1
            continue
        c.held += key in held
        outcome = outcomes.get(key)
        live = row.live
        if outcome is not None:
            if outcome.ok:
                c.pushed += 1
                live = outcome.update.quantity
            else:
                c.failed += 1
        if live == row.desired:
            c.in_sync += 1
        else:
            c.drifted += 1
            c.drift_units += abs(row.desired - live)
    return counts


def _rule_conditions(
    rule: SyncRule,
    problems: Sequence[Problem],
    counts: Mapping[str, StoreCounts],
    conflicts: Sequence[Any],
    oversell: Mapping[str, Fraction],
    hold: Any,
    pushing: bool,
) -> list[Cond]:
    listings = sum(c.listings for c in counts.values())
    in_sync = sum(c.in_sync for c in counts.values())
    drifted = sum(c.drifted for c in counts.values())
    failed = sum(c.failed for c in counts.values())
    if hold is not None:
        ready = Cond(
            READY, "False", "SafetyHold", f"plan held: would zero {hold.zeroing} of {hold.of} listings"
        )
    elif problems:
        ready = Cond(
            READY, "False", problems[0].reason, "; ".join(dict.fromkeys(p.message for p in problems))
        )
    elif failed:
        ready = Cond(READY, "False", "PushFailed", f"{failed} of {listings} listings failed to push")
    elif rule.spec.suspend:
        ready = Cond(READY, "True", "Suspended", f"suspended: {drifted} of {listings} listings differ")
    elif not pushing:
        ready = Cond(READY, "True", "DryRun", f"dry run: {drifted} of {listings} listings would change")
    else:
        ready = Cond(READY, "True", "Synced", f"{in_sync} of {listings} listings in sync")
    conds = [ready]
    if hold is not None:
        conds.append(Cond(STALLED, "True", "SafetyHold", f"approve with annotation {APPROVE_HOLD}={hold.id}"))
    if conflicts:
        text = ", ".join(f"{c.count} on Store {c.store} owned by SyncRule {c.owner}" for c in conflicts)
        conds.append(Cond(CONFLICT, "True", "OwnedByOlderRule", f"SKUs claimed by older rules: {text}"))
    if oversell:
        text = ", ".join(f"{w} at {float(r):.2f}" for w, r in sorted(oversell.items()))
        conds.append(
            Cond(OVERSELL_RISK, "True", "PoolOverAllocated", f"warehouses allocated above 100%: {text}")
        )
    return conds


def _rule_status(
    rule: SyncRule, conds: Sequence[Cond], counts: Mapping[str, StoreCounts], hold: Any, now: datetime
) -> dict[str, Any]:
    old = rule.status.model_dump(by_alias=True, exclude_none=True) if rule.status is not None else {}
    total = StoreCounts(
        *(sum(getattr(c, f) for c in counts.values()) for f in StoreCounts.__dataclass_fields__)
    )
    status: dict[str, Any] = {
        "observedGeneration": rule.metadata.generation,
        "conditions": merge(old.get("conditions"), conds, generation=rule.metadata.generation, now=now),
        "summary": {
            "listings": total.listings,
            "inSync": total.in_sync,
            "drifted": total.drifted,
            "pushed": total.pushed,
            "failed": total.failed,
            "unmatched": total.unmatched,
            "held": total.held,
            "conflicted": total.conflicted,
        },
        "stores": [
            {
                "name": name,
                "listings": c.listings,
                "inSync": c.in_sync,
                "drifted": c.drifted,
                "pushed": c.pushed,
                "failed": c.failed,
            }
            for name, c in sorted(counts.items())
        ],
        "hold": {"id": hold.id, "zeroing": hold.zeroing, "of": hold.of} if hold is not None else None,
    }
    requested = rule.metadata.annotations.get(REQUESTED_AT)
    if requested is not None:
        status["lastHandledRequestedAt"] = requested
    if old.get("lastSyncTime"):
        status["lastSyncTime"] = old["lastSyncTime"]
    return status


def status_patch(
    old: Mapping[str, Any] | None, new: Mapping[str, Any], now: datetime
) -> dict[str, Any] | None:
    """The merge patch that turns `old` into `new`, or None when nothing in it changed.

    lastSyncTime moves only with a real change, so an unchanged world writes nothing.
    """
    old = dict(old or {})
    comparable_new = {k: v for k, v in new.items() if k != "lastSyncTime" and v is not None}
    comparable_old = {
        k: v for k, v in old.items() if k in _RULE_STATUS_FIELDS and k != "lastSyncTime" and v is not None
    }
    if comparable_new == comparable_old:
        return None
    patch = dict(new)
    patch["lastSyncTime"] = rfc3339(now)
    return patch


_RULE_STATUS_FIELDS = frozenset(
    {
        "observedGeneration",
        "conditions",
        "lastSyncTime",
        "lastHandledRequestedAt",
        "summary",
        "stores",
        "hold",
    }
)


def object_patch(
    old: Mapping[str, Any] | None,
    obs: ObjectStatus,
    generation: int | None,
    now: datetime,
    *,
    refresh_after: timedelta | None = None,
) -> dict[str, Any] | None:
    """Status patch for a Store / Warehouse / InventorySource, or None when nothing changed.

    lastFetchTime alone does not justify a write unless it is older than `refresh_after`.
    """
    old = dict(old or {})
    new: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge(old.get("conditions"), obs.conditions, generation=generation, now=now),
        **obs.fields,
    }
    volatile = {"lastFetchTime"}
    same = all(old.get(k) == v for k, v in new.items() if k not in volatile)
    if same and "lastFetchTime" not in new:
        return None
    if same:
        stamp = old.get("lastFetchTime")
        if stamp is not None:
            age = now - datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            if refresh_after is None or age < refresh_after:
                return None
    return new


def stable_shard(namespace: str, name: str, shards: int) -> int:
    """The shard a rule belongs to: the same in every process and every restart."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


@dataclass(frozen=True, slots=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`I/N`, 0 <= I < N."""
        try:
            i, n = (int(x) for x in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard {text!r}: expected I/N, e.g. 0/3") from None
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {text!r}: need N >= 1 and 0 <= I < N")
        return cls(i, n)

    def owns(self, namespace: str, name: str) -> bool:
        return stable_shard(namespace, name, self.count) == self.index
