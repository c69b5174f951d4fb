"""One sync of one SyncRule: observe -> plan -> act -> report, as a plain async function (no kopf).

observe.py reads the sources and channels into the engine's world, the engine plans every slot,
act.py pushes the plan's changes and report.py turns the outcome into status, conditions, Events and
the counts the metrics need. The caller (worker.py) writes what changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ..api import SyncRule, parse_duration
from ..engine import RulePlan, World, compute_plan, safety_hold
from ..engine.records import StockRecord
from ..providers.base import ProviderError, SalesChannel
from .act import push, settle
from .observe import read_world
from .report import report
from .state import (
    APPROVE_HOLD,
    Decision,
    Ports,
    Progress,
    ReadState,
    RuleMemory,
    SharedMemory,
    Snapshot,
    SyncReport,
)


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

    partial = skus is not None and memory.last_read is not None
    channels: dict[str, SalesChannel] = {}
    try:
        if partial and memory.last_read is not None:
            state = memory.last_read
            for rec in webhook_rows:
                state.stock[(rec.source, rec.location, rec.sku)] = rec
            channels = await _reopen_channels(snap, state, ports)
        else:
            state, channels = await read_world(rule, snap, ports, shared, now)
            memory.last_read = state
        planned = skus if partial else None
        world = _world(snap, state)
        plan = compute_plan(world, skus=planned)
        rule_plan = plan.rules[rule.name]
        decision = _decide(rule, snap, state, rule_plan, memory, planned)
        pushed = await push(rule, snap, state, decision.due, channels, shared, progress or no_progress)
        # Counts cover every slot of the rule: on a webhook sync, the full plan over the remembered read.
        if planned is not None:
            rule_plan = compute_plan(replace(world, listings=list(state.listings.values()))).rules[rule.name]
        return report(rule, snap, state, rule_plan, plan.allocation, decision, pushed, memory, now)
    finally:
        await asyncio.gather(*(c.aclose() for c in channels.values()), return_exceptions=True)


async def _reopen_channels(snap: Snapshot, state: ReadState, ports: Ports) -> dict[str, SalesChannel]:
    """Channel clients for the stores the last full read could read (a webhook sync reads nothing)."""
    channels: dict[str, SalesChannel] = {}
    for name in sorted(state.read_stores & snap.stores.keys()):
        store = snap.stores[name]
        secret = await ports.read_secret(snap.namespace, store.spec.credentials_secret_ref.name)
        if secret is not None:
            with contextlib.suppress(ProviderError):
                channels[name] = ports.channel(store, secret)
    return channels


def _world(snap: Snapshot, state: ReadState) -> World:
    return World(
        rules=list(snap.rules),
        stores=list(snap.stores.values()),
        warehouses=list(snap.warehouses.values()),
        stock=list(state.stock.values()),
        listings=list(state.listings.values()),
        unready_warehouses=state.unready,
        channel_warehouse_status=state.channel_warehouse_status,
    )


def _decide(
    rule: SyncRule,
    snap: Snapshot,
    state: ReadState,
    rule_plan: RulePlan,
    memory: RuleMemory,
    skus: frozenset[str] | None,
) -> Decision:
    """The plan step after the engine: what is due now, what settles, what the safety hold stops."""
    spec = rule.spec
    rows = list(rule_plan.rows)
    due, settling_for = settle(
        [r for r in rows if r.live != r.desired],
        memory,
        skus,
        parse_duration(spec.push.increase_settle).total_seconds(),
    )
    hold = safety_hold(rows, spec.safety)
    if hold is not None and rule.metadata.annotations.get(APPROVE_HOLD) != hold.id:
        return Decision(rows, [], due, hold, settling_for)
    return Decision(rows, due, [], None, settling_for)
