"""Report: one sync's outcome as the rule's status, its conditions, Events and the metrics' counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from ..api import SyncRule
from ..engine import Hold, PlanRow, RulePlan
from ..engine.tally import RuleTally
from ..providers.base import PushOutcome
from .act import Pushed
from .conditions import CONFLICT, OVERSELL_RISK, READY, RECONCILING, STALLED, Cond, merge, rfc3339
from .reasons import Reason
from .state import (
    APPROVE_HOLD,
    REQUESTED_AT,
    Decision,
    Event,
    LiveCheck,
    Problem,
    ReadState,
    Result,
    RuleMemory,
    SlotKey,
    SyncCounts,
    SyncReport,
)


def report(
    rule: SyncRule,
    state: ReadState,
    plan: RulePlan,
    tally: RuleTally,
    allocation: Mapping[str, Fraction],
    decision: Decision,
    pushed: Pushed,
    memory: RuleMemory,
    live: LiveCheck,
    now: datetime,
) -> SyncReport:
    """The rule's new status, the Events to post and the counts, from the tally of the rule's whole plan
    (the pushes acknowledged included) and the pushes; `plan` is this sync's (a webhook's SKUs only)."""
    spec = rule.spec
    outcomes = pushed.outcomes
    problems = [*state.problems, *live.problems, *pushed.problems]
    events: list[Event] = []
    if live.changed:
        events.append(
            Event(
                "Warning",
                Reason.CHANNEL_CHANGED,
                f"{live.changed} of {live.read} live slots read for a webhook's SKUs differ from what "
                "invsync last read or set: the channel changed behind its back; re-reading all listings",
            )
        )
    hold = decision.hold
    if hold is not None:
        events.append(
            Event(
                "Warning",
                Reason.SAFETY_HOLD,
                f"plan held: it would set {hold.zeroing} of {hold.of} listings with stock to zero; "
                f"set annotation {APPROVE_HOLD}={hold.id} to release it",
            )
        )
    counts = _count(plan.selection.stores, tally, decision.held_rows, outcomes)
    for store_name, c in counts.items():
        if c.failed:
            first = next(o.message for k, o in outcomes.items() if k[0] == store_name and not o.ok)
            events.append(
                Event(
                    "Warning",
                    Reason.PUSH_FAILED,
                    f"{c.failed} of {c.failed + c.pushed} updates to Store {store_name} failed: {first}",
                )
            )
    changed = [o for o in outcomes.values() if o.ok]
    if changed:
        events.append(pushed_event(len(changed)))
    # once per (store, SKU): one change of a pool reaches every store of the rule, each a measurement
    first_push = {
        (key[0], o.update.sku): pushed.acked - arrived
        for key, o in outcomes.items()
        if o.ok and (arrived := memory.arrivals.get(o.update.sku)) is not None
    }
    for _, sku in first_push:
        memory.arrivals.pop(sku, None)
    change_to_push = [(store, seconds) for (store, _), seconds in first_push.items()]
    events += [
        Event(
            "Warning",
            Reason.CONFLICT,
            f"{c.count} SKUs on Store {c.store} are owned by older SyncRule {c.owner}",
        )
        for c in tally.conflict_list()
    ]
    holds = tally.held_slots()
    problems += [
        Problem(Reason.DUPLICATE_LOCATION, h.message) for h in holds if h.cause == "duplicateLocation"
    ]
    not_pushed = sum(h.count for h in holds)
    if not_pushed and problems:
        problems.append(
            Problem(
                problems[0].reason,
                f"{not_pushed} listings not pushed because the data feeding them is unavailable",
            )
        )
    events += [
        Event(
            "Warning", Reason.NOT_WRITABLE, f"{n.count} listings of Store {n.store} not managed: {n.reason}"
        )
        for n in tally.not_writable_list()
    ]
    events += [Event("Warning", p.reason, p.message) for p in problems]
    pushing = spec.push.mode == "Enforce" and not spec.suspend
    acknowledged = memory.acknowledged_since

    def rule_status(read_time: str) -> dict[str, Any]:
        conds = _rule_conditions(
            rule, problems, counts, plan, tally, hold, pushing, live, read_time, acknowledged
        )
        return _rule_status(rule, conds, counts, hold, now, read_time, acknowledged)

    status = rule_status(rfc3339(memory.full_read_at or now))
    # A full read that changes nothing keeps the read time already written (and so writes nothing),
    # unless that is older than FULL_READ_REFRESH (docs/status.md).
    kept = _kept_read_time(rule, acknowledged, now)
    if kept is not None and kept != status["lastFullReadTime"]:
        unchanged = rule_status(kept)
        old = rule.status.model_dump(by_alias=True, exclude_none=True) if rule.status is not None else {}
        if status_patch(old, unchanged, now) is None:
            status = unchanged
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
    return SyncReport(
        status=status,
        objects=state.objects,
        events=events,
        result=result,
        stores=counts,
        allocation=allocation,
        change_to_push=change_to_push,
        requeue_after=decision.settling_for,
        live=live,
    )


FULL_READ_REFRESH = timedelta(hours=1)


def _kept_read_time(rule: SyncRule, acknowledged: int, now: datetime) -> str | None:
    """The lastFullReadTime already written, if it may stand: the same pushes acknowledged since,
    and younger than FULL_READ_REFRESH."""
    old = rule.status
    if old is None or old.last_full_read_time is None or old.acknowledged_since_full_read != acknowledged:
        return None
    try:
        written = datetime.fromisoformat(old.last_full_read_time.replace("Z", "+00:00"))
    except ValueError:
        return None
    return old.last_full_read_time if now - written < FULL_READ_REFRESH else None


def _count(
    stores: Iterable[str],
    tally: RuleTally,
    safety_held: Iterable[PlanRow],
    outcomes: Mapping[SlotKey, PushOutcome],
) -> dict[str, SyncCounts]:
    """Per-store counts after the sync: the tally's (`drifted` is what still differs once the pushes
    are done), with the rows an unapproved safety hold stopped counted as held."""
    counts = {
        store: SyncCounts(**asdict(c), drift_units=tally.drift_units[store])
        for store, c in tally.counts(stores).items()
    }
    for row in safety_held:
        c = counts[row.store]
        c.held += 1
        c.drifted -= 1
    for (store, _, _, _), outcome in outcomes.items():
        c = counts.setdefault(store, SyncCounts())
        if outcome.ok:
            c.pushed += 1
        else:
            c.failed += 1
    return counts


DUPLICATES_NAMED = 5  # seller SKUs named in an OversellRisk message; the count says how many in all


def _rule_conditions(
    rule: SyncRule,
    problems: Sequence[Problem],
    counts: Mapping[str, SyncCounts],
    plan: RulePlan,
    tally: RuleTally,
    hold: Hold | None,
    pushing: bool,
    live: LiveCheck,
    read_time: str,
    acknowledged: int,
) -> list[Cond]:
    conflicts, oversell, not_writable = tally.conflict_list(), plan.oversell_risk, tally.not_writable_list()
    listings = sum(c.listings for c in counts.values())
    in_sync = sum(c.in_sync for c in counts.values())
    drifted = sum(c.drifted for c in counts.values())
    failed = sum(c.failed for c in counts.values())
    if hold is not None:
        ready = Cond(
            READY, "False", Reason.SAFETY_HOLD, f"plan held: would zero {hold.zeroing} of {hold.of} listings"
        )
    elif problems:
        ready = Cond(
            READY, "False", problems[0].reason, "; ".join(dict.fromkeys(p.message for p in problems))
        )
    elif failed:
        ready = Cond(READY, "False", Reason.PUSH_FAILED, f"{failed} of {listings} listings failed to push")
    elif rule.spec.suspend:
        ready = Cond(READY, "True", Reason.SUSPENDED, f"suspended: {drifted} of {listings} listings differ")
    elif not pushing:
        ready = Cond(READY, "True", Reason.DRY_RUN, f"dry run: {drifted} of {listings} listings would change")
    elif live.changed:
        # what the webhook's live read found says the rest of the remembered read is not to be trusted
        ready = Cond(
            READY,
            "True",
            Reason.CHANNEL_CHANGED,
            f"the channel changed behind invsync's back ({live.changed} of {live.read} slots read for a "
            f"webhook's SKUs differ from the read at {read_time} and the pushes acknowledged since): "
            "re-reading all listings",
        )
    else:
        pushes = f"{acknowledged} push{'' if acknowledged == 1 else 'es'}"
        ready = Cond(
            READY,
            "True",
            Reason.SYNCED,
            f"{in_sync} of {listings} listings in sync (read {read_time}, {pushes} acknowledged since)",
        )
    if not_writable:
        text = "; ".join(f"{n.count} on Store {n.store} ({n.reason})" for n in not_writable)
        ready = replace(ready, message=f"{ready.message}; not managed, not writable: {text}")
    conds = [ready]
    if live.reread:
        conds.append(Cond(RECONCILING, "True", Reason.CHANNEL_CHANGED, "re-reading all listings"))
    if hold is not None:
        conds.append(
            Cond(STALLED, "True", Reason.SAFETY_HOLD, f"approve with annotation {APPROVE_HOLD}={hold.id}")
        )
    if conflicts:
        text = ", ".join(f"{c.count} on Store {c.store} owned by SyncRule {c.owner}" for c in conflicts)
        conds.append(
            Cond(CONFLICT, "True", Reason.OWNED_BY_OLDER_RULE, f"SKUs claimed by older rules: {text}")
        )
    risks: list[str] = []
    if oversell:
        risks.append(
            "warehouses allocated above 100%: "
            + ", ".join(f"{w} at {float(r):.2f}" for w, r in sorted(oversell.items()))
        )
    for store, skus in tally.duplicate_skus().items():
        named = ", ".join(skus[:DUPLICATES_NAMED]) + (", ..." if len(skus) > DUPLICATES_NAMED else "")
        risks.append(
            f"{len(skus)} seller SKUs on more than one product of Store {store}, each showing the SKU's "
            f"quantity: {named}"
        )
    if risks:
        why = Reason.POOL_OVER_ALLOCATED if oversell else Reason.DUPLICATE_SKU
        conds.append(Cond(OVERSELL_RISK, "True", why, "; ".join(risks)))
    return conds


def _rule_status(
    rule: SyncRule,
    conds: Sequence[Cond],
    counts: Mapping[str, SyncCounts],
    hold: Hold | None,
    now: datetime,
    read_time: str,
    acknowledged: int,
) -> dict[str, Any]:
    old = rule.status.model_dump(by_alias=True, exclude_none=True) if rule.status is not None else {}
    total = SyncCounts(
        *(sum(getattr(c, f) for c in counts.values()) for f in SyncCounts.__dataclass_fields__)
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
        "lastFullReadTime": read_time,
        "acknowledgedSinceFullRead": acknowledged,
    }
    requested = rule.metadata.annotations.get(REQUESTED_AT)
    if requested is not None:
        status["lastHandledRequestedAt"] = requested
    if old.get("lastSyncTime"):
        status["lastSyncTime"] = old["lastSyncTime"]
    return status


def pushed_event(listings: int) -> Event:
    """The Normal Event of `listings` quantities the platforms acknowledged."""
    return Event("Normal", Reason.PUSHED, f"set {listings} listing quantities")


def same_conditions(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether `new` keeps every condition of `old` (type, status, reason): what alerts and `kubectl
    wait` read, so a status that changes one is written at once (worker.STATUS_MIN_GAP)."""

    def key(status: Mapping[str, Any] | None) -> set[tuple[Any, ...]]:
        conditions = (status or {}).get("conditions") or ()
        return {(c.get("type"), c.get("status"), c.get("reason")) for c in conditions}

    return key(old) == key(new)


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
        "lastFullReadTime",
        "acknowledgedSinceFullRead",
    }
)
