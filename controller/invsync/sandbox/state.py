"""The sandbox's in-memory platforms, indexed so every request costs O(page), never O(catalogue).

Orders (products of a shop, items at a location) are append-only lists, so an offset cursor stays
valid while stock changes underneath a reader, as the platforms' opaque cursors do.
"""

from __future__ import annotations

import gc
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from ..providers.shopify import ITEM_GID
from ..providers.transport import TokenBucket
from .config import (
    CREATE_TIME_BASE,
    ErpItem,
    SandboxConfig,
    ShopeeGenerate,
    ShopeeShop,
    ShopeeStock,
    ShopifyBulk,
    Throttle,
    TikTokGenerate,
    TikTokShop,
    TikTokWarehouse,
    Webhook,
)
from .lazada_state import LazadaWorld

TOKEN_LIFETIME = 7 * 86400  # TikTok's default access token lifetime (authorization-overview-202407)
SHOPEE_TOKEN_LIFETIME = 4 * 3600  # Shopee access tokens: 4 hours (authorization-and-authentication.md)


@dataclass(slots=True)
class TtSku:
    id: str
    seller_sku: str
    product_id: str
    inventory: dict[str, int]  # warehouse id -> quantity, in the order the platform lists them

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "seller_sku": self.seller_sku,
            "inventory": [{"warehouse_id": w, "quantity": q} for w, q in self.inventory.items()],
        }


@dataclass(slots=True)
class TtProduct:
    id: str
    title: str
    skus: dict[str, TtSku]
    status: str = "ACTIVATE"
    create_time: int = CREATE_TIME_BASE

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "create_time": self.create_time,
            "skus": [s.json() for s in self.skus.values()],
        }


@dataclass(slots=True)
class TtShop:
    cipher: str
    access_token: str
    refresh_token: str
    expired: bool
    expire_in: int  # unix time the access token expires
    multi_warehouse: bool
    limiter: TokenBucket
    warehouses: dict[str, TikTokWarehouse]
    stale_tokens: set[str] = field(default_factory=set)  # replaced by a refresh: expired, not invalid
    products: dict[str, TtProduct] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # by create_time, then as configured: search order
    times: list[int] = field(default_factory=list)  # create_time of each product in order (for bisect)
    position: dict[str, int] = field(default_factory=dict)  # product id -> index in order
    skus: dict[str, TtSku] = field(default_factory=dict)
    by_seller_sku: dict[str, list[TtSku]] = field(default_factory=dict)

    @classmethod
    def build(cls, cfg: TikTokShop, rps: float) -> TtShop:
        shop = cls(
            cipher=cfg.cipher,
            access_token=cfg.access_token,
            refresh_token=cfg.refresh_token,
            expired=cfg.access_token_expired,
            expire_in=cfg.access_token_expire_in or int(time.time()) + TOKEN_LIFETIME,
            multi_warehouse=cfg.multi_warehouse,
            limiter=TokenBucket(rps, max(1.0, rps)),
            warehouses={w.id: w for w in cfg.warehouses},
        )
        configured = []
        for n, p in enumerate(cfg.products):
            created = p.create_time if p.create_time is not None else CREATE_TIME_BASE + n
            product = TtProduct(p.id, p.title, {}, p.status, created)
            for s in p.skus:
                product.skus[s.id] = TtSku(
                    s.id, s.seller_sku, p.id, {i.warehouse_id: i.quantity for i in s.inventory}
                )
            configured.append(product)
        for product in sorted(configured, key=lambda p: p.create_time):  # stable: ties as configured
            shop.add(product)
        if cfg.generate is not None:
            shop.generate(cfg.generate)
        return shop

    def add(self, product: TtProduct) -> None:
        """Products come in create_time order (the search serves them so, by bisecting `times`)."""
        if self.times and product.create_time < self.times[-1]:
            raise ValueError(f"product {product.id}: added out of create_time order")
        self.products[product.id] = product
        self.position[product.id] = len(self.order)
        self.order.append(product.id)
        self.times.append(product.create_time)
        for sku in product.skus.values():
            self.skus[sku.id] = sku
            self.by_seller_sku.setdefault(sku.seller_sku, []).append(sku)

    def generate(self, gen: TikTokGenerate) -> None:
        slots = [
            w.id
            for w in self.warehouses.values()
            if w.type == "SALES_WAREHOUSE" and w.effect_status == "ENABLED"
        ]
        per = gen.skus_per_product
        base = max(CREATE_TIME_BASE, self.times[-1] + 1 if self.times else 0)  # after configured ones
        for p in range(gen.products):
            pid = f"gp{p}"
            skus = {}
            for k in range(p * per, (p + 1) * per):
                skus[f"gs{k}"] = TtSku(
                    f"gs{k}", gen.seller_sku.format(k), pid, dict.fromkeys(slots, gen.quantity)
                )
            self.add(TtProduct(pid, "", skus, create_time=base + p))

    @property
    def default_warehouse(self) -> str | None:
        return next((w.id for w in self.warehouses.values() if w.is_default), None)


