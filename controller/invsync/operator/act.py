"""Act: push a plan's changed slots within the platform's batching and the store's rate limit."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..api import Store, SyncRule
from ..engine import PlanRow, ProductBatch, push_batches
from ..engine.records import Listing
from ..providers.base import MultiWarehouseRefusedError, ProviderError, PushOutcome, SalesChannel
from .objects import with_refusal
from .reasons import Reason
from .state import Problem, Progress, ReadState, RuleMemory, SharedMemory, SlotKey, Snapshot, slot_key


@dataclass(slots=True)
class Pushed:
    """What the act step did: per-slot outcomes, refusals that make the rule not Ready, when acked."""

    outcomes: dict[SlotKey, PushOutcome] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    acked: float = 0.0


async def push(
    rule: SyncRule,
    snap: Snapshot,
    state: ReadState,
    due: Sequence[PlanRow],
    channels: Mapping[str, SalesChannel],
    shared: SharedMemory,
    progress: Progress,
    listings: Iterable[Listing],
) -> Pushed:
    """Push the due rows (nothing in DryRun or while suspended); remember what the channel acked.
    `listings`: the planned slots, where each changed SKU's other warehouses are found."""
    spec = rule.spec
    pushed = Pushed()
    if spec.push.mode == "Enforce" and not spec.suspend and due:
        concurrency = {name: push_concurrency(snap.stores[name]) for name in channels if name in snap.stores}
        pushed.outcomes, refused = await push_rows(
            due,
            spec.push.order,
            channels,
            progress,
            listings=listings,
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
            pushed.problems.append(Problem(Reason.NOT_WHITELISTED, msg))
            for i, obs in enumerate(state.objects):
                if obs.kind == "Store" and obs.name == name:
                    state.objects[i] = with_refusal(obs, msg)
    pushed.acked = time.monotonic()
    # Remember what the channel acknowledged as its new live value.
    for key, outcome in pushed.outcomes.items():
        if outcome.ok:
            state.acknowledge(key, outcome.update.sku, outcome.update.quantity)
    return pushed


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
                u = out.update
                outcomes[(store, u.product_id, u.sku_id, u.channel_warehouse_id)] = out
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


def settle(
    candidates: Sequence[PlanRow], memory: RuleMemory, skus: frozenset[str] | None, settle: float
) -> tuple[list[PlanRow], float | None]:
    """Split differing rows into those due now and the increases still settling (push.increaseSettle):
    an increase waits until the source has shown the same value for `settle` seconds."""
    mono = time.monotonic()
    due: list[PlanRow] = []
    requeue: float | None = None
    seen: dict[SlotKey, tuple[str, int, float]] = {}
    for row in candidates:
        key = slot_key(row)
        if settle > 0 and row.desired > row.live:
            first = memory.first_seen.get(key)
            if first is None or first[1] != row.desired:
                first = (row.sku, row.desired, mono)
            seen[key] = first
            left = settle - (mono - first[2])
            if left > 0:
                requeue = left if requeue is None else min(requeue, left)
                continue
        due.append(row)
    if skus is None:
        memory.first_seen = seen
    else:
        memory.first_seen = {k: v for k, v in memory.first_seen.items() if v[0] not in skus} | seen
    return due, requeue
