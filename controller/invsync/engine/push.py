"""From a plan to platform writes: the safety hold and the per-product push batches
(docs/rules.md, "How a sync runs")."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from fractions import Fraction

from ..api.kinds import SafetyPolicy
from .records import Hold, Listing, PlanRow, ProductBatch, SlotUpdate


def safety_hold(rows: Sequence[PlanRow], policy: SafetyPolicy) -> Hold | None:
    """Hold a plan that would zero too many listings that now show stock; None when it may go."""
    showing = [r for r in rows if r.live > 0]
    return hold_of(
        len(showing), ((r.store, r.channel_warehouse_id, r.sku) for r in showing if r.desired == 0), policy
    )


def hold_of(showing: int, zeroing: Iterable[tuple[str, str, str]], policy: SafetyPolicy) -> Hold | None:
    """safety_hold from its figures: rows showing stock, and (store, channel warehouse, SKU) of those
    the plan zeroes."""
    zeroed = list(zeroing)
    # The policy is a decimal in the manifest: compare exactly, as written.
    limit = Fraction(str(policy.max_zero_fraction)) * showing
    if showing < policy.min_listings or len(zeroed) <= limit:
        return None
    zeroed.sort()
    digest = hashlib.sha256("\n".join("\t".join(k) for k in zeroed).encode()).hexdigest()
    return Hold(id=digest[:16], zeroing=len(zeroed), of=showing)


def _priority(updates: Iterable[tuple[int, int]]) -> int:
    """0: the batch zeroes a slot; 1: it lowers one; 2: increases only."""
    best = 2
    for live, desired in updates:
        if desired == 0 < live:
            return 0
        if desired < live:
            best = 1
    return best


def push_batches(rows: Iterable[PlanRow], order: str, *, listings: Iterable[Listing]) -> list[ProductBatch]:
    """Changed slots grouped per (store, product); with DecreasesFirst, zeroes and decreases lead.

    A SKU with a changed slot carries every other slot `listings` holds for it, at its live value
    (`SlotUpdate.carried`): TikTok refuses an inventory update that leaves out a warehouse assigned
    to the SKU (docs/platforms.md), so an update names all of them or none.
    """
    grouped: dict[tuple[str, str], list[PlanRow]] = {}
    changed_slots: set[tuple[str, str, str, str]] = set()
    for r in rows:
        if r.live != r.desired:
            grouped.setdefault((r.store, r.product_id), []).append(r)
            changed_slots.add((r.store, r.product_id, r.sku_id, r.channel_warehouse_id))
    changed_skus = {(store, product, sku_id) for store, product, sku_id, _ in changed_slots}
    carried: dict[tuple[str, str], list[SlotUpdate]] = {}
    for x in listings:
        if (x.store, x.product_id, x.sku_id) in changed_skus and (
            x.store,
            x.product_id,
            x.sku_id,
            x.channel_warehouse_id,
        ) not in changed_slots:
            carried.setdefault((x.store, x.product_id), []).append(
                SlotUpdate(x.product_id, x.sku_id, x.channel_warehouse_id, x.quantity, x.sku, carried=True)
            )
    batches = [
        ProductBatch(
            store=store,
            product_id=product,
            updates=tuple(
                SlotUpdate(r.product_id, r.sku_id, r.channel_warehouse_id, r.desired, r.sku) for r in changed
            )
            + tuple(carried.get((store, product), ())),
            priority=_priority((r.live, r.desired) for r in changed) if order == "DecreasesFirst" else 0,
        )
        for (store, product), changed in grouped.items()
    ]
    batches.sort(key=lambda b: b.priority)  # stable: products keep their listing order within a priority
    return batches