@dataclass(slots=True)
class ShpModel:
    """One Shopee model (model_id 0: the item itself, for an item without models)."""

    model_id: int
    model_sku: str
    status: str
    seller_stock: dict[str, int]  # location id ("" in a shop without locations) -> stock
    shopee_stock: dict[str, int]
    reserved: int = 0

    def stock_info(self) -> dict[str, Any]:
        seller = [
            {"stock": q, "if_saleable": True} | ({"location_id": w} if w else {})
            for w, q in self.seller_stock.items()
        ]
        return {
            "summary_info": {
                "total_reserved_stock": self.reserved,
                "total_available_stock": sum(self.seller_stock.values()) + sum(self.shopee_stock.values()),
            },
            "seller_stock": seller,
            "shopee_stock": [{"location_id": w, "stock": q} for w, q in self.shopee_stock.items()],
        }


@dataclass(slots=True)
class ShpItem:
    item_id: int
    status: str
    item_sku: str
    has_model: bool
    models: dict[int, ShpModel]
    update_time: int = CREATE_TIME_BASE


def _stock(entries: list[ShopeeStock]) -> dict[str, int]:
    return {s.location_id: s.stock for s in entries}


@dataclass(slots=True)
class ShpShop:
    shop_id: int
    access_token: str
    refresh_token: str
    expire_in: int  # unix time the access token expires
    limiter: TokenBucket
    locations: dict[str, dict[str, Any]]  # location id -> get_warehouse_detail entry
    stale_tokens: dict[str, float] = field(default_factory=dict)  # replaced access token -> valid until
    items: dict[int, ShpItem] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, cfg: ShopeeShop, rps: float) -> ShpShop:
        shop = cls(
            shop_id=cfg.shop_id,
            access_token=cfg.access_token,
            refresh_token=cfg.refresh_token,
            expire_in=cfg.access_token_expire_in or int(time.time()) + SHOPEE_TOKEN_LIFETIME,
            limiter=TokenBucket(rps, max(1.0, rps)),
            locations={
                loc.location_id: {
                    "warehouse_id": loc.warehouse_id or n + 1,
                    "warehouse_name": loc.warehouse_name,
                    "warehouse_type": 1,
                    "location_id": loc.location_id,
                    "holiday_mode_state": 0,
                }
                for n, loc in enumerate(cfg.locations)
            },
        )
        for n, it in enumerate(cfg.items):
            models = {
                m.model_id: ShpModel(
                    m.model_id,
                    m.model_sku,
                    m.model_status,
                    _stock(m.seller_stock),
                    _stock(m.shopee_stock),
                    m.reserved_stock,
                )
                for m in it.models
            }
            if not it.models:
                models[0] = ShpModel(
                    0, it.item_sku, "MODEL_NORMAL", _stock(it.seller_stock), _stock(it.shopee_stock)
                )
            shop.add(
                ShpItem(
                    it.item_id, it.item_status, it.item_sku, bool(it.models), models, CREATE_TIME_BASE + n
                )
            )
        if cfg.generate is not None:
            shop.generate(cfg.generate)
        return shop

    def add(self, item: ShpItem) -> None:
        self.items[item.item_id] = item
        self.order.append(item.item_id)

    def generate(self, gen: ShopeeGenerate) -> None:
        where = list(self.locations) or [""]
        per = gen.models_per_item
        for n in range(gen.items):
            models = {
                800_000_000 + k: ShpModel(
                    800_000_000 + k,
                    gen.model_sku.format(k),
                    "MODEL_NORMAL",
                    dict.fromkeys(where, gen.stock),
                    {},
                )
                for k in range(n * per, (n + 1) * per)
            }
            self.add(ShpItem(900_000_000 + n, "NORMAL", "", True, models))

    def json(self) -> dict[str, Any]:
        return {
            "locations": list(self.locations.values()),
            "items": [
                {
                    "item_id": i.item_id,
                    "item_status": i.status,
                    "item_sku": i.item_sku,
                    "has_model": i.has_model,
                    "models": [
                        {
                            "model_id": m.model_id,
                            "model_sku": m.model_sku,
                            "seller_stock": dict(m.seller_stock),
                            "shopee_stock": dict(m.shopee_stock),
                        }
                        for m in i.models.values()
                    ],
                }
                for i in (self.items[x] for x in self.order)
            ],
        }


@dataclass(slots=True)
class ShItem:
    gid: str
    sku: str
    tracked: bool
    policy: str
    levels: dict[str, int]


