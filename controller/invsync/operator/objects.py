"""The status of the Stores, Warehouses and InventorySources a sync read, and when to write it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..api import InventorySource, Store, Warehouse
from ..engine.records import ChannelWarehouse, StockRecord
from .conditions import MULTI_WAREHOUSE, READY, Cond, merge
from .reasons import Reason
from .state import ObjectStatus, Problem


def source_failed(src: InventorySource, message: str, reason: str) -> ObjectStatus:
    return ObjectStatus("InventorySource", src.name, [Cond(READY, "False", reason, message)], {})


def with_refusal(obs: ObjectStatus, message: str) -> ObjectStatus:
    """A Store's status once the platform refused its per-warehouse writes."""
    conds = [
        Cond(READY, "False", Reason.NOT_WHITELISTED, message),
        Cond(MULTI_WAREHOUSE, "False", Reason.NOT_WHITELISTED, message),
    ]
    return replace(obs, conditions=conds)


def store_status(
    store: Store,
    problem: Problem | None,
    warehouses: Sequence[ChannelWarehouse],
    refused: str | None,
    listings: int,
) -> ObjectStatus:
    """A Store's Ready and MultiWarehouse conditions, and what the platform reported for it."""
    multi = (
        Cond(MULTI_WAREHOUSE, "False", Reason.NOT_WHITELISTED, refused)
        if refused is not None
        else Cond(MULTI_WAREHOUSE, "True", Reason.ENABLED, "per-warehouse quantities are pushed")
        if store.spec.multi_warehouse
        else Cond(
            MULTI_WAREHOUSE, "False", Reason.DISABLED, "multiWarehouse is false: one quantity per listing"
        )
    )
    if problem is not None:
        return ObjectStatus(
            "Store", store.name, [Cond(READY, "False", problem.reason, problem.message), multi], {}
        )
    ready = (
        Cond(READY, "False", Reason.NOT_WHITELISTED, refused)
        if refused is not None
        else Cond(
            READY,
            "True",
            Reason.CONNECTED,
            f"{listings} listings in {len(warehouses)} channel warehouses",
        )
    )
    cws = [{"id": w.id, "name": w.name, "type": w.type, "effectStatus": w.effect_status} for w in warehouses]
    return ObjectStatus("Store", store.name, [ready, multi], {"channelWarehouses": cws, "listings": listings})


def warehouse_status(wh: Warehouse, problem: Problem | None, records: Iterable[StockRecord]) -> ObjectStatus:
    if problem is not None:
        return ObjectStatus("Warehouse", wh.name, [Cond(READY, "False", problem.reason, problem.message)], {})
    mine = [r for r in records if r.location == wh.spec.location_id and r.enabled]
    return ObjectStatus(
        "Warehouse",
        wh.name,
        [Cond(READY, "True", Reason.AVAILABLE, f"{len(mine)} SKUs at location {wh.spec.location_id}")],
        {"skus": len({r.sku for r in mine}), "available": sum(max(r.available, 0) for r in mine)},
    )


def object_patch(
    old: Mapping[str, Any] | None,
    obs: ObjectStatus,
    generation: int | None,
    now: datetime,
    *,
    refresh_after: timedelta | None = None,
) -> dict[str, Any] | None:
    """Status patch for a Store / Warehouse / InventorySource, or None when nothing changed.

    lastFetchTime alone does not justify a write unless it is older than `refresh_after`.
    """
    old = dict(old or {})
    new: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge(old.get("conditions"), obs.conditions, generation=generation, now=now),
        **obs.fields,
    }
    volatile = {"lastFetchTime"}
    same = all(old.get(k) == v for k, v in new.items() if k not in volatile)
    if same and "lastFetchTime" not in new:
        return None
    if same:
        stamp = old.get("lastFetchTime")
        if stamp is not None:
            age = now - datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
            if refresh_after is None or age < refresh_after:
                return None
    return new
