"""The desired quantity of every listing slot, its reason, and its explanation (docs/rules.md).

Quantities are exact: ratios are percents, so every intermediate value is an integer numerator over
10000 and rounding is integer division. The planner computes each SKU once per distinct feed (rule,
contributing warehouses and ratios, store cap, preferred-store flag) and reuses it across the stores
and channel warehouses that share it, so a million slots cost about a million dictionary lookups.
"""

from __future__ import annotations

import gc
import re
from array import array
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from fnmatch import translate
from fractions import Fraction
from functools import cached_property
from typing import Final, overload

from ..api.kinds import ChannelWarehouseMapping, Store, SyncRule, Warehouse
from .records import Conflict, HeldSlots, Listing, NotWritable, PlanRow, StockRecord
from .selection import Selection, selection

SCALE: Final = 10000  # ratio percent x execution percent
REASONS: Final = ("ratio", "threshold", "continueSelling", "fixed", "lowStock", "clamp", "noSource")
HELD: Final = -1  # no quantity can be trusted (docs/rules.md, "Held slots"): not pushed
UNMATCHED: Final = -2  # the SKU is in no source: left alone
_NOT_MANAGED_STATUSES: Final = frozenset({"DISABLED", "RESTRICTED"})


# A SKU's one stock record, or its records in read order.
SkuStock = StockRecord | Sequence[StockRecord]


@dataclass(frozen=True)
class World:
    """Everything one plan depends on; the operator builds it from the cluster, the CLI from files."""

    rules: Sequence[SyncRule]
    stores: Sequence[Store]
    warehouses: Sequence[Warehouse]
    # The records, or the records by seller SKU as the operator keeps them between syncs: planned
    # from that mapping as it is, not indexed again (a million SKUs per full sync).
    stock: Sequence[StockRecord] | Mapping[str, SkuStock]
    listings: Sequence[Listing]
    unready_warehouses: frozenset[str] = frozenset()
    channel_warehouse_status: Mapping[tuple[str, str], str] = field(default_factory=dict)


class PlanRows(Sequence[PlanRow]):
    """A rule's rows, stored as columns over the world's listings and materialised on access."""

    __slots__ = ("_desired", "_index", "_listings", "_reasons", "_rule")

    def __init__(
        self,
        rule: str,
        listings: Sequence[Listing],
        index: array[int],
        desired: array[int],
        reasons: list[str],
    ) -> None:
        self._rule = rule
        self._listings = listings
        self._index = index
        self._desired = desired
        self._reasons = reasons

    def __len__(self) -> int:
        return len(self._index)

    def _row(self, k: int) -> PlanRow:
        slot = self._listings[self._index[k]]
        return PlanRow(
            self._rule,
            slot.store,
            slot.channel_warehouse_id,
            slot.sku,
            slot.product_id,
            slot.sku_id,
            slot.quantity,
            self._desired[k],
            self._reasons[k],
        )

    @overload
    def __getitem__(self, k: int) -> PlanRow: ...
    @overload
    def __getitem__(self, k: slice) -> Sequence[PlanRow]: ...
    def __getitem__(self, k: int | slice) -> PlanRow | Sequence[PlanRow]:
        if isinstance(k, slice):
            return [self._row(i) for i in range(*k.indices(len(self)))]
        return self._row(range(len(self))[k])

    def __iter__(self) -> Iterator[PlanRow]:
        return (self._row(k) for k in range(len(self)))

    @property
    def listings(self) -> Sequence[Listing]:
        """The world's listings the rows index into."""
        return self._listings

    def indices(self) -> Sequence[int]:
        """Per row, its index into the world's listings."""
        return self._index

    def slots(self) -> Iterator[tuple[int, int]]:
        """(index into the world's listings, desired) pairs, without building rows."""
        return zip(self._index, self._desired, strict=True)


@dataclass(slots=True)
class PlanCounts:
    """Per-store counts of one rule's plan (docs/status.md): `listings` = `in_sync` + `drifted` +
    `held`; `unmatched`, `conflicted` and `not_writable` slots are not managed, so not among them."""

    listings: int = 0
    in_sync: int = 0
    drifted: int = 0
    unmatched: int = 0
    held: int = 0
    conflicted: int = 0
    not_writable: int = 0