@dataclass(slots=True)
class ShBulkOperation:
    """One bulk query of the Shopify fake (sandbox/shopify.py runs it)."""

    number: int
    query: str
    created: float  # unix time
    signature: str  # of its result URL
    status: str = "CREATED"
    object_count: int = 0
    root_object_count: int = 0
    error_code: str | None = None
    completed: float | None = None
    data: bytes | None = None  # the JSONL file (a failed operation's partial data)
    cancel: bool = False
    task: Any = None  # the asyncio task generating it

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"


@dataclass(slots=True)
class ShShop:
    shop: str
    access_token: str
    locations: dict[str, dict[str, Any]]
    throttle: Throttle
    webhook: Webhook | None
    bucket: TokenBucket
    api_versions: list[str]
    bulk: ShopifyBulk = field(default_factory=ShopifyBulk)
    bulk_operations: dict[int, ShBulkOperation] = field(default_factory=dict)
    points: int = 0  # query cost charged (actual cost of every query that ran), for benchmarks
    items: dict[str, ShItem] = field(default_factory=dict)
    by_sku: dict[str, ShItem] = field(default_factory=dict)
    by_location: dict[str, list[ShItem]] = field(default_factory=dict)

    def add_item(self, sku: str, tracked: bool = True, policy: str = "DENY") -> ShItem:
        item = ShItem(f"{ITEM_GID}{len(self.items) + 1}", sku, tracked, policy, {})
        self.items[item.gid] = item
        self.by_sku[sku] = item
        return item

    def set_level(self, item: ShItem, location: str, available: int) -> None:
        if location not in item.levels:
            self.by_location.setdefault(location, []).append(item)
        item.levels[location] = available


@dataclass(slots=True)
class ErpSrc:
    name: str
    token: str
    webhook: Webhook | None
    rows: dict[tuple[str, str], ErpItem] = field(default_factory=dict)  # (location, sku) -> row
    by_location: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def put(self, row: ErpItem) -> None:
        key = (row.location, row.sku)
        if key not in self.rows:
            self.by_location.setdefault(row.location, []).append(key)
        self.rows[key] = row


