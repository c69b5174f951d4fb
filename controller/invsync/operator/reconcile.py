"""One sync of one SyncRule: observe -> plan -> act -> report, as a plain async function (no kopf).

observe.py reads the sources and channels into the engine's world, the engine plans every slot,
act.py pushes the plan's changes and report.py turns the outcome into status, conditions, Events and
the counts the metrics need. The caller (worker.py) writes what changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from ..api import SyncRule, parse_duration
from ..engine import RulePlan, compute_plan, safety_hold
from ..engine.records import StockRecord
from ..providers.base import SalesChannel
from .act import push, settle
from .observe import engine_world, read_webhook_skus, read_world
from .report import report
from .state import (
    APPROVE_HOLD,
    Decision,
    LiveCheck,
    Ports,
    Progress,
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
    """Run one sync. `skus` (from a webhook) re-plans only those SKUs: their live slots read again,
    the rest from the last full read, with `webhook_rows` applied; without a previous read it falls
    back to a full sync. The report's `live` says whether the channel changed behind invsync's back
    (then the caller runs a full sync at once)."""

    async def no_progress(done: int, total: int) -> None:
        return None

    channels: dict[str, SalesChannel] = {}
    try:
        # observe: a webhook (`skus`) reads those SKUs' live slots, the rest is the last full read
        planned = skus if memory.last_read is not None else None
        live = LiveCheck()
        if planned is not None and memory.last_read is not None:
            state = memory.last_read
            channels, live = await read_webhook_skus(state, webhook_rows, planned, snap, ports)
        else:
            state, channels = await read_world(rule, snap, ports, shared, now)
            memory.last_read, memory.full_read_at, memory.acknowledged_since = state, now, 0
        world = engine_world(snap, state)
        plan = compute_plan(world, skus=planned)
        decision = _decide(rule, plan.rules[rule.name], memory, planned)
        pushed = await push(rule, snap, state, decision.due, channels, shared, progress or no_progress)
        memory.acknowledged_since += sum(o.ok for o in pushed.outcomes.values())
        # Counts cover every slot of the rule: on a webhook sync, the full plan over the remembered read.
        full = (
            plan if planned is None else compute_plan(replace(world, listings=list(state.listings.values())))
        )
        return report(
            rule, state, full.rules[rule.name], plan.allocation, decision, pushed, memory, live, now
        )
    finally:
        await asyncio.gather(*(c.aclose() for c in channels.values()), return_exceptions=True)


def _decide(rule: SyncRule, rule_plan: RulePlan, memory: RuleMemory, skus: frozenset[str] | None) -> Decision:
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
        return Decision([], due, hold, settling_for)
    return Decision(due, [], None, settling_for)
