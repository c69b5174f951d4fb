"""The pure engine: every quantity, plan, diff and explanation. No I/O, no Kubernetes.

Public API (the operator and the CLI code against exactly these):

- ``World(rules, stores, warehouses, stock, listings, unready_warehouses=frozenset(),
  channel_warehouse_status={})``; ``channel_warehouse_status`` maps (store, channelWarehouseId) to
  ENABLED | DISABLED | RESTRICTED.
- ``compute_plan(world, skus=None) -> Plan``: ``Plan.rules[name] -> RulePlan``, ``Plan.allocation``
  (warehouse -> Fraction: sum of ratio/100 over every (rule, store, channel warehouse) drawing on it).
  ``RulePlan.rows`` (a Sequence[PlanRow], materialised lazily), ``unmatched`` and ``held`` (store ->
  slots left alone: SKU in no source / fed by an unready warehouse), ``conflicts``, ``oversell_risk``,
  ``counts() -> {store: StoreCounts}``.
- ``explain(world, rule, sku) -> list[Explanation]``: one per listing slot of the SKU in the rule's stores.
- ``safety_hold(rows, policy) -> Hold | None``; ``push_batches(rows, order) -> list[ProductBatch]``.
- ``diff_plans(base, head) -> Diff`` with ``rows`` (DiffRow: store, channel_warehouse_id, sku, before,
  after, delta) and ``stores`` (StoreChange: up, down, to_zero, units_moved).
"""

from .compute import REASONS, Explanation, Plan, PlanRows, RulePlan, StoreCounts, World, compute_plan, explain
from .diff import Diff, DiffRow, StoreChange, diff_plans
from .push import push_batches, safety_hold
from .records import Conflict, Hold, Listing, PlanRow, ProductBatch, SlotUpdate, StockRecord

__all__ = [
    "REASONS",
    "Conflict",
    "Diff",
    "DiffRow",
    "Explanation",
    "Hold",
    "Listing",
    "Plan",
    "PlanRow",
    "PlanRows",
    "ProductBatch",
    "RulePlan",
    "SlotUpdate",
    "StockRecord",
    "StoreChange",
    "StoreCounts",
    "World",
    "compute_plan",
    "diff_plans",
    "explain",
    "push_batches",
    "safety_hold",
]