@dataclass(frozen=True)
class RulePlan:
    """What one rule would do: its managed rows, and what it leaves alone and why."""

    rule: str
    rows: PlanRows
    unmatched: Mapping[str, int]  # store -> slots whose SKU no source knows
    holds: Sequence[HeldSlots]  # managed slots not pushed: the data deciding them cannot be trusted
    conflicts: Sequence[Conflict]
    oversell_risk: Mapping[str, Fraction]  # warehouse -> allocation ratio > 1 this rule draws on
    not_writable: Sequence[NotWritable]  # slots it would manage whose product takes no update
    selection: Selection

    @cached_property
    def duplicate_skus(self) -> dict[str, tuple[str, ...]]:
        """store -> seller SKUs the rule manages on more than one product (or platform SKU) of the store:
        each gets the SKU's quantity, so the stock is offered more than once (docs/rules.md). Computed
        on first use: a plan's caller that does not report it does not pay for it."""
        first: dict[tuple[str, str], dict[str, Listing]] = defaultdict(dict)  # (store, cw) -> SKU -> slot
        found: dict[str, set[str]] = defaultdict(set)
        listings = self.rows.listings
        for i in self.rows.indices():
            slot = listings[i]
            seen = first[(slot.store, slot.channel_warehouse_id)].setdefault(slot.sku, slot)
            if seen is not slot and (seen.product_id, seen.sku_id) != (slot.product_id, slot.sku_id):
                found[slot.store].add(slot.sku)
        return {store: tuple(sorted(skus)) for store, skus in sorted(found.items())}

    @property
    def held(self) -> dict[str, int]:
        """store -> held slots."""
        out: dict[str, int] = defaultdict(int)
        for h in self.holds:
            out[h.store] += h.count
        return dict(out)

    def counts(self) -> dict[str, PlanCounts]:
        """Per-store counts, computed from the columns (no rows are built)."""
        listings: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        slots = self.rows.listings
        for i, desired in self.rows.slots():
            slot = slots[i]
            c = listings[slot.store]
            c[0] += 1
            c[1] += slot.quantity == desired
        conflicted: dict[str, int] = defaultdict(int)
        for conflict in self.conflicts:
            conflicted[conflict.store] += conflict.count
        held = self.held
        not_writable: dict[str, int] = defaultdict(int)
        for n in self.not_writable:
            not_writable[n.store] += n.count
        names = sorted(set(listings) | set(self.unmatched) | set(held) | set(conflicted) | set(not_writable))
        return {
            s: PlanCounts(
                listings=listings[s][0] + held.get(s, 0),
                in_sync=listings[s][1],
                drifted=listings[s][0] - listings[s][1],
                unmatched=self.unmatched.get(s, 0),
                held=held.get(s, 0),
                conflicted=conflicted.get(s, 0),
                not_writable=not_writable.get(s, 0),
            )
            for s in names
        }


@dataclass(frozen=True)
class Plan:
    """The plan of every rule of a world, plus the pool allocation ratio of every warehouse."""

    rules: dict[str, RulePlan]
    allocation: dict[str, Fraction]
    listings: Sequence[Listing]

    def effective(self) -> list[int]:
        """Per listing: the desired quantity where a rule manages the slot, else the live one."""
        values = [slot.quantity for slot in self.listings]
        for rule_plan in self.rules.values():
            for i, desired in rule_plan.rows.slots():
                values[i] = desired
        return values


@dataclass(frozen=True)
class Explanation:
    """Why one (store, channel warehouse) slot of a SKU gets its quantity, step by step."""

    rule: str
    store: str
    channel_warehouse_id: str
    sku: str
    live: int
    desired: int | None  # None: the rule leaves this slot alone
    reason: str  # a REASONS value, or notManaged | conflict | unmatched | held (docs/rules.md)
    steps: tuple[str, ...]


# --------------------------------------------------------------------------- rule settings


@dataclass(frozen=True, slots=True)
class _Settings:
    """A rule's quantity settings for one SKU, after its first matching override."""

    fixed: int | None
    execution_ratio: int
    safety_stock: int
    threshold: int
    rounding: str
    max_quantity: int | None


def _patterns(patterns: Sequence[str]) -> re.Pattern[str]:
    """One regex for shell-style patterns; no pattern matches nothing."""
    return re.compile("|".join(translate(p) for p in patterns) or "(?!)")


