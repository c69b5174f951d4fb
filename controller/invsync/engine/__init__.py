"""The pure engine: every quantity, plan, diff and explanation. No I/O, no Kubernetes.

Public API (the operator and the CLI code against exactly these):

- ``World(rules, stores, warehouses, stock, listings, unready_warehouses=frozenset(),
  channel_warehouse_status={})``; ``channel_warehouse_status`` maps (store, channelWarehouseId) to
  ENABLED | DISABLED | RESTRICTED (DISABLED/RESTRICTED: not managed).
- ``compute_plan(world, skus=None) -> Plan``. ``Plan.rules[name] -> RulePlan`` (oldest rule first),
  ``Plan.allocation`` (warehouse -> Fraction: over every (store, channel warehouse) drawing on it, the
  ratio/100 of the rules selecting it; rules sharing a store own disjoint SKUs, so the highest counts,
  not their sum: two stores at 60 -> 6/5), ``Plan.listings``, ``Plan.effective()``.
- ``selection(rule, stores, warehouses) -> Selection``: the Stores and Warehouses (with ratios) a rule
  selects, the Stores and Warehouses it (or a selected Store's mapping) names that do not exist, and
  the selectors matching nothing (docs/rules.md, "Selection").
- ``RulePlan``: ``rows`` (a lazy Sequence[PlanRow] over the world's listings; ``rows.slots()`` yields
  (listing index, desired) without building rows), ``unmatched`` (store -> slots whose SKU no source
  knows: left alone), ``holds`` (HeldSlots(store, cause, warehouses, count): managed slots never
  pushed because a feeder is missing, not Ready or one location counted twice; ``held`` sums them
  per store), ``conflicts`` (Conflict(store, owner, count): slots an older rule owns),
  ``oversell_risk`` (warehouse -> allocation > 1 this rule draws on), ``not_writable``
  (NotWritable(store, platform, status, count): slots whose product takes no update), ``duplicate_skus``
  (store -> seller SKUs on several products), ``selection``, ``counts() -> {store: PlanCounts}``.
- A slot is not in ``rows`` when its SKU is excluded, owned by an older rule, in a channel warehouse
  not managed (Store mapping disabled or absent, platform DISABLED/RESTRICTED), fed by no Warehouse the
  rule selects, not writable, unmatched or held. ``PlanRow.reason`` is one of ``REASONS``.
- ``explain(world, rule, sku) -> list[Explanation]``: one per listing slot of the SKU in the rule's
  stores; ``Explanation.steps`` are the steps of docs/rules.md with their numbers.
- ``safety_hold(rows, policy) -> Hold | None``; ``push_batches(rows, order, listings=) -> list[ProductBatch]``
  (changed slots per (store, product), each changed SKU carrying its other slots from ``listings`` at
  their live values; DecreasesFirst: priority 0 zeroes, 1 decreases, 2 increases).
- ``diff_plans(base, head) -> Diff`` with ``rows`` (DiffRow: store, channel_warehouse_id, sku, before,
  after, delta; in listing order) and ``stores`` (StoreChange: up, down, to_zero, units_moved).
- ``risks(base, head, world) -> Risks`` (``world``: head's): ``missed_sales`` (MissedSale: a head row at
  0 with a reason in ``MISSED_SALE_REASONS`` whose step-1 pool > 0), ``over_allocated`` (OverAllocated:
  head ``allocation`` > 1, with the base ratio and the rules drawing on it), ``safety_stops``
  (SafetyStop: ``safety_hold`` of a head rule's rows under its policy); each has ``introduced``.
"""

from .compute import REASONS, Explanation, Plan, PlanCounts, PlanRows, RulePlan, World, compute_plan, explain
from .diff import (
    MISSED_SALE_REASONS,
    Diff,
    DiffRow,
    MissedSale,
    OverAllocated,
    Risks,
    SafetyStop,
    StoreChange,
    diff_plans,
    risks,
)
from .push import push_batches, safety_hold
from .records import (
    HELD_CAUSES,
    Conflict,
    HeldSlots,
    Hold,
    Listing,
    NotWritable,
    PlanRow,
    ProductBatch,
    SlotUpdate,
    StockRecord,
)
from .selection import Selection, selection

__all__ = [
    "HELD_CAUSES",
    "MISSED_SALE_REASONS",
    "REASONS",
    "Conflict",
    "Diff",
    "DiffRow",
    "Explanation",
    "HeldSlots",
    "Hold",
    "Listing",
    "MissedSale",
    "NotWritable",
    "OverAllocated",
    "Plan",
    "PlanCounts",
    "PlanRow",
    "PlanRows",
    "ProductBatch",
    "Risks",
    "RulePlan",
    "SafetyStop",
    "Selection",
    "SlotUpdate",
    "StockRecord",
    "StoreChange",
    "World",
    "compute_plan",
    "diff_plans",
    "explain",
    "push_batches",
    "risks",
    "safety_hold",
    "selection",
]
