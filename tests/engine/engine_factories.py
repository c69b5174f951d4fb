"""Terse builders of the engine's inputs, validated by the same pydantic models as manifests."""

from __future__ import annotations

from typing import Any

from invsync.api import Store, SyncRule, Warehouse
from invsync.engine import Listing, StockRecord, World, compute_plan

API = "invsync.dev/v1alpha1"


def warehouse(name: str, location: str | None = None, source: str = "src", **spec: Any) -> Warehouse:
    labels = spec.pop("labels", {})
    return Warehouse.model_validate(
        {
            "apiVersion": API,
            "kind": "Warehouse",
            "metadata": {"name": name, "labels": labels},
            "spec": {"sourceRef": {"name": source}, "locationId": location or name, **spec},
        }
    )


def store(name: str, feeds: dict[str, list[str]] | None = None, **spec: Any) -> Store:
    """A TikTok store; `feeds` maps channel warehouse ids to Warehouse names (multi-warehouse)."""
    labels = spec.pop("labels", {})
    namespace = spec.pop("namespace", "default")
    body: dict[str, Any] = {
        "platform": "tiktok",
        "shopCipher": f"C-{name}",
        "credentialsSecretRef": {"name": "t"},
    }
    if feeds is not None:
        body["multiWarehouse"] = True
        body["warehouses"] = [{"channelWarehouseId": c, "warehouseRefs": refs} for c, refs in feeds.items()]
    body.update(spec)
    return Store.model_validate(
        {
            "apiVersion": API,
            "kind": "Store",
            "metadata": {"name": name, "labels": labels, "namespace": namespace},
            "spec": body,
        }
    )


def rule(
    name: str,
    stores: list[str],
    warehouses: list[dict[str, Any]],
    created: str = "",
    store_labels: dict[str, str] | None = None,
    **spec: Any,
) -> SyncRule:
    meta: dict[str, Any] = {"name": name}
    if created:
        meta["creationTimestamp"] = created
    return SyncRule.model_validate(
        {
            "apiVersion": API,
            "kind": "SyncRule",
            "metadata": meta,
            "spec": {
                "stores": {"names": stores}
                | ({"selector": {"matchLabels": store_labels}} if store_labels is not None else {}),
                "warehouses": warehouses,
                **spec,
            },
        }
    )


def stock(location: str, sku: str, available: int, source: str = "src", **kw: Any) -> StockRecord:
    return StockRecord(source, location, sku, available, **kw)


def listing(store_name: str, sku: str, cw: str = "cw", quantity: int = 0, product: str = "") -> Listing:
    return Listing(store_name, sku, product or f"p-{sku}", f"s-{sku}-{cw}", cw, quantity)


def world(
    rules: list[SyncRule],
    stores: list[Store],
    warehouses: list[Warehouse],
    records: list[StockRecord],
    listings: list[Listing],
    **kw: Any,
) -> World:
    return World(rules, stores, warehouses, records, listings, **kw)


def desired(w: World, rule_name: str) -> dict[tuple[str, str, str], tuple[int, str]]:
    """(store, channel warehouse, sku) -> (desired, reason) of one rule's plan."""
    return {
        (r.store, r.channel_warehouse_id, r.sku): (r.desired, r.reason)
        for r in compute_plan(w).rules[rule_name].rows
    }
