"""What one sync passes between its steps (observe, plan, act, report), and what it keeps between syncs.

Everything the cluster holds arrives as a `Snapshot` of parsed resources; credentials and platform
clients come through `Ports`, so a whole sync runs in unit tests against fakes and in the operator
against the real providers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, Literal, Protocol, TypeAlias, TypeVar

import msgspec

from ..api import InventorySource, Store, SyncRule, Warehouse
from ..engine import Hold, PlanCounts, PlanRow
from ..engine.records import Listing, StockRecord
from ..engine.tally import RuleTally
from ..providers.base import InventorySourceProvider, SalesChannel
from .conditions import Cond

REQUESTED_AT = "invsync.dev/requested-at"
APPROVE_HOLD = "invsync.dev/approve-hold"
# On an InventorySource: {location: records} of its last good read, so that the empty-read guard
# still knows, after a restart, where the source had stock (docs/status.md).
LAST_GOOD_READ = "invsync.dev/last-good-read"

SlotKey = tuple[str, str, str, str]  # store, product id, platform SKU id, channel warehouse id
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
    annotations: dict[str, str] = field(default_factory=dict)  # to set on the object, when they differ


@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(slots=True)
class SyncCounts(PlanCounts):
    """One store's slots after a sync (docs/status.md): the plan's counts once the pushes are done
    (`drifted` is what still differs; `failed` slots are drifted), and what the push did.
    `drift_units`: how far the channel is from the plan."""

    pushed: int = 0
    failed: int = 0
    drift_units: int = 0


Record = TypeVar("Record", Listing, StockRecord)
Kept: TypeAlias = Record | tuple[Record, ...]  # one, or several in order: a tuple of one costs 56 bytes a SKU


def _many(kept: Kept[Record] | None) -> tuple[Record, ...]:
    if kept is None:
        return ()
    return kept if type(kept) is tuple else (kept,)  # type: ignore[return-value]


def _kept(items: tuple[Record, ...]) -> Kept[Record]:
    return items[0] if len(items) == 1 else items


def _put(many: list[Listing], x: Listing) -> None:
    """Put `x` among a SKU's slots, in place of the one it reads again or after them. No product
    comes back later in its store's read (`_products_reread`), so a slot read again is one of the
    same product's just before it: only those are looked at, however many stores share the SKU."""
    k = len(many)
    while k and many[k - 1].product_id == x.product_id and many[k - 1].store == x.store:
        k -= 1
        y = many[k]
        if y.sku_id == x.sku_id and y.channel_warehouse_id == x.channel_warehouse_id:
            many[k] = x
            return
    many.append(x)


def _products_reread(listings: Sequence[Listing]) -> bool:
    """Whether a product's slots come again after other products' in its store's read (the catalogue
    changed while it was paged): then a slot may be read twice, under its old and new seller SKU.
    Checked per product, not per slot: a slot-key tuple per listing would cost a full read more than
    keeping it."""
    seen: dict[str, set[str]] = {}
    products: set[str] = set()
    store = product = None
    for x in listings:
        if x.product_id != product or x.store != store:
            if x.store != store:
                store = x.store
                products = seen.setdefault(store, set())
            product = x.product_id
            if product in products:
                return True
            products.add(product)
    return False