class _Rule:
    """A SyncRule prepared for planning: its stores, warehouse ratios and per-SKU settings."""

    def __init__(self, rule: SyncRule, stores: Sequence[Store], warehouses: Sequence[Warehouse]) -> None:
        spec = rule.spec
        self.name = rule.name
        self.spec = spec
        self.selection = selection(rule, stores, warehouses)
        self.stores = set(self.selection.stores)
        self.ratios = self.selection.ratios
        known = {w.name for w in warehouses if w.namespace == rule.namespace}
        # Warehouses the rule itself names that do not exist: they feed every slot of an unmapped Store.
        self.named_missing = tuple(
            e.name for e in spec.warehouses if e.name is not None and e.name not in known
        )
        base = _Settings(
            None,
            spec.execution_ratio,
            spec.safety_stock,
            spec.out_of_stock_threshold,
            spec.rounding,
            spec.max_quantity,
        )
        self.base = base
        self.overrides: list[tuple[re.Pattern[str], _Settings | None]] = []
        for o in spec.overrides:
            settings = None
            if not o.exclude:
                settings = _Settings(
                    o.fixed_quantity,
                    base.execution_ratio if o.execution_ratio is None else o.execution_ratio,
                    base.safety_stock if o.safety_stock is None else o.safety_stock,
                    base.threshold if o.out_of_stock_threshold is None else o.out_of_stock_threshold,
                    o.rounding or base.rounding,
                    base.max_quantity if o.max_quantity is None else o.max_quantity,
                )
            self.overrides.append((_patterns(o.skus), settings))
        self.include = _patterns(spec.skus.include)
        self.exclude = _patterns(spec.skus.exclude)
        self._settings: dict[str, _Settings | None] = {}
        self._everything = spec.skus.include == ["*"] and not spec.skus.exclude and not spec.overrides

    def settings_for(self, sku: str) -> _Settings | None:
        """The settings for `sku`, or None when this rule does not manage it (step 2)."""
        if self._everything:
            return self.base
        try:
            return self._settings[sku]
        except KeyError:
            pass
        result: _Settings | None = None
        if self.include.match(sku) and not self.exclude.match(sku):
            result = self.base
            for pattern, settings in self.overrides:
                if pattern.match(sku):
                    result = settings
                    break
        self._settings[sku] = result
        return result

    def why_not(self, sku: str) -> str:
        if not self.include.match(sku):
            return f"{sku} matches no pattern of skus.include"
        if self.exclude.match(sku):
            return f"{sku} matches skus.exclude"
        return f"{sku} matches an exclude override"


# --------------------------------------------------------------------------- the computation


def _records(found: SkuStock) -> Sequence[StockRecord]:
    return (found,) if isinstance(found, StockRecord) else found


class _Stock:
    """Stock records per SKU, and the Warehouse names each (source, location) maps to. A SKU with one
    record keeps it without a list around it: a plan of a million SKUs would otherwise build (and
    free) a million lists."""

    def __init__(
        self,
        stock: Sequence[StockRecord] | Mapping[str, SkuStock],
        warehouses: Sequence[Warehouse],
        skus: frozenset[str] | None,
    ) -> None:
        self.where: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for w in warehouses:
            self.where[w.spec.source_ref.name][w.spec.location_id].append(w.name)
        self.by_sku: Mapping[str, SkuStock]
        if isinstance(stock, Mapping):
            self.by_sku = stock if skus is None else {k: stock[k] for k in skus if k in stock}
            return
        by_sku: dict[str, StockRecord | list[StockRecord]] = {}
        get = by_sku.get
        for r in stock if skus is None else (r for r in stock if r.sku in skus):
            found = get(r.sku)
            if found is None:
                by_sku[r.sku] = r
            elif isinstance(found, StockRecord):
                by_sku[r.sku] = [found, r]
            else:
                found.append(r)
        self.by_sku = by_sku


def _fmt(numerator: int) -> str:
    """numerator / SCALE as an exact decimal."""
    sign = "-" if numerator < 0 else ""
    whole, frac = divmod(abs(numerator), SCALE)
    return f"{sign}{whole}" + (f".{frac:04d}".rstrip("0") if frac else "")


