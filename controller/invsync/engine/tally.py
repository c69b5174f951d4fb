"""A rule's plan summed up (docs/status.md): the counts, holds, conflicts and safety figures its status
reports. A tally is additive over SKUs (a SKU's slots are decided from that SKU's stock alone,
docs/rules.md), so a webhook sync keeps it exact by taking out the old plan of the SKUs it re-plans and
adding their new one, in O(changed SKUs) instead of a full plan."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from ..api.kinds import SafetyPolicy
from .compute import PlanCounts, RulePlan
from .push import hold_of
from .records import Conflict, HeldSlots, Hold, Listing, NotWritable, PlanRow

K = TypeVar("K")
_ZeroingKey = tuple[str, str, str]  # store, channel warehouse, seller SKU: what the hold id digests


@dataclass(slots=True)
class RuleTally:
    """One rule's plan as sums. `add(plan, -1)` undoes `add(plan)`; entries that reach 0 are dropped,
    so a tally equals the tally of a full plan over the same world, field for field."""

    rule: str
    rule_order: tuple[str, ...] = ()  # every rule, oldest first: the order conflicts are listed in
    listings: Counter[str] = field(default_factory=Counter)  # managed rows, per store
    in_sync: Counter[str] = field(default_factory=Counter)
    drift_units: Counter[str] = field(default_factory=Counter)  # sum of |desired - live| per store
    unmatched: Counter[str] = field(default_factory=Counter)
    holds: Counter[tuple[str, str, tuple[str, ...], str]] = field(default_factory=Counter)
    conflicts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (store, owner)
    not_writable: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # store, platform, status
    duplicates: Counter[tuple[str, str]] = field(default_factory=Counter)  # (store, seller SKU)
    showing: int = 0  # rows whose live quantity is above 0 (the safety policy's base)
    zeroing: Counter[_ZeroingKey] = field(default_factory=Counter)  # showing rows the plan sets to 0

    @classmethod
    def of(cls, plan: RulePlan, rule_order: Iterable[str]) -> RuleTally:
        tally = cls(plan.rule, tuple(rule_order))
        tally.add(plan)
        return tally

    def add(self, plan: RulePlan, sign: int = 1) -> None:
        """Add (sign 1) or take out (sign -1) what `plan` decides."""
        listings = plan.rows.listings
        self._rows(((listings[i], desired) for i, desired in plan.rows.slots()), sign)
        for store, n in plan.unmatched.items():
            _bump(self.unmatched, store, n * sign)
        for h in plan.holds:
            _bump(self.holds, (h.store, h.cause, h.warehouses, h.location), h.count * sign)
        for c in plan.conflicts:
            _bump(self.conflicts, (c.store, c.owner), c.count * sign)
        for w in plan.not_writable:
            _bump(self.not_writable, (w.store, w.platform, w.status), w.count * sign)
        for store, skus in plan.duplicate_skus.items():
            for sku in skus:
                _bump(self.duplicates, (store, sku), sign)

    def _rows(self, rows: Iterable[tuple[Listing, int]], sign: int) -> None:
        """Count (slot at its live quantity, desired) rows, summed per store in plain integers first
        and added to the counters once per store: a full plan's tally is a million rows."""
        sums: dict[str, list[int]] = {}  # store -> [managed, in sync, drift units]
        showing = 0
        for slot, desired in rows:
            store, live = slot.store, slot.quantity
            acc = sums.get(store)
            if acc is None:
                acc = sums[store] = [0, 0, 0]
            acc[0] += 1
            if live == desired:
                acc[1] += 1
            else:
                acc[2] += abs(desired - live)
            if live > 0:
                showing += 1
                if desired == 0:
                    _bump(self.zeroing, (store, slot.channel_warehouse_id, slot.sku), sign)
        for store, (managed, same, units) in sums.items():
            for counter, n in ((self.listings, managed), (self.in_sync, same), (self.drift_units, units)):
                if n:
                    _bump(counter, store, n * sign)
        self.showing += showing * sign

    def relive(self, row: PlanRow, live: int) -> None:
        """The channel acknowledged `live` for `row`'s slot: count it at that value from now on."""
        for quantity, sign in ((row.live, -1), (live, 1)):
            slot = Listing(row.store, row.sku, row.product_id, row.sku_id, row.channel_warehouse_id, quantity)
            self._rows([(slot, row.desired)], sign)

    # ------------------------------------------------------------------ what the status reads

    def counts(self, stores: Iterable[str]) -> dict[str, PlanCounts]:
        """Per store (every one of `stores`, and any the tally has slots of), as RulePlan.counts gives."""
        held = self.held
        conflicted: Counter[str] = Counter()
        for (store, _), n in self.conflicts.items():
            conflicted[store] += n
        not_writable: Counter[str] = Counter()
        for (store, _, _), n in self.not_writable.items():
            not_writable[store] += n
        names = sorted(
            set(stores)
            | set(self.listings)
            | set(self.unmatched)
            | set(held)
            | set(conflicted)
            | set(not_writable)
        )
        return {
            s: PlanCounts(
                listings=self.listings[s] + held[s],
                in_sync=self.in_sync[s],
                drifted=self.listings[s] - self.in_sync[s],
                unmatched=self.unmatched[s],
                held=held[s],
                conflicted=conflicted[s],
                not_writable=not_writable[s],
            )
            for s in names
        }

    @property
    def held(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for (store, _, _, _), n in self.holds.items():
            out[store] += n
        return out

    def held_slots(self) -> list[HeldSlots]:
        return [
            HeldSlots(store, cause, warehouses, n, location)
            for (store, cause, warehouses, location), n in sorted(
                self.holds.items(), key=lambda kv: (kv[0][0], _held_order(*kv[0][1:]))
            )
        ]

    def conflict_list(self) -> list[Conflict]:
        rank = {name: i for i, name in enumerate(self.rule_order)}
        return [
            Conflict(store, owner, n)
            for (store, owner), n in sorted(self.conflicts.items(), key=lambda kv: (kv[0][0], rank[kv[0][1]]))
        ]

    def not_writable_list(self) -> list[NotWritable]:
        return [
            NotWritable(store, platform, status, n)
            for (store, platform, status), n in sorted(self.not_writable.items(), key=lambda kv: kv[0][::2])
        ]

    def duplicate_skus(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {}
        for store, sku in self.duplicates:
            found.setdefault(store, []).append(sku)
        return {store: tuple(sorted(skus)) for store, skus in sorted(found.items())}

    def safety_hold(self, policy: SafetyPolicy) -> Hold | None:
        """engine.safety_hold of the rule's whole plan."""
        return hold_of(self.showing, self.zeroing.elements(), policy)


def _held_order(cause: str, warehouses: tuple[str, ...], location: str) -> str:
    """The order RulePlan.holds lists held slots in (by the planner's held key)."""
    return f"{cause}|{','.join(warehouses)}|{location}"


def _bump(counter: Counter[K], key: K, n: int) -> None:
    """counter[key] += n, dropping the key at 0 (so equal tallies compare equal)."""
    value = counter[key] + n
    if value:
        counter[key] = value
    else:
        del counter[key]
