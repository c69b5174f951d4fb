"""Observe: read the sources and channels a rule uses into the engine's world, and the status of
every object read. Failures become Problems naming the object; nothing here decides a quantity."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..api import InventorySource, SyncRule, Warehouse
from ..engine import Selection, World, selection
from ..engine.records import ChannelWarehouse, Listing, Location, StockRecord
from ..providers.base import AuthError, ProviderError, SalesChannel
from .conditions import READY, Cond, rfc3339
from .objects import source_failed, store_status, warehouse_status
from .reasons import Reason
from .secrets import SecretAccessDenied
from .state import (
    LAST_GOOD_READ,
    LiveCheck,
    ObjectStatus,
    Ports,
    Problem,
    ReadState,
    SharedMemory,
    Snapshot,
    listing_key,
)


def rule_selection(rule: SyncRule, snap: Snapshot) -> Selection:
    """What the engine says the rule selects in the snapshot, and what it names that is missing."""
    return selection(rule, list(snap.stores.values()), list(snap.warehouses.values()))


def dependencies(rule: SyncRule, snap: Snapshot) -> set[tuple[str, str]]:
    """(kind, name) of every object whose change must re-trigger this rule, missing ones included."""
    sel = rule_selection(rule, snap)
    stores, whs = sel.stores, sel.warehouses
    deps = {("Store", n) for n in (*stores, *sel.missing_stores)} | {
        ("Warehouse", n) for n in (*whs, *sel.missing_warehouses)
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
        return _SourceRead(
            problem=Problem(Reason.SOURCE_NOT_FOUND, f"InventorySource {name} not found")
        ), None
    secret: Mapping[str, str] | None = None
    ref = src.spec.credentials_secret_ref
    if ref is not None:
        secret_or_problem = await _secret(ports, snap.namespace, ref.name, f"InventorySource {name}")
        if isinstance(secret_or_problem, Problem):
            problem = secret_or_problem
            return _SourceRead(problem=problem), source_failed(src, problem.message, problem.reason)
        secret = secret_or_problem
    locations_wanted = sorted(
        {w.spec.location_id for w in snap.warehouses.values() if w.spec.source_ref.name == name}
    )
    read = _SourceRead()
    known: list[str] = []
    try:
        provider = ports.source(src, secret)
    except ProviderError as exc:
        msg = f"InventorySource {name}: {exc}"
        return _SourceRead(problem=Problem(Reason.INVALID_CREDENTIALS, msg)), source_failed(
            src, msg, Reason.INVALID_CREDENTIALS
        )
    try:
        read.locations = {loc.id: loc for loc in await provider.list_locations()}
        # A generic HTTP source may not list its locations: then every location is taken as known.
        known = [loc for loc in locations_wanted if loc in read.locations or not read.locations]
        read.records = await provider.read_stock(known) if known else []
    except AuthError as exc:
        read.problem = Problem(Reason.AUTH_FAILED, f"InventorySource {name} refused the credentials: {exc}")
    except ProviderError as exc:
        read.problem = Problem(Reason.SOURCE_UNAVAILABLE, f"InventorySource {name} could not be read: {exc}")
    finally:
        await provider.aclose()
    remembered = _last_good_read(src)
    remember: dict[str, str] = {}
    if read.problem is None and known:
        # Per location: one location answering empty would otherwise zero every slot it feeds. What the
        # process has not seen yet (after a restart) comes from the source's LAST_GOOD_READ annotation.
        counts = Counter(r.location for r in read.records)
        emptied = [
            (loc, before)
            for loc in known
            if not counts[loc]
            and (before := shared.source_items.get((snap.namespace, name, loc), remembered.get(loc, 0))) > 0
        ]
        if emptied:
            loc, before = emptied[0]
            read.problem = Problem(
                Reason.SOURCE_UNAVAILABLE,
                f"InventorySource {name} returned no stock where the last read had {before} records "
                f"(location {loc}); nothing is pushed from it until it returns data",
            )
        else:
            for loc in known:
                shared.source_items[(snap.namespace, name, loc)] = counts[loc]
            good = {loc: counts[loc] for loc in known}
            if good != remembered:
                remember[LAST_GOOD_READ] = json.dumps(good, sort_keys=True, separators=(",", ":"))
    if read.problem is not None:
        return read, source_failed(src, read.problem.message, read.problem.reason)
    status = ObjectStatus(
        "InventorySource",
        name,
        [
            Cond(
                READY,
                "True",
                Reason.FETCHED,
                f"{len(read.records)} stock records at {len(read.locations)} locations",
            )
        ],
        {
            "locations": [{"id": x.id, "name": x.name, "active": x.active} for x in read.locations.values()],
            "items": len(read.records),
            "lastFetchTime": rfc3339(now),
        },
        remember,
    )
    return read, status


def _last_good_read(src: InventorySource) -> dict[str, int]:
    """The per-location record counts a previous process wrote; {} when absent or not understood."""
    try:
        value = json.loads(src.metadata.annotations.get(LAST_GOOD_READ, "{}"))
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool)}


@dataclass(slots=True)
class _StoreRead:
    channel: SalesChannel | None = None
    warehouses: list[ChannelWarehouse] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    problem: Problem | None = None


async def _secret(ports: Ports, namespace: str, name: str, owner: str) -> Mapping[str, str] | Problem:
    """A credentials Secret, or the problem that names why it cannot be had: missing, or a namespace
    that did not grant invsync access to it (docs/security.md, "Granting access")."""
    try:
        secret = await ports.read_secret(namespace, name)
    except SecretAccessDenied as exc:
        return Problem(Reason.SECRET_ACCESS_DENIED, f"Secret {name} (credentials of {owner}): {exc}")
    if secret is None:
        return Problem(Reason.SECRET_NOT_FOUND, f"Secret {name} (credentials of {owner}) not found")
    return secret


async def _read_store(snap: Snapshot, name: str, ports: Ports) -> _StoreRead:
    store = snap.stores[name]
    secret_name = store.spec.credentials_secret_ref.name
    secret = await _secret(ports, snap.namespace, secret_name, f"Store {name}")
    if isinstance(secret, Problem):
        return _StoreRead(problem=secret)
    read = _StoreRead()
    try:
        read.channel = ports.channel(store, secret)
    except ProviderError as exc:
        return _StoreRead(problem=Problem(Reason.INVALID_CREDENTIALS, f"Store {name}: {exc}"))
    try:
        read.warehouses = await read.channel.list_warehouses()
        read.listings = await read.channel.list_listings()
    except AuthError as exc:
        read.problem = Problem(
            Reason.AUTH_FAILED,
            f"Store {name}: the platform refused the credentials in Secret {secret_name}: {exc}",
        )
    except ProviderError as exc:
        read.problem = Problem(Reason.STORE_UNAVAILABLE, f"Store {name} could not be read: {exc}")
    except BaseException:  # cancelled, or a bug: the caller never gets the channel to close
        await read.channel.aclose()
        raise
    return read


def _warehouse_problem(wh: Warehouse, read: _SourceRead) -> Problem | None:
    """Why a Warehouse is not Ready after its source was read, if it is not."""
    if read.problem is not None:
        return read.problem
    # A source that lists no locations (a generic HTTP source may not) knows every location.
    loc = read.locations.get(wh.spec.location_id, None if read.locations else Location(""))
    where = f"Warehouse {wh.name}: location {wh.spec.location_id}"
    if loc is None:
        return Problem(
            Reason.LOCATION_NOT_FOUND, f"{where} not found in InventorySource {wh.spec.source_ref.name}"
        )
    if not loc.active:
        return Problem(
            Reason.LOCATION_INACTIVE, f"{where} is inactive in InventorySource {wh.spec.source_ref.name}"
        )
    return None


async def observe_source(
    snap: Snapshot, name: str, ports: Ports, shared: SharedMemory, now: datetime
) -> list[ObjectStatus]:
    """The status of an InventorySource and of every Warehouse in it, for objects no rule reads."""
    read, status = await _read_source(snap, name, ports, shared, now)
    found = [status] if status is not None else []
    return found + [
        warehouse_status(wh, _warehouse_problem(wh, read), read.records)
        for wh in snap.warehouses.values()
        if wh.spec.source_ref.name == name
    ]


async def observe_store(snap: Snapshot, name: str, ports: Ports, shared: SharedMemory) -> list[ObjectStatus]:
    """The status of a Store no rule uses: its credentials, channel warehouses and listings."""
    read = await _read_store(snap, name, ports)
    if read.channel is not None:
        await read.channel.aclose()
    store = snap.stores[name]
    return [store_status(store, read.problem, read.warehouses, shared.refusal(store), len(read.listings))]


async def read_world(
    rule: SyncRule, snap: Snapshot, ports: Ports, shared: SharedMemory, now: datetime
) -> tuple[ReadState, dict[str, SalesChannel]]:
    """Read every source and store the rule uses, concurrently; failures become Problems."""
    problems: list[Problem] = []
    objects: list[ObjectStatus] = []
    sel = rule_selection(rule, snap)
    store_names, wh_names = sel.stores, sel.warehouses
    problems += [Problem(Reason.STORE_NOT_FOUND, f"Store {n} not found") for n in sel.missing_stores]
    problems += [
        Problem(Reason.WAREHOUSE_NOT_FOUND, f"Warehouse {n} not found") for n in sel.missing_warehouses
    ]
    problems += [
        Problem(Reason.SELECTOR_MATCHES_NOTHING, f"SyncRule {rule.name}: {what}")
        for what in sel.empty_selectors
    ]

    source_names = sorted({snap.warehouses[w].spec.source_ref.name for w in wh_names})
    source_reads, store_reads = await asyncio.gather(
        asyncio.gather(*(_read_source(snap, s, ports, shared, now) for s in source_names)),
        asyncio.gather(*(_read_store(snap, s, ports) for s in store_names)),
    )
    sources = dict(zip(source_names, (r for r, _ in source_reads), strict=True))
    objects += [o for _, o in source_reads if o is not None]

    unready: set[str] = set()
    stock: list[StockRecord] = []
    for sread in sources.values():
        if sread.problem is not None:
            problems.append(sread.problem)
        else:
            stock += sread.records
    for wname in wh_names:
        wh = snap.warehouses[wname]
        sread = sources[wh.spec.source_ref.name]
        problem = _warehouse_problem(wh, sread)
        if problem is not None:
            unready.add(wname)
            if problem.reason in (Reason.LOCATION_NOT_FOUND, Reason.LOCATION_INACTIVE):
                problems.append(problem)
        objects.append(warehouse_status(wh, problem, sread.records))
    listings: list[Listing] = []
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
            listings += sread_store.listings
        refused = shared.refusal(snap.stores[name])
        if refused is not None:
            problems.append(Problem(Reason.NOT_WHITELISTED, refused))
        objects.append(
            store_status(
                snap.stores[name],
                sread_store.problem,
                sread_store.warehouses,
                refused,
                len(sread_store.listings),
            )
        )
    state = ReadState.of(
        stock,
        listings,
        unready=frozenset(unready),
        channel_warehouse_status=cw_status,
        problems=problems,
        objects=objects,
        read_stores=frozenset(read_ok),
    )
    return state, channels


async def read_webhook_skus(
    state: ReadState, rows: Sequence[StockRecord], skus: frozenset[str], snap: Snapshot, ports: Ports
) -> tuple[dict[str, SalesChannel], LiveCheck]:
    """A webhook sync: the delivery's rows go into the last full read, and the named SKUs' live slots
    are read from each channel the last full read could read and replace the remembered ones, so the
    plan starts from what the channel shows now. A slot that differs from what invsync remembered (a
    value it neither read nor had acknowledged) is counted: the channel changed behind its back. A
    store whose slots cannot be read is not pushed to (its other warehouses would ride along at
    remembered values)."""
    for rec in rows:
        state.put_stock(rec)
    channels = await _reopen_channels(snap, state, ports)
    names = sorted(channels)
    reads = await asyncio.gather(*(_read_slots(channels[n], skus) for n in names))
    live = LiveCheck()
    for name, read in zip(names, reads, strict=True):
        if isinstance(read, ProviderError):
            await channels.pop(name).aclose()
            live.problems.append(
                Problem(
                    Reason.STORE_UNAVAILABLE,
                    f"Store {name}: the live listings of {len(skus)} SKUs could not be read: {read}",
                )
            )
            continue
        fresh = {listing_key(x): x for x in read if x.sku in skus}
        live.read += len(fresh)
        live.changed += state.replace_slots(name, skus, fresh)
    return channels, live


async def _read_slots(channel: SalesChannel, skus: frozenset[str]) -> list[Listing] | ProviderError:
    try:
        return await channel.list_listings(sorted(skus))
    except ProviderError as exc:
        return exc


async def _reopen_channels(snap: Snapshot, state: ReadState, ports: Ports) -> dict[str, SalesChannel]:
    """Channel clients for the stores the last full read could read."""
    channels: dict[str, SalesChannel] = {}
    for name in sorted(state.read_stores & snap.stores.keys()):
        store = snap.stores[name]
        secret = await _secret(ports, snap.namespace, store.spec.credentials_secret_ref.name, f"Store {name}")
        if not isinstance(secret, Problem):
            with contextlib.suppress(ProviderError):
                channels[name] = ports.channel(store, secret)
    return channels


def engine_world(snap: Snapshot, state: ReadState, skus: Collection[str] | None = None) -> World:
    """What the engine plans on: the namespace's objects and what the last read found (only the slots
    of `skus` when given: a SKU's slots depend on its stock alone, docs/rules.md, which the engine
    looks up by SKU in the read as it is kept)."""
    return World(
        rules=list(snap.rules),
        stores=list(snap.stores.values()),
        warehouses=list(snap.warehouses.values()),
        stock=state.stock,
        listings=state.all_slots() if skus is None else state.slots_of(skus),
        unready_warehouses=state.unready,
        channel_warehouse_status=state.channel_warehouse_status,
    )
