"""One sync of one SyncRule: observe -> plan -> act -> report, as a plain async function (no kopf).

observe.py reads the sources and channels into the engine's world, the engine plans every slot,
act.py pushes the plan's changes and report.py turns the outcome into status, conditions, Events and
the counts the metrics need. The caller (worker.py) writes what changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from ..api import SyncRule, parse_duration
from ..engine import Plan, RulePlan, compute_plan
from ..engine.records import StockRecord
from ..engine.tally import RuleTally
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
    slot_key,
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
        objects = _planned_with(snap)
        # The tally of the rule's whole plan stays exact when a webhook sync takes out its SKUs' old
        # plan and adds their new one, under the same objects. Unset meanwhile: a sync that raises
        # leaves none half-updated, and the next one counts every slot again.
        tally = memory.tally if planned is not None and memory.tally_config == objects else None
        memory.tally = None
        live = LiveCheck()
        before: Plan | None = None
        if planned is not None and memory.last_read is not None:
            state = memory.last_read
            before = compute_plan(engine_world(snap, state, planned)) if tally is not None else None
            channels, live = await read_webhook_skus(state, webhook_rows, planned, snap, ports)
        else:
            # A full read replaces the last one whatever it finds (failures become Problems), and
            # nothing reads the old one meanwhile: let it go first, so that a rule's memory peaks at
            # one read, not two (docs/operations.md, "Sizing"). A sync that raises leaves none, and
            # the next sync reads everything again.
            memory.last_read = None
            state, channels = await read_world(rule, snap, ports, shared, now)
            memory.last_read, memory.full_read_at, memory.acknowledged_since = state, now, 0
        world = engine_world(snap, state, planned)
        plan = compute_plan(world)
        rule_plan = plan.rules[rule.name]
        if tally is None or before is None:  # a full sync, or the objects changed: count every slot
            whole = rule_plan if planned is None else compute_plan(engine_world(snap, state)).rules[rule.name]
            tally = RuleTally.of(whole, plan.rules)
        else:
            tally.add(before.rules[rule.name], -1)
            tally.add(rule_plan)
        decision = _decide(rule, rule_plan, tally, memory, planned)
        if decision.hold is not None and planned is not None:
            # a held plan holds every due row of the rule, not only the webhook's (rare: plan them all)
            rule_plan = compute_plan(engine_world(snap, state)).rules[rule.name]
            decision = _decide(rule, rule_plan, tally, memory, planned)
        pushed = await push(
            rule, snap, state, decision.due, channels, shared, progress or no_progress, world.listings
        )
        memory.acknowledged_since += sum(o.ok for o in pushed.outcomes.values())
        for row in decision.due:
            outcome = pushed.outcomes.get(slot_key(row))
            if outcome is not None and outcome.ok:
                tally.relive(row, outcome.update.quantity)
        memory.tally, memory.tally_config = tally, objects
        return report(rule, state, rule_plan, tally, plan.allocation, decision, pushed, memory, live, now)
    finally:
        await asyncio.gather(*(c.aclose() for c in channels.values()), return_exceptions=True)


def _planned_with(snap: Snapshot) -> tuple[object, ...]:
    """What a plan depends on besides the read: every rule's name, age and spec, every Store's and
    Warehouse's name, labels and spec (status writes change none of them)."""
    return (
        tuple((r.name, r.metadata.creation_timestamp, r.spec) for r in snap.rules),
        tuple((s.name, s.metadata.labels, s.spec) for s in snap.stores.values()),
        tuple((w.name, w.metadata.labels, w.spec) for w in snap.warehouses.values()),
    )


def _decide(
    rule: SyncRule, rule_plan: RulePlan, tally: RuleTally, memory: RuleMemory, skus: frozenset[str] | None
) -> Decision:
    """The plan step after the engine: what is due now, what settles, what the safety hold (over the
    rule's whole plan, `tally`) stops."""
    spec = rule.spec
    rows, listings = rule_plan.rows, rule_plan.rows.listings
    differing = [rows[k] for k, (i, desired) in enumerate(rows.slots()) if listings[i].quantity != desired]
    due, settling_for = settle(
        differing,
        memory,
        skus,
        parse_duration(spec.push.increase_settle).total_seconds(),
    )
    hold = tally.safety_hold(spec.safety)
    if hold is not None and rule.metadata.annotations.get(APPROVE_HOLD) != hold.id:
        return Decision([], due, hold, settling_for)
    return Decision(due, [], None, settling_for)
