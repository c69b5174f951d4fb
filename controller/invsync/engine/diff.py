"""What a rule change does to the channel: the slots whose quantity would move, and the risks a reviewer
must see first (`invsync diff`)."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, overload

from .compute import Plan, World, gc_paused, slot_pools
from .push import safety_hold
from .records import Hold, Listing


@dataclass(frozen=True, slots=True)
class DiffRow:
    store: str
    channel_warehouse_id: str
    sku: str
    before: int
    after: int

    @property
    def delta(self) -> int:
        return self.after - self.before


class DiffRows(Sequence[DiffRow]):
    """Changed slots stored as columns, materialised on access (a million-row diff stays small)."""

    __slots__ = ("_after", "_before", "_index", "_listings")

    def __init__(self, listings: Sequence[Listing], index: array[int], before: array[int], after: array[int]):
        self._listings = listings
        self._index = index
        self._before = before
        self._after = after

    def __len__(self) -> int:
        return len(self._index)

    def _row(self, k: int) -> DiffRow:
        slot = self._listings[self._index[k]]
        return DiffRow(slot.store, slot.channel_warehouse_id, slot.sku, self._before[k], self._after[k])

    @overload
    def __getitem__(self, k: int) -> DiffRow: ...
    @overload
    def __getitem__(self, k: slice) -> Sequence[DiffRow]: ...
    def __getitem__(self, k: int | slice) -> DiffRow | Sequence[DiffRow]:
        if isinstance(k, slice):
            return [self._row(i) for i in range(*k.indices(len(self)))]
        return self._row(range(len(self))[k])

    def __iter__(self) -> Iterator[DiffRow]:
        return (self._row(k) for k in range(len(self)))


@dataclass(frozen=True, slots=True)
class StoreChange:
    """Per-store summary for a pull request: listings up, down, to zero, and units moved."""

    up: int = 0
    down: int = 0
    to_zero: int = 0
    units_moved: int = 0


@dataclass(frozen=True)
class Diff:
    rows: DiffRows  # in listing order
    stores: dict[str, StoreChange]

    @property
    def changed(self) -> bool:
        return bool(self.rows)


def _before(base: Plan, listings: Sequence[Listing]) -> list[int]:
    """Per slot of `listings`: what `base` shows there (its desired, else the live quantity)."""
    before_of = base.effective()
    if base.listings is listings:
        return before_of
    keyed = {
        (s.store, s.channel_warehouse_id, s.sku): v for s, v in zip(base.listings, before_of, strict=True)
    }
    return [keyed.get((s.store, s.channel_warehouse_id, s.sku), s.quantity) for s in listings]


def diff_plans(base: Plan, head: Plan) -> Diff:
    """Slots whose quantity changes once `head` replaces `base`, assuming the channel is in sync with base.

    Before is base's desired quantity (the live one where base manages nothing); after is head's where
    head manages the slot, else unchanged (an unmanaged slot is left as it is). Plans over different
    snapshots are matched by (store, channel warehouse, seller SKU).
    """
    with gc_paused():
        listings = head.listings
        before_of = _before(base, listings)
        after_of = list(before_of)
        for rule_plan in head.rules.values():
            for i, value in rule_plan.rows.slots():
                after_of[i] = value
        index = array("q", [i for i, (b, a) in enumerate(zip(before_of, after_of, strict=True)) if b != a])
        befores, afters = array("q"), array("q")
        totals: dict[str, list[int]] = {}
        for i in index:
            was, value = before_of[i], after_of[i]
            befores.append(was)
            afters.append(value)
            store = listings[i].store
            t = totals.get(store)
            if t is None:
                t = totals[store] = [0, 0, 0, 0]
            if value > was:
                t[0] += 1
            else:
                t[1] += 1
                t[2] += value == 0
            t[3] += abs(value - was)
        stores = {name: StoreChange(*t) for name, t in sorted(totals.items())}
        return Diff(DiffRows(listings, index, befores, afters), stores)


# --------------------------------------------------------------------------- risks

# A zero decided by these steps of docs/rules.md may hide stock the pool has (a threshold, the low-stock
# rule, rounding or a cap); fixedQuantity and continue selling are set by hand, noSource has no pool.
MISSED_SALE_REASONS: Final = ("ratio", "threshold", "lowStock", "clamp")


@dataclass(frozen=True, slots=True)
class MissedSale:
    """A slot the head plan shows at 0 while the Warehouses feeding it hold `pool` units (step 1's
    pool); `before` is what the base shows there, so `before > 0` means the change zeroes it."""

    rule: str
    store: str
    channel_warehouse_id: str
    sku: str
    reason: str
    pool: int
    before: int

    @property
    def introduced(self) -> bool:
        return self.before > 0


@dataclass(frozen=True, slots=True)
class OverAllocated:
    """A warehouse whose pool the head plan offers more than once (docs/rules.md, "Pool allocation")."""

    warehouse: str
    ratio: Fraction
    base_ratio: Fraction
    rules: tuple[str, ...]  # the head rules drawing on it

    @property
    def introduced(self) -> bool:
        return self.base_ratio <= 1


@dataclass(frozen=True, slots=True)
class SafetyStop:
    """A head rule whose plan the safety policy would hold (`invsync run` would push nothing of it)."""

    rule: str
    hold: Hold
    max_zero_fraction: float
    min_listings: int
    introduced: bool  # the base plan of the rule would not be held


@dataclass(frozen=True)
class Risks:
    missed_sales: list[MissedSale]  # in rule, then listing order
    over_allocated: list[OverAllocated]  # by warehouse name
    safety_stops: list[SafetyStop]  # oldest rule first

    def __bool__(self) -> bool:
        return bool(self.missed_sales or self.over_allocated or self.safety_stops)


def _missed_sales(base: Plan, head: Plan, world: World) -> list[MissedSale]:
    zeroes = [
        (rule_plan, k, i)
        for rule_plan in head.rules.values()
        for k, (i, desired) in enumerate(rule_plan.rows.slots())
        if desired == 0
    ]
    if not zeroes:
        return []
    before_of = _before(base, head.listings)
    candidates = [(rule_plan.rows[k], i) for rule_plan, k, i in zeroes]
    candidates = [(row, i) for row, i in candidates if row.reason in MISSED_SALE_REASONS]
    pools = slot_pools(world, [row for row, _ in candidates])
    found = [
        MissedSale(row.rule, row.store, row.channel_warehouse_id, row.sku, row.reason, pool, before_of[i])
        for (row, i), pool in zip(candidates, pools, strict=True)
        if pool > 0
    ]
    return found


def risks(base: Plan, head: Plan, world: World) -> Risks:
    """What a reviewer must see before the rows: slots shown at 0 over a pool with stock (missed sales),
    pools offered more than once (oversell), and rules the safety policy would hold. `world` is the one
    `head` was planned on; each record says whether the change introduced it."""
    with gc_paused():
        missed = _missed_sales(base, head, world)
    over = [
        OverAllocated(
            warehouse,
            ratio,
            base.allocation.get(warehouse, Fraction(0)),
            tuple(name for name, rp in head.rules.items() if warehouse in rp.oversell_risk),
        )
        for warehouse, ratio in sorted(head.allocation.items())
        if ratio > 1
    ]
    policies = {r.name: r.spec.safety for r in world.rules}
    stops = []
    for name, rule_plan in head.rules.items():
        policy = policies[name]
        hold = safety_hold(rule_plan.rows, policy)
        if hold is not None:
            was = base.rules.get(name)
            introduced = was is None or safety_hold(was.rows, policy) is None
            stops.append(SafetyStop(name, hold, policy.max_zero_fraction, policy.min_listings, introduced))
    return Risks(missed, over, stops)