@dataclass(slots=True)
class ReadState:
    """What the last full read found, with the pushes acknowledged since and the slots webhook syncs
    read live since; a webhook-triggered sync re-plans against it. Kept by seller SKU (a webhook sync
    finds its SKUs' slots and stock at once) and with nothing per slot but the Listing itself, a SKU's
    only record or slot held without a tuple around it: a million-listing rule keeps its read between
    syncs (docs/operations.md, "Sizing")."""

    stock: dict[str, Kept[StockRecord]]  # seller SKU -> its records, one per (source, location)
    listings: dict[str, Kept[Listing]]  # seller SKU -> its slots, in read order
    unready: frozenset[str] = frozenset()
    channel_warehouse_status: dict[tuple[str, str], str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    objects: list[ObjectStatus] = field(default_factory=list)
    read_stores: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        stock: Iterable[StockRecord],
        listings: Sequence[Listing],
        **rest: Any,
    ) -> ReadState:
        """From a read's records and slots; a later one for the same (source, location) or slot wins."""
        state = cls({}, {}, **rest)
        kept = state.stock
        for record in stock:
            if record.sku in kept:  # the SKU's next location, or one read again
                state.put_stock(record)
            else:
                kept[record.sku] = record
        if _products_reread(listings):  # rare: each slot's later read, in the order first read
            listings = list({listing_key(x): x for x in listings}.values())
        slots = state.listings
        several: dict[str, list[Listing]] = {}  # SKUs with more than one slot, kept as tuples at the end
        for x in listings:
            same = slots.get(x.sku)
            if same is None:
                slots[x.sku] = x
            else:
                many = several.get(x.sku)
                if many is None:
                    many = several[x.sku] = list(_many(same))
                _put(many, x)
        for sku, many in several.items():
            slots[sku] = _kept(tuple(many))
        return state

    def all_slots(self) -> list[Listing]:
        return [x for slots in self.listings.values() for x in _many(slots)]

    def all_stock(self) -> list[StockRecord]:
        return [r for records in self.stock.values() for r in _many(records)]

    def slots_of(self, skus: Iterable[str]) -> list[Listing]:
        """The remembered slots of `skus`, SKU by SKU (sorted), each SKU's in read order."""
        return [x for sku in sorted(skus) for x in _many(self.listings.get(sku))]

    def put_stock(self, record: StockRecord) -> None:
        """Remember `record` in place of the SKU's record at the same (source, location), if any."""
        same = _many(self.stock.get(record.sku))
        place = (record.source, record.location)
        if any((r.source, r.location) == place for r in same):
            kept = tuple(record if (r.source, r.location) == place else r for r in same)
        else:
            kept = (*same, record)
        self.stock[record.sku] = _kept(kept)

    def replace_slots(self, store: str, skus: Collection[str], fresh: Mapping[SlotKey, Listing]) -> int:
        """Put `fresh` (a live read of `skus` in `store`) in place of the remembered slots of those SKUs
        there; returns how many slots differ from what was remembered (changed, gone or new)."""
        remembered = {
            listing_key(x): x for sku in skus for x in _many(self.listings.get(sku)) if x.store == store
        }
        changed = sum(fresh.get(k) != x for k, x in remembered.items())
        changed += sum(k not in remembered for k in fresh)
        for sku in skus:
            kept = tuple(x for x in _many(self.listings.get(sku)) if x.store != store)
            kept += tuple(x for x in fresh.values() if x.sku == sku)
            if kept:
                self.listings[sku] = _kept(kept)
            else:
                self.listings.pop(sku, None)
        return changed

    def acknowledge(self, key: SlotKey, sku: str, quantity: int) -> None:
        """The channel acknowledged `quantity` on the remembered slot `key` of seller SKU `sku`."""
        slots = self.listings.get(sku)
        if slots is not None:
            self.listings[sku] = _kept(
                tuple(
                    msgspec.structs.replace(x, quantity=quantity) if listing_key(x) == key else x
                    for x in _many(slots)
                )
            )


@dataclass(slots=True)
class RuleMemory:
    """Per-rule state kept in memory between syncs (lost on restart, which only costs a full read)."""

    last_read: ReadState | None = None
    # How the rule knows its channels (docs/status.md): when the last full read ran, and how many
    # updates the platform acknowledged since; together they are what "in sync" rests on.
    full_read_at: datetime | None = None
    acknowledged_since: int = 0
    first_seen: dict[SlotKey, tuple[str, int, float]] = field(default_factory=dict)  # sku, desired, since
    arrivals: dict[str, float] = field(default_factory=dict)  # SKU -> monotonic webhook arrival
    # The rule's plan summed up over last_read (pushes acknowledged included), and the objects it was
    # planned with: a webhook sync under the same objects updates it for its SKUs only.
    tally: RuleTally | None = None
    tally_config: object = None


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
class LiveCheck:
    """What a webhook sync's read of its SKUs' live slots found against what invsync remembered (the
    last full read and the pushes acknowledged since). A difference means the channel changed behind
    invsync's back, so nothing else remembered can be trusted either: the rule re-reads everything."""

    read: int = 0  # live slots read
    changed: int = 0  # slots whose live value is neither the one read nor one acknowledged
    problems: list[Problem] = field(default_factory=list)  # stores whose slots could not be read

    @property
    def reread(self) -> bool:
        return bool(self.changed or self.problems)


@dataclass(slots=True)
class SyncReport:
    status: dict[str, Any]
    objects: list[ObjectStatus]
    events: list[Event]
    result: Result
    stores: dict[str, SyncCounts]
    allocation: Mapping[str, Fraction]
    change_to_push: list[tuple[str, float]]  # (store, seconds from the change to its push)
    requeue_after: float | None  # seconds until a settling increase becomes due
    live: LiveCheck = field(default_factory=LiveCheck)  # a full re-read is due when live.reread


def slot_key(row: PlanRow) -> SlotKey:
    """One slot, however many products of the store carry its seller SKU."""
    return (row.store, row.product_id, row.sku_id, row.channel_warehouse_id)


def listing_key(x: Listing) -> SlotKey:
    return (x.store, x.product_id, x.sku_id, x.channel_warehouse_id)


@dataclass(slots=True)
class Decision:
    """What the plan step decided for one sync: what is due now, and why the rest waits."""

    due: list[PlanRow]
    held_rows: list[PlanRow]  # due rows stopped by an unapproved safety hold
    hold: Hold | None  # the unapproved safety hold, if any
    settling_for: float | None
