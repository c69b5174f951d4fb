"""What a rule change does to the channel: the slots whose quantity would move (`invsync diff`)."""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from .compute import Plan, gc_paused
from .records import Listing


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


def diff_plans(base: Plan, head: Plan) -> Diff:
    """Slots whose quantity changes once `head` replaces `base`, assuming the channel is in sync with base.

    Before is base's desired quantity (the live one where base manages nothing); after is head's where
    head manages the slot, else unchanged (an unmanaged slot is left as it is). Plans over different
    snapshots are matched by (store, channel warehouse, seller SKU).
    """
    with gc_paused():
        listings = head.listings
        before_of = base.effective()
        if base.listings is not listings:
            keyed = {
                (s.store, s.channel_warehouse_id, s.sku): v
                for s, v in zip(base.listings, before_of, strict=True)
            }
            before_of = [keyed.get((s.store, s.channel_warehouse_id, s.sku), s.quantity) for s in listings]
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