class _Feed:
    """One distinct feed of slots: rule, contributing candidates and their ratios, cap, preferred flag."""

    def __init__(
        self,
        rule: _Rule,
        ratios: dict[str, int],
        unready: frozenset[str],
        store_max: int,
        preferred: bool,
        stock: _Stock,
    ) -> None:
        self.rule = rule
        # An unready Warehouse contributes nothing; a slot it alone could feed is held, never zeroed.
        self.unready = sorted(n for n in ratios if n in unready)
        self.held_key = _held_key("unreadyWarehouse", self.unready)
        ratios = {n: r for n, r in ratios.items() if n not in unready}
        self.ratios = ratios
        self.store_max = store_max
        self.preferred = preferred
        self.by_sku = stock.by_sku
        # source -> location -> [(Warehouse, ratio)]: only the candidates of this feed.
        self.where: dict[str, dict[str, list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
        for source, locations in stock.where.items():
            for location, names in locations.items():
                for name in names:
                    if name in ratios:
                        self.where[source][location].append((name, ratios[name]))

    def pool(self, sku: str) -> int:
        """Step 5's pool of `sku`: the enabled, non-negative stock of every contributing location."""
        where = self.where
        return sum(
            max(r.available, 0) * len(where.get(r.source, {}).get(r.location, ()))
            for r in _records(self.by_sku.get(sku, []))
            if r.enabled
        )

    def decide(self, sku: str, s: _Settings, steps: list[str] | None) -> tuple[int, str]:
        """(desired, reason) of `sku` (HELD / UNMATCHED as desired for slots left alone), steps 1 and 3-9."""
        cap = self.store_max if s.max_quantity is None else min(s.max_quantity, self.store_max)
        if s.fixed is not None:
            value = min(s.fixed, cap)
            if steps is not None:
                steps.append(f"3. fixedQuantity override: {s.fixed}")
                steps.append(f"8. clamp to [0, {cap}]: {value}")
            return value, "fixed" if value == s.fixed else "clamp"
        if steps is not None:
            steps.append("3. no fixedQuantity override")
            if self.unready:
                steps.append(f"1. not Ready, contributing nothing: {', '.join(self.unready)}")
        found = self.by_sku.get(sku)
        if found is None:
            if steps is not None:
                steps.append(f"1. no source knows {sku}: unmatched, left alone")
            return UNMATCHED, "unmatched"
        records = (found,) if isinstance(found, StockRecord) else found
        where = self.where
        pool = 0
        weighted = 0
        contributing = 0
        continues: list[str] = []
        terms: list[str] = []
        for r in records:
            locations = where.get(r.source)
            if locations is None:
                continue
            for name, ratio in locations.get(r.location, ()):
                if not r.enabled:
                    if steps is not None:
                        steps.append(f"1. {name}: {sku} is disabled there, does not count")
                    continue
                contributing += 1
                available = r.available if r.available > 0 else 0
                pool += available
                weighted += available * ratio
                if r.continue_selling:
                    continues.append(name)
                if steps is not None:
                    steps.append(f"1. {name} contributes: available {r.available}, ratio {ratio}%")
                    terms.append(f"{available} x {ratio}%")
        if not contributing and self.unready:
            if steps is not None:
                steps.append(f"1. no Ready warehouse stocks {sku}; unready ones might: held, nothing pushed")
            return HELD, self.held_key
        if not contributing:
            if steps is not None:
                candidates = ", ".join(sorted(self.ratios)) or "no warehouse"
                steps.append(
                    f"1. no contributing warehouse ({candidates}) stocks {sku} enabled => 0 (noSource)"
                )
            return 0, "noSource"
        if continues and self.rule.spec.continue_selling.honor:
            value = min(self.rule.spec.continue_selling.quantity, self.store_max)
            if steps is not None:
                steps.append(
                    f"4. continue selling ({', '.join(continues)}): "
                    f"{self.rule.spec.continue_selling.quantity}, capped by the store's maxQuantity "
                    f"{self.store_max}: {value}"
                )
            return value, "continueSelling"
        if steps is not None:
            honor = self.rule.spec.continue_selling.honor
            steps.append(
                "4. continue selling: "
                + ("no contributing warehouse says so" if honor else "not honored by the rule")
            )
        if pool <= s.threshold:
            if steps is not None:
                steps.append(f"5. pool = {pool} <= outOfStockThreshold {s.threshold}: 0")
            return 0, "threshold"
        numerator = weighted * s.execution_ratio - s.safety_stock * SCALE
        if s.rounding == "Down":
            rounded = numerator // SCALE
        elif s.rounding == "Up":
            rounded = -(-numerator // SCALE)
        else:
            rounded = (numerator + SCALE // 2) // SCALE
        value = rounded if rounded > 0 else 0  # min/max calls: a tenth of a unique SKU's planning
        if value > cap:
            value = cap
        reason = "ratio" if value == rounded else "clamp"
        low = self.rule.spec.low_stock
        if steps is not None:
            steps.append(f"5. pool = {pool} > outOfStockThreshold {s.threshold}")
            steps.append(
                f"6. raw = ({' + '.join(terms)} = {_fmt(weighted * 100)}) x {s.execution_ratio}%"
                f" - safetyStock {s.safety_stock} = {_fmt(numerator)}"
            )
            steps.append(f"7. rounding {s.rounding}: {rounded}")
            steps.append(f"8. clamp to [0, {cap}]: {value}")
        if low is not None and pool <= low.threshold and not self.preferred and value > 0:
            if steps is not None:
                steps.append(
                    f"9. pool {pool} <= lowStock.threshold {low.threshold}: only {low.preferred_store}"
                    " keeps stock: 0"
                )
            return 0, "lowStock"
        if steps is not None:
            steps.append(
                "9. lowStock: "
                + (
                    "not configured"
                    if low is None
                    else f"{low.preferred_store} is the preferred store"
                    if self.preferred
                    else f"pool {pool} > threshold {low.threshold}"
                    if pool > low.threshold
                    else "nothing to take away"
                )
            )
        return value, reason


def _held_key(cause: str, warehouses: Sequence[str], location: str = "") -> str:
    """A held outcome's reason: what `_held_slots` turns back into a HeldSlots record."""
    return f"{cause}|{','.join(warehouses)}|{location}"


def _held_slots(store: str, key: str, count: int) -> HeldSlots:
    cause, names, location = key.split("|")
    return HeldSlots(store, cause, tuple(names.split(",")), count, location)


@dataclass(frozen=True, slots=True)
class _Held:
    """A channel warehouse whose every slot is held: a Warehouse feeding it is missing, or two
    Warehouses feeding it are one location (docs/rules.md, "Held slots")."""

    key: str


_Owner = tuple[int, _Settings, tuple[int, ...]]
# One slot's outcome, shared by every (store, channel warehouse) with the same feeds: the owning rule's
# column appenders, desired (or HELD / UNMATCHED / _SKIP), reason, younger matching rules, owning rule.
_Outcome = tuple[
    Callable[[int], None], Callable[[int], None], Callable[[str], None], int, str, tuple[int, ...], int
]
_SKIP: Final = -3  # no rule owns the SKU here, or the owner leaves this channel warehouse alone


class _StorePlan:
    """One store: the rules selecting it (oldest first), SKU ownership and each channel warehouse's feed.
    The planner is passed to each call, not kept: a store plan referring back to the planner that holds
    it would keep the planner's caches (a million entries) alive until the next cyclic collection."""

    def __init__(self, store: Store, rules: list[tuple[int, _Rule]]) -> None:
        self.store = store
        self.rule_index = tuple(i for i, _ in rules)
        self.rules = [r for _, r in rules]

    def owner(self, sku: str) -> _Owner | None:
        """(owning rule position, its settings, younger matching positions): docs/rules.md, step 2."""
        if len(self.rules) == 1:  # the common case, on the path of every SKU
            only = self.rules[0].settings_for(sku)
            return None if only is None else (0, only, ())
        owner: tuple[int, _Settings] | None = None
        younger: list[int] = []
        for pos, rule in enumerate(self.rules):
            settings = rule.settings_for(sku)
            if settings is None:
                continue
            if owner is None:
                owner = (pos, settings)
            else:
                younger.append(pos)
        return None if owner is None else (owner[0], owner[1], tuple(younger))

    def outcomes(self, planner: _Planner, cw: str) -> tuple[dict[str, _Outcome], list[_Feed | _Held | None]]:
        """The outcome cache of channel warehouse `cw`, shared with every slot fed the same way."""
        feeds = [
            None if isinstance(f, str) else f
            for f in (self.resolve(planner, p, cw) for p in range(len(self.rules)))
        ]
        key = (self.rule_index, tuple(feeds))
        shared = planner.outcomes.get(key)
        if shared is None:
            shared = planner.outcomes[key] = ({}, feeds)
        return shared

    def outcome(
        self, planner: _Planner, cache: dict[str, _Outcome], feeds: list[_Feed | _Held | None], sku: str
    ) -> _Outcome:
        own = self.owner(sku)
        columns = planner.columns
        result: _Outcome
        if own is None:
            result = (*columns[0], _SKIP, "", (), -1)
        else:
            pos, settings, younger = own
            r = self.rule_index[pos]
            feed = feeds[pos]
            if feed is None:
                desired, reason = _SKIP, ""
            elif isinstance(feed, _Held):
                desired, reason = HELD, feed.key
            else:
                desired, reason = feed.decide(sku, settings, None)
            others = tuple(self.rule_index[y] for y in younger) if younger else ()  # once per SKU
            result = (*columns[r], desired, reason, others, r)
        result = planner.distinct.setdefault(result, result)
        cache[sku] = result
        return result

    def refs(self, planner: _Planner, cw: str) -> tuple[list[str] | None, str]:
        """The Warehouse names mapped to `cw` (None: every warehouse the rule selects), or why unmanaged."""
        spec = self.store.spec
        status = planner.world.channel_warehouse_status.get((self.store.name, cw))
        if status in _NOT_MANAGED_STATUSES:
            return [], f"the platform reports channel warehouse {cw} {status}: not managed"
        if not spec.warehouses:
            return None, ""
        if not spec.multi_warehouse and len(spec.warehouses) == 1:
            mapping: ChannelWarehouseMapping | None = spec.warehouses[0]  # its one slot, whatever id
        else:
            mapping = next((m for m in spec.warehouses if m.channel_warehouse_id == cw), None)
        if mapping is None:
            return [], f"channel warehouse {cw} is not mapped in Store {self.store.name}: not managed"
        if not mapping.enabled:
            return [], f"channel warehouse {cw} is enabled: false in Store {self.store.name}: not managed"
        return list(mapping.warehouse_refs), ""

    def resolve(self, planner: _Planner, pos: int, cw: str) -> _Feed | _Held | str:
        """The feed of channel warehouse `cw` under rule `pos`; _Held when no quantity of it can be
        trusted; why not managed otherwise."""
        refs, why = self.refs(planner, cw)
        if why:
            return why
        rule = self.rules[pos]
        known = planner.warehouses
        missing = rule.named_missing if refs is None else tuple(n for n in refs if n not in known)
        if missing:  # nothing is known of its stock: never push a quantity computed without it
            return _Held(_held_key("missingWarehouse", sorted(set(missing))))
        selected = {n: r for n, r in rule.ratios.items() if refs is None or n in refs}
        if not selected:  # e.g. a selector matching nothing: never zero a store for a typo
            return f"rule {rule.name} selects no Warehouse feeding channel warehouse {cw}: not managed"
        twice = next(
            (d for d in rule.selection.duplicate_locations if not selected.keys().isdisjoint(d[1])), None
        )
        if twice is not None:
            return _Held(_held_key("duplicateLocation", twice[1], twice[0]))
        eligible = planner.eligible
        ratios = {n: r for n, r in selected.items() if n in eligible}
        store_max = self.store.spec.max_quantity
        low = rule.spec.low_stock
        preferred = low is not None and low.preferred_store == self.store.name
        key = (self.rule_index[pos], tuple(sorted(ratios.items())), store_max, preferred)
        feeds = planner.feeds
        feed = feeds.get(key)
        if feed is None:
            feed = feeds[key] = _Feed(
                rule, ratios, planner.world.unready_warehouses, store_max, preferred, planner.stock
            )
        return feed


class _Planner:
    """A world prepared for planning: rules oldest first, stores, eligible warehouses, stock per SKU."""

    def __init__(self, world: World, skus: frozenset[str] | None = None) -> None:
        """`skus`: only these SKUs will be planned (the stock of others is not indexed)."""
        self.world = world
        ordered = sorted(world.rules, key=lambda r: (r.metadata.creation_timestamp or "", r.name))
        self.rules = [_Rule(r, world.stores, world.warehouses) for r in ordered]
        self.warehouses = {w.name: w for w in world.warehouses}
        self.eligible = frozenset(
            w.name for w in world.warehouses if w.spec.enabled and w.spec.type != "Platform"
        )
        self.stock = _Stock(world.stock, world.warehouses, skus)
        self.feeds: dict[tuple[object, ...], _Feed] = {}
        self.outcomes: dict[tuple[object, ...], tuple[dict[str, _Outcome], list[_Feed | _Held | None]]] = {}
        # Each distinct outcome once, shared by every SKU that has it (quantities repeat): the outcome
        # caches then hold a million SKUs in their dict entries alone.
        self.distinct: dict[_Outcome, _Outcome] = {}
        self.stores: dict[str, _StorePlan] = {}
        for store in world.stores:
            selecting = [(i, r) for i, r in enumerate(self.rules) if store.name in r.stores]
            if selecting:
                self.stores[store.name] = _StorePlan(store, selecting)
        self.index = [array("q") for _ in self.rules]
        self.desired = [array("q") for _ in self.rules]
        self.reasons: list[list[str]] = [[] for _ in self.rules]
        self.columns = [
            (i.append, d.append, r.append)
            for i, d, r in zip(self.index, self.desired, self.reasons, strict=True)
        ] or [(_ignore, _ignore, _ignore)]

    def allocation(self) -> tuple[dict[str, Fraction], list[set[str]]]:
        """Pool allocation ratio per warehouse, and the warehouses each rule draws on.

        Each channel warehouse of each store draws on a warehouse at the ratio of the rule owning the
        SKU; rules sharing a store own disjoint SKUs, so a slot counts its highest ratio, not their sum.
        """
        total: dict[str, Fraction] = defaultdict(Fraction)
        drawn: list[set[str]] = [set() for _ in self.rules]
        for sp in self.stores.values():
            for cw in [m.channel_warehouse_id for m in sp.store.spec.warehouses] or [""]:
                refs, why = sp.refs(self, cw)
                if why:
                    continue
                highest: dict[str, int] = {}
                for pos, rule in enumerate(sp.rules):
                    for name, ratio in rule.ratios.items():
                        if name in self.eligible and (refs is None or name in refs):
                            highest[name] = max(highest.get(name, 0), ratio)
                            drawn[sp.rule_index[pos]].add(name)
                for name, ratio in highest.items():
                    total[name] += Fraction(ratio, 100)
        return dict(total), drawn


def _ignore(_: object) -> None:
    """The column appender of a world without rules (never called: no rule, no outcome to record)."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector: planning allocates millions of acyclic objects, and generational
    passes over a million-listing world would otherwise cost more than the plan itself."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compute_plan(world: World, skus: Collection[str] | None = None) -> Plan:
    """Plan every slot of `world.listings` (only those of `skus` when given: the webhook path)."""
    with gc_paused():
        return _compute_plan(world, skus)


def _compute_plan(world: World, skus: Collection[str] | None) -> Plan:
    wanted = None if skus is None else frozenset(skus)
    planner = _Planner(world, wanted)
    rules = planner.rules
    listings = world.listings
    unmatched: list[dict[str, int]] = [defaultdict(int) for _ in rules]
    held: list[dict[tuple[str, str], int]] = [defaultdict(int) for _ in rules]
    not_writable: list[dict[tuple[str, str], int]] = [defaultdict(int) for _ in rules]
    conflicted: dict[tuple[int, str, int], int] = defaultdict(int)  # (younger, store, owner) -> slots
    per_store: dict[str, dict[str, tuple[dict[str, _Outcome], list[_Feed | _Held | None]]]] = {
        name: {} for name in planner.stores
    }
    slots = (
        enumerate(listings) if wanted is None else [(i, s) for i, s in enumerate(listings) if s.sku in wanted]
    )
    for i, slot in slots:
        by_cw = per_store.get(slot.store)
        if by_cw is None:
            continue
        sku = slot.sku
        shared = by_cw.get(slot.channel_warehouse_id)
        if shared is None:
            shared = by_cw[slot.channel_warehouse_id] = planner.stores[slot.store].outcomes(
                planner, slot.channel_warehouse_id
            )
        outcome = shared[0].get(sku)
        if outcome is None:
            outcome = planner.stores[slot.store].outcome(planner, shared[0], shared[1], sku)
        add_index, add_desired, add_reason, desired, reason, younger, r = outcome
        if younger:
            for y in younger:
                conflicted[(y, slot.store, r)] += 1
        if desired == _SKIP:
            continue
        if not slot.writable:
            not_writable[r][(slot.store, slot.status)] += 1
            continue
        if desired < 0:
            if desired == HELD:
                held[r][(slot.store, reason)] += 1
            else:
                unmatched[r][slot.store] += 1
            continue
        add_index(i)
        add_desired(desired)
        add_reason(reason)
    allocation, drawn = planner.allocation()
    conflicts: list[list[Conflict]] = [[] for _ in rules]
    for (y, store, owner), count in sorted(conflicted.items()):
        conflicts[y].append(Conflict(store, rules[owner].name, count))
    platform = {s.name: s.spec.platform for s in world.stores}
    plans = {
        rule.name: RulePlan(
            rule=rule.name,
            rows=PlanRows(rule.name, listings, planner.index[r], planner.desired[r], planner.reasons[r]),
            unmatched=dict(unmatched[r]),
            holds=[_held_slots(store, key, n) for (store, key), n in sorted(held[r].items())],
            conflicts=conflicts[r],
            oversell_risk={w: allocation[w] for w in sorted(drawn[r]) if allocation[w] > 1},
            not_writable=[
                NotWritable(store, platform.get(store, ""), status, n)
                for (store, status), n in sorted(not_writable[r].items())
            ],
            selection=rule.selection,
        )
        for r, rule in enumerate(rules)
    }
    return Plan(plans, allocation, listings)


def explain(world: World, rule: str, sku: str) -> list[Explanation]:
    """Step by step, why each slot of `sku` in the stores of `rule` gets its quantity."""
    planner = _Planner(world, frozenset({sku}))
    target = next((r for r in planner.rules if r.name == rule), None)
    if target is None:
        raise KeyError(f"no SyncRule named {rule!r}")
    out: list[Explanation] = []
    for slot in world.listings:
        if slot.sku != sku or slot.store not in target.stores:
            continue
        sp = planner.stores[slot.store]
        pos = sp.rules.index(target)
        steps: list[str] = []
        desired: int | None = None
        settings = target.settings_for(sku)
        own = sp.owner(sku)
        found = sp.resolve(planner, pos, slot.channel_warehouse_id)
        if settings is None:
            reason = "notManaged"
            steps.append(f"2. not managed by {rule}: {target.why_not(sku)}")
        elif own is not None and own[0] != pos:
            reason = "conflict"
            steps.append(
                f"2. owned by the older rule {sp.rules[own[0]].name} (the oldest matching rule owns a SKU): "
                f"not pushed by {rule}"
            )
        elif isinstance(found, str):
            reason = "notManaged"
            steps.append(f"2. {found}")
        elif not slot.writable:
            reason = "notManaged"
            why = NotWritable(slot.store, sp.store.spec.platform, slot.status, 1).reason
            steps.append(f"2. {why}: not managed")
        elif isinstance(found, _Held):
            reason = "held"
            steps.append(f"1. held, nothing pushed: {_held_slots(slot.store, found.key, 1).message}")
        else:
            steps.extend(_candidates(planner, sp, pos, slot.channel_warehouse_id, found))
            steps.append(f"2. managed: {sku} is selected by {rule}, which owns it in {slot.store}")
            value, reason = found.decide(sku, settings, steps)
            desired = value if value >= 0 else None
            reason = "held" if value == HELD else reason
        steps.append(f"=> {'left alone' if desired is None else desired} ({reason}); live {slot.quantity}")
        out.append(
            Explanation(
                rule, slot.store, slot.channel_warehouse_id, sku, slot.quantity, desired, reason, tuple(steps)
            )
        )
    return out


def _candidates(planner: _Planner, sp: _StorePlan, pos: int, cw: str, feed: _Feed) -> list[str]:
    """Step 1's first half: which Warehouses could feed the slot, and why the others cannot."""
    refs, _ = sp.refs(planner, cw)
    rule = sp.rules[pos]
    names = sorted(rule.ratios if refs is None else refs)
    lines = [f"1. {sp.store.name} channel warehouse {cw} is fed by: {', '.join(names) or 'nothing'}"]
    for name in names:
        w = planner.warehouses.get(name)
        if w is None:
            lines.append(f"1. {name}: no such Warehouse, ignored")
        elif name not in rule.ratios:
            lines.append(f"1. {name}: not selected by rule {rule.name}, ignored")
        elif not w.spec.enabled:
            lines.append(f"1. {name}: enabled: false, ignored")
        elif w.spec.type == "Platform":
            lines.append(f"1. {name}: type Platform (platform-fulfilled), never counted")
    return lines


def slot_pools(world: World, rows: Sequence[PlanRow]) -> list[int]:
    """Per row of `world`'s plan, the pool (step 5) of the warehouses feeding its slot; 0 for a slot
    the rule does not feed from stock (held, fixed, not managed)."""
    planner = _Planner(world, frozenset(r.sku for r in rows))
    pools = []
    for row in rows:
        store_plan = planner.stores[row.store]
        position = next(p for p, r in enumerate(store_plan.rules) if r.name == row.rule)
        feed = store_plan.resolve(planner, position, row.channel_warehouse_id)
        pools.append(feed.pool(row.sku) if isinstance(feed, _Feed) else 0)
    return pools