class Fault(BaseModel):
    """An injected misbehaviour for requests matching platform / operation / target (JSON: camelCase)."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)

    platform: Literal["*", "tiktok", "shopee", "lazada", "shopify", "http"] = "*"
    operation: str = "*"
    target: str = "*"  # TikTok shop cipher, Shopee shop_id, Lazada seller id, Shopify shop or ERP source name
    status: int = Field(default=0, ge=0, le=599)  # HTTP status of injected errors (0: none)
    code: int | None = None  # platform error code in the envelope (TikTok)
    error: str | None = None  # platform error name in the envelope (Shopee)
    error_rate: float = Field(default=1.0, ge=0, le=1)
    latency: float = Field(default=0.0, ge=0, le=60)
    burst429: int = Field(default=0, ge=0, alias="burst429")  # the next N matching requests answer 429
    retry_after: float | None = Field(default=None, ge=0)  # Retry-After sent with those 429s
    partial_pages: bool = False  # only continuation pages (with a cursor) fail: a read breaks mid-way
    count: int | None = Field(default=None, ge=1)  # stop after affecting this many requests
    empty: bool = False  # ERP inventory reads answer 200 with no items: a source that lost its data
    # Shopify bulk operations (operation bulk_operation): the operation fails with this errorCode
    bulk_error: Literal["ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"] | None = None
    truncate: bool = False  # Shopify bulk_download: the result file is served cut in the middle

    def matches(self, platform: str, operation: str, target: str, continuation: bool) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        if self.partial_pages and not continuation:
            return False
        mine = (self.platform, self.operation, self.target)
        return all(m in ("*", t) for m, t in zip(mine, (platform, operation, target), strict=True))


@dataclass(frozen=True, slots=True)
class Effect:
    latency: float = 0.0
    status: int = 0
    code: int | None = None
    retry_after: float | None = None
    empty: bool = False
    error: str | None = None
    bulk_error: str | None = None
    truncate: bool = False


class SandboxState:
    """Everything the sandbox serves and counts."""

    def __init__(self, config: SandboxConfig) -> None:
        # Building hundreds of thousands of small objects: cyclic GC passes over the growing heap
        # would dominate, and nothing built here is garbage.
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._build(config)
        finally:
            if enabled:
                gc.enable()

    def _build(self, config: SandboxConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.tiktok: dict[str, TtShop] = {}
        if config.tiktok is not None:
            for s in config.tiktok.shops:
                self.tiktok[s.cipher] = TtShop.build(
                    s, s.requests_per_second or config.tiktok.requests_per_second
                )
        self.shopee: dict[int, ShpShop] = {}
        if config.shopee is not None:
            for sp in config.shopee.shops:
                self.shopee[sp.shop_id] = ShpShop.build(
                    sp, sp.requests_per_second or config.shopee.requests_per_second
                )
        self.shopify: dict[str, ShShop] = {}
        for sh in config.shopify:
            shop = ShShop(
                shop=sh.shop,
                access_token=sh.access_token,
                locations={
                    loc.id: {"id": loc.id, "name": loc.name, "isActive": loc.active} for loc in sh.locations
                },
                throttle=sh.throttle,
                webhook=sh.webhook or config.webhooks,
                bucket=TokenBucket(sh.throttle.restore_rate, sh.throttle.maximum_available),
                api_versions=list(sh.api_versions),
                bulk=sh.bulk,
            )
            for it in sh.items:
                item = shop.add_item(it.sku, it.tracked, it.inventory_policy)
                for loc, available in it.levels.items():
                    shop.set_level(item, loc, available)
            if sh.generate is not None:
                active = [loc.id for loc in sh.locations if loc.active]
                for n in range(sh.generate.items):
                    item = shop.add_item(sh.generate.sku.format(n))
                    for loc in active:
                        shop.set_level(item, loc, sh.generate.available)
            self.shopify[sh.shop] = shop
        self.lazada = LazadaWorld(config.lazada)
        self.erp: dict[str, ErpSrc] = {}
        for e in config.erp:
            src = ErpSrc(e.name, e.token, e.webhook or config.webhooks)
            for row in e.items:
                src.put(row)
            if e.generate is not None:
                for loc in e.generate.locations:
                    for n in range(e.generate.items):
                        src.put(
                            ErpItem(
                                sku=e.generate.sku.format(n), location=loc, available=e.generate.available
                            )
                        )
            self.erp[e.name] = src
        self.faults: list[Fault] = []
        self.requests: Counter[tuple[str, str, str]] = Counter()
        self.read_pages: Counter[str] = Counter()
        self.writes = {"requests": 0, "slots": 0, "changed": 0}
        self.webhooks_sent: Counter[str] = Counter()
        self._request_ids = 0

    def request_id(self) -> str:
        self._request_ids += 1
        return time.strftime("%Y%m%d%H%M%S") + f"{self._request_ids:020X}"

    def effect(self, platform: str, operation: str, target: str, continuation: bool = False) -> Effect | None:
        """The first matching fault's effect on this request, consuming one use of it."""
        for fault in self.faults:
            if not fault.matches(platform, operation, target, continuation):
                continue
            if fault.burst429 > 0:
                fault.burst429 -= 1
                return Effect(fault.latency, 429, fault.code, fault.retry_after, error=fault.error)
            erroring = bool(fault.status) and self.random.random() < fault.error_rate
            if not (erroring or fault.latency or fault.empty or fault.bulk_error or fault.truncate):
                continue
            if fault.count is not None:
                fault.count -= 1
            if erroring:
                return Effect(fault.latency, fault.status, fault.code, fault.retry_after, error=fault.error)
            return Effect(
                fault.latency, empty=fault.empty, bulk_error=fault.bulk_error, truncate=fault.truncate
            )
        return None

    def counts(self) -> dict[str, Any]:
        return {
            "requests": [
                {"platform": p, "operation": o, "code": c, "count": n}
                for (p, o, c), n in sorted(self.requests.items())
            ],
            "total": sum(self.requests.values()),
            "readPages": dict(self.read_pages),
            "writes": dict(self.writes),
            "webhooks": dict(self.webhooks_sent),
        }

    def reset_counts(self) -> None:
        self.requests.clear()
        self.read_pages.clear()
        self.webhooks_sent.clear()
        self.lazada.log.clear()
        self.writes = {"requests": 0, "slots": 0, "changed": 0}

    def snapshot(self) -> dict[str, Any]:
        return {
            "tiktok": {
                cipher: {
                    "multiWarehouse": shop.multi_warehouse,
                    "warehouses": [w.model_dump() for w in shop.warehouses.values()],
                    "products": [shop.products[pid].json() for pid in shop.order],
                }
                for cipher, shop in self.tiktok.items()
            },
            "shopee": {str(shop_id): shop.json() for shop_id, shop in self.shopee.items()},
            "shopify": {
                name: {
                    "locations": list(shop.locations.values()),
                    "items": [
                        {
                            "id": i.gid,
                            "sku": i.sku,
                            "tracked": i.tracked,
                            "inventoryPolicy": i.policy,
                            "levels": dict(i.levels),
                        }
                        for i in shop.items.values()
                    ],
                }
                for name, shop in self.shopify.items()
            },
            "erp": {
                name: {"items": [r.model_dump(by_alias=True) for r in src.rows.values()]}
                for name, src in self.erp.items()
            },
            "lazada": self.lazada.snapshot(),
            "faults": [f.model_dump(by_alias=True) for f in self.faults],
        }
