"""The sandbox's Lazada sellers: their tokens, warehouses and sellable stock, indexed so a request costs
O(page), plus a log of every Lazada request for tests to read."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from typing import Any

from ..providers.transport import TokenBucket
from .config import LazadaConfig, LazadaSeller

CREATED_BASE_MS = 1_700_000_000_000  # products without created_time: one second apart from here
GENERATED_SKU_ID = 1_000_000_000  # generated SKU k has SkuId GENERATED_SKU_ID + k, product p item_id + p


@dataclass(slots=True)
class LzSku:
    sku_id: int
    seller_sku: str
    item_id: int
    stock: dict[str, int]  # warehouseCode -> sellable quantity, every warehouse of the seller
    fbl: int | None = None  # sellable quantity Lazada holds in its own warehouse (not writable)

    def json(self) -> dict[str, Any]:
        """As /products/get shows a SKU: multiWarehouseInventories leaves out empty warehouses."""
        listed = [
            {
                "warehouseCode": code,
                "sellableQuantity": q,
                "quantity": q,
                "totalQuantity": q,
                "withholdQuantity": 0,
                "occupyQuantity": 0,
            }
            for code, q in self.stock.items()
            if q > 0
        ]
        fbl = [] if self.fbl is None else [{"sellableQuantity": self.fbl, "totalQuantity": self.fbl}]
        total = sum(self.stock.values()) + (self.fbl or 0)
        return {
            "SkuId": self.sku_id,
            "SellerSku": self.seller_sku,
            "Status": "active",
            "quantity": total,
            "Available": total,
            "multiWarehouseInventories": listed,
            "fblWarehouseInventories": fbl,
            "channelInventories": [],
        }


@dataclass(slots=True)
class LzProduct:
    item_id: int
    status: str
    created_ms: int
    skus: dict[int, LzSku]
    updated_ms: int = 0  # 0: never updated since it was created

    @property
    def updated(self) -> int:
        return self.updated_ms or self.created_ms

    def json(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "status": self.status,
            "created_time": str(self.created_ms),
            "updated_time": str(self.updated),
            "skus": [s.json() for s in self.skus.values()],
        }


@dataclass(slots=True)
class LzSeller:
    seller_id: str
    access_token: str
    refresh_token: str
    expire_at: float  # unix time the access token expires
    lifetime: int  # seconds a refreshed access token lives
    warehouses: list[str]
    increase_only: bool
    limiter: TokenBucket
    retired_access: set[str] = field(default_factory=set)  # replaced by a refresh
    retired_refresh: set[str] = field(default_factory=set)  # used once: a second use is refused
    products: dict[int, LzProduct] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)  # item ids by created time, then as configured
    times: list[int] = field(default_factory=list)  # created ms of each product in order (bisect)
    skus: dict[int, LzSku] = field(default_factory=dict)
    by_seller_sku: dict[str, LzSku] = field(default_factory=dict)

    @classmethod
    def build(cls, cfg: LazadaSeller, index: int) -> LzSeller:
        seller = cls(
            seller_id=cfg.seller_id or str(index),
            access_token=cfg.access_token,
            refresh_token=cfg.refresh_token,
            expire_at=time.time() + cfg.expires_in,
            lifetime=cfg.expires_in or 30 * 86400,
            warehouses=list(dict.fromkeys(cfg.warehouses)),
            increase_only=cfg.increase_only,
            limiter=TokenBucket(cfg.requests_per_second, max(1.0, cfg.requests_per_second)),
        )
        configured = []
        for n, p in enumerate(cfg.products):
            created = p.created_time if p.created_time is not None else CREATED_BASE_MS + 1000 * n
            product = LzProduct(p.item_id, p.status, created, {})
            for s in p.skus:
                stock = dict.fromkeys(seller.warehouses, 0)
                stock.update({i.warehouse_code: i.sellable_quantity for i in s.multi_warehouse_inventories})
                product.skus[s.sku_id] = LzSku(
                    s.sku_id, s.seller_sku, p.item_id, stock, s.fbl_sellable_quantity
                )
            configured.append(product)
        for product in sorted(configured, key=lambda p: p.created_ms):  # stable: ties as configured
            seller.add(product)
        if cfg.generate is not None:
            base = max(CREATED_BASE_MS, seller.times[-1] + 1000 if seller.times else 0)
            per = cfg.generate.skus_per_product
            for n in range(cfg.generate.products):
                item_id = GENERATED_SKU_ID + n
                skus = {
                    GENERATED_SKU_ID + k: LzSku(
                        GENERATED_SKU_ID + k,
                        cfg.generate.seller_sku.format(k),
                        item_id,
                        dict.fromkeys(seller.warehouses, cfg.generate.quantity),
                    )
                    for k in range(n * per, (n + 1) * per)
                }
                seller.add(LzProduct(item_id, "Active", base + 1000 * n, skus))
        return seller

    def add(self, product: LzProduct) -> None:
        if self.times and product.created_ms < self.times[-1]:
            raise ValueError(f"item {product.item_id}: added out of created_time order")
        self.products[product.item_id] = product
        self.order.append(product.item_id)
        self.times.append(product.created_ms)
        for sku in product.skus.values():
            self.skus[sku.sku_id] = sku
            self.by_seller_sku[sku.seller_sku] = sku

    def created_between(self, lo_ms: int, hi_ms: int) -> list[int]:
        """Item ids created in [lo_ms, hi_ms], in listing order."""
        return self.order[bisect.bisect_left(self.times, lo_ms) : bisect.bisect_right(self.times, hi_ms)]

    def json(self) -> dict[str, Any]:
        """Every slot, empty warehouses included (what a test compares with the plan)."""
        return {
            "warehouses": list(self.warehouses),
            "increaseOnly": self.increase_only,
            "products": [
                {
                    "item_id": p.item_id,
                    "status": p.status,
                    "skus": [
                        {"SkuId": s.sku_id, "SellerSku": s.seller_sku, "stock": dict(s.stock), "fbl": s.fbl}
                        for s in p.skus.values()
                    ],
                }
                for p in (self.products[i] for i in self.order)
            ],
        }


class LazadaWorld:
    """Every configured seller, found by id or by its current access token, and the request log."""

    def __init__(self, config: LazadaConfig | None) -> None:
        self.config = config
        self.sellers: dict[str, LzSeller] = {}
        for n, s in enumerate(config.sellers if config is not None else []):
            seller = LzSeller.build(s, n)
            self.sellers[seller.seller_id] = seller
        # one entry per request: operation, seller id ("" when unknown), envelope code, SKUs written
        self.log: list[dict[str, Any]] = []

    def by_access_token(self, token: str) -> LzSeller | None:
        return next((s for s in self.sellers.values() if token and s.access_token == token), None)

    def by_refresh_token(self, token: str) -> tuple[LzSeller | None, bool]:
        """The seller whose current refresh token this is, and whether it is one already used."""
        for s in self.sellers.values():
            if token and s.refresh_token == token:
                return s, False
            if token in s.retired_refresh:
                return s, True
        return None, False

    def snapshot(self) -> dict[str, Any]:
        return {seller_id: s.json() for seller_id, s in self.sellers.items()}
