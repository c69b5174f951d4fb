"""The sandbox's YAML config (docs/platforms.md, "The sandbox")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..providers.shopify import LOCATION_GID


class ConfigError(Exception):
    """Bad sandbox config; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TikTokWarehouse(_Model):
    id: str = Field(min_length=1)
    name: str = ""
    type: Literal["SALES_WAREHOUSE", "RETURN_WAREHOUSE"] = "SALES_WAREHOUSE"
    effect_status: Literal["ENABLED", "DISABLED", "RESTRICTED"] = "ENABLED"
    is_default: bool = False


class TikTokInventory(_Model):
    warehouse_id: str
    quantity: int = Field(default=0, ge=0)


class TikTokSku(_Model):
    id: str = Field(min_length=1)
    seller_sku: str = ""
    inventory: list[TikTokInventory] = Field(default_factory=list)


ProductStatus = Literal[
    "DRAFT",
    "PENDING",
    "FAILED",
    "ACTIVATE",
    "SELLER_DEACTIVATED",
    "PLATFORM_DEACTIVATED",
    "FREEZE",
    "DELETED",
]
# Products without a create_time were created one second apart from this instant (2023-11-14).
CREATE_TIME_BASE = 1_700_000_000


class TikTokProduct(_Model):
    id: str = Field(min_length=1)
    title: str = ""
    status: ProductStatus = "ACTIVATE"  # only ACTIVATE products take inventory updates
    create_time: int | None = Field(default=None, ge=0)  # unix time; the search filters by it
    skus: list[TikTokSku] = Field(default_factory=list)


def _format(template: str) -> str:
    try:
        template.format(0)
    except (IndexError, KeyError, ValueError) as exc:
        raise ValueError(f"{template!r} is not a format string for one integer ({exc})") from None
    return template


SkuFormat = Annotated[str, AfterValidator(_format)]


class TikTokGenerate(_Model):
    """Addition: synthetic listings for benchmarks and demos, without a huge config to validate.

    Listing ``k`` (product ``k // skusPerProduct``) has seller SKU ``sellerSku.format(k)`` and a slot
    in every enabled sales warehouse; ids are ``gp{product}`` and ``gs{k}``; product ``p`` was created
    ``p`` seconds after CREATE_TIME_BASE.
    """

    products: int = Field(ge=0, le=10_000_000)
    skus_per_product: int = Field(default=1, ge=1, le=100, alias="skusPerProduct")
    seller_sku: SkuFormat = Field(default="SKU-{:07d}", alias="sellerSku")
    quantity: int = Field(default=0, ge=0)


class SourceGenerate(_Model):
    """Addition: items ``sku.format(n)`` for n < items, ``available`` at every (active) location."""

    items: int = Field(ge=0, le=10_000_000)
    sku: SkuFormat = "SKU-{:07d}"
    available: int = 0
    locations: list[str] = Field(default_factory=list)  # erp only: where the items are


class TikTokShop(_Model):
    cipher: str = Field(min_length=1)
    access_token: str = Field(min_length=1)
    refresh_token: str = ""  # addition: enables /api/v2/token/refresh for this shop
    access_token_expired: bool = Field(default=False, alias="accessTokenExpired")  # addition
    # addition: unix time the access token expires (default: 7 days after the sandbox starts)
    access_token_expire_in: int | None = Field(default=None, ge=0, alias="accessTokenExpireIn")
    multi_warehouse: bool = Field(default=True, alias="multiWarehouse")  # addition: the whitelist
    requests_per_second: float | None = Field(default=None, gt=0, alias="requestsPerSecond")  # addition
    warehouses: list[TikTokWarehouse] = Field(default_factory=list)
    products: list[TikTokProduct] = Field(default_factory=list)
    generate: TikTokGenerate | None = None


class TikTokConfig(_Model):
    app_key: str = Field(min_length=1)
    app_secret: str = Field(min_length=1)
    requests_per_second: float = Field(default=50, gt=0, alias="requestsPerSecond")
    shops: list[TikTokShop] = Field(default_factory=list)


class ShopeeLocation(_Model):
    location_id: str = Field(min_length=1)
    warehouse_name: str = ""
    warehouse_id: int = Field(default=0, ge=0)


class ShopeeStock(_Model):
    location_id: str = ""  # empty: a shop without warehouse locations
    stock: int = Field(default=0, ge=0)


class ShopeeModel(_Model):
    model_id: int = Field(ge=1)
    model_sku: str = ""
    model_status: Literal["MODEL_NORMAL", "MODEL_UNAVAILABLE"] = "MODEL_NORMAL"
    seller_stock: list[ShopeeStock] = Field(default_factory=list)
    shopee_stock: list[ShopeeStock] = Field(default_factory=list)  # Shopee's own warehouses: read-only
    reserved_stock: int = Field(default=0, ge=0)  # addition: promotion stock a write may not go below


ShopeeItemStatus = Literal["NORMAL", "BANNED", "UNLIST", "REVIEWING", "SELLER_DELETE", "SHOPEE_DELETE"]


class ShopeeItem(_Model):
    """An item with models, or (models empty) one without: its stock and SKU are the item's own."""

    item_id: int = Field(ge=1)
    item_status: ShopeeItemStatus = "NORMAL"
    item_sku: str = ""
    seller_stock: list[ShopeeStock] = Field(default_factory=list)  # an item without models only
    shopee_stock: list[ShopeeStock] = Field(default_factory=list)
    models: list[ShopeeModel] = Field(default_factory=list)


class ShopeeGenerate(_Model):
    """Addition: ``items`` items of ``modelsPerItem`` models; model ``k`` has SKU ``modelSku.format(k)``,
    ``stock`` at every location; ids are 900000000 + item and 800000000 + k."""

    items: int = Field(ge=0, le=1_000_000)
    models_per_item: int = Field(default=1, ge=1, le=50, alias="modelsPerItem")
    model_sku: SkuFormat = Field(default="SKU-{:07d}", alias="modelSku")
    stock: int = Field(default=0, ge=0)


class ShopeeShop(_Model):
    shop_id: int = Field(ge=1)
    access_token: str = Field(min_length=1)
    refresh_token: str = ""
    # addition: unix time the access token expires (default: 4 hours after the sandbox starts)
    access_token_expire_in: int | None = Field(default=None, ge=0, alias="accessTokenExpireIn")
    requests_per_second: float | None = Field(default=None, gt=0, alias="requestsPerSecond")  # addition
    locations: list[ShopeeLocation] = Field(default_factory=list)  # empty: not multi-warehouse
    items: list[ShopeeItem] = Field(default_factory=list)
    generate: ShopeeGenerate | None = None

    @model_validator(mode="after")
    def _stock_names_locations(self) -> ShopeeShop:
        known = {loc.location_id for loc in self.locations} or {""}
        for i, item in enumerate(self.items):
            stocks = [*item.seller_stock, *(s for m in item.models for s in m.seller_stock)]
            for s in stocks:
                if s.location_id not in known:
                    raise ValueError(
                        f"items[{i}] (item_id {item.item_id}): seller_stock names unknown location "
                        f"{s.location_id!r}"
                    )
            if item.models and item.seller_stock:
                raise ValueError(f"items[{i}] (item_id {item.item_id}): an item with models has no own stock")
        return self


class ShopeeConfig(_Model):
    partner_id: int = Field(ge=1)
    partner_key: str = Field(min_length=1)
    requests_per_second: float = Field(default=50, gt=0, alias="requestsPerSecond")  # addition
    shops: list[ShopeeShop] = Field(default_factory=list)


class ShopifyLocation(_Model):
    id: str = Field(pattern=rf"^{LOCATION_GID}[0-9]+$")
    name: str = ""
    active: bool = True


class ShopifyItem(_Model):
    sku: str
    tracked: bool = True
    inventory_policy: Literal["DENY", "CONTINUE"] = Field(default="DENY", alias="inventoryPolicy")
    levels: dict[str, int] = Field(default_factory=dict)  # location id -> available (absent: not stocked)


class Webhook(_Model):
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(min_length=1)


class Throttle(_Model):
    """Addition: Shopify's cost bucket (defaults: the standard plan's 2000 points, 100/s)."""

    maximum_available: float = Field(default=2000, gt=0, alias="maximumAvailable")
    restore_rate: float = Field(default=100, gt=0, alias="restoreRate")


class ShopifyBulk(_Model):
    """Addition: how fast the fake's bulk operations run (Shopify publishes no generation rate)."""

    objects_per_second: float = Field(default=10_000, gt=0, alias="objectsPerSecond")
    start_delay: float = Field(default=0.0, ge=0, le=3600, alias="startDelay")  # CREATED before RUNNING
    # the result URL's lifetime after completion: seven days (BulkOperation reference, `url`)
    url_lifetime: float = Field(default=7 * 86400, gt=0, alias="urlLifetime")


# The Admin API versions Shopify supports in December 2026 (each for at least 12 months after release).
SHOPIFY_API_VERSIONS = ["2026-01", "2026-04", "2026-07", "2026-10"]


class ShopifyShop(_Model):
    shop: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    access_token: str = Field(min_length=1)
    # addition: the versions served; an older one falls forward to the oldest, an unreleased one is 404
    api_versions: list[Annotated[str, Field(pattern=r"^[0-9]{4}-(01|04|07|10)$")]] = Field(
        default_factory=lambda: list(SHOPIFY_API_VERSIONS), min_length=1, alias="apiVersions"
    )
    locations: list[ShopifyLocation] = Field(default_factory=list)
    items: list[ShopifyItem] = Field(default_factory=list)
    throttle: Throttle = Field(default_factory=Throttle)
    generate: SourceGenerate | None = None
    webhook: Webhook | None = None  # addition: where this shop's inventory_levels/update goes
    bulk: ShopifyBulk = Field(default_factory=ShopifyBulk)

    @model_validator(mode="after")
    def _levels_name_locations(self) -> ShopifyShop:
        known = {loc.id for loc in self.locations}
        for i, item in enumerate(self.items):
            for loc in item.levels:
                if loc not in known:
                    raise ValueError(f"items[{i}] ({item.sku}): levels names unknown location {loc!r}")
        return self


class ErpItem(_Model):
    sku: str = Field(min_length=1)
    location: str = Field(min_length=1)
    available: int
    continue_selling: bool = Field(default=False, alias="continueSelling")
    enabled: bool = True


class ErpSource(_Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    token: str = ""  # empty: no Authorization required
    items: list[ErpItem] = Field(default_factory=list)
    generate: SourceGenerate | None = None
    webhook: Webhook | None = None  # addition: overrides the top-level webhooks for this source


LAZADA_DROPSHIPPING = "dropshipping"  # the warehouse every Lazada seller has (inventory-calculation-logic.md)


class LazadaInventory(_Model):
    warehouse_code: str = Field(min_length=1, alias="warehouseCode")
    sellable_quantity: int = Field(default=0, ge=0, alias="sellableQuantity")


class LazadaSku(_Model):
    sku_id: int = Field(ge=1, alias="SkuId")
    seller_sku: str = Field(min_length=1, alias="SellerSku")
    multi_warehouse_inventories: list[LazadaInventory] = Field(
        default_factory=list, alias="multiWarehouseInventories"
    )
    # addition: stock Lazada holds in its own warehouse (FBL); the seller cannot write it
    fbl_sellable_quantity: int | None = Field(default=None, ge=0, alias="fblSellableQuantity")


class LazadaProduct(_Model):
    item_id: int = Field(ge=1)
    status: Literal["Active", "InActive", "Pending", "Rejected", "Deleted"] = "Active"
    created_time: int | None = Field(default=None, ge=0)  # addition: ms; default one second apart
    skus: list[LazadaSku] = Field(default_factory=list)


class LazadaGenerate(_Model):
    """Addition: product ``p`` (item_id 10^9 + p) has SKUs ``k`` of ``sellerSku.format(k)`` (SkuId
    10^9 + k) for k in [p * skusPerProduct, (p + 1) * skusPerProduct), in every warehouse."""

    products: int = Field(ge=0, le=1_000_000)
    skus_per_product: int = Field(default=1, ge=1, le=100, alias="skusPerProduct")
    seller_sku: SkuFormat = Field(default="SKU-{:07d}", alias="sellerSku")
    quantity: int = Field(default=0, ge=0)


class LazadaSeller(_Model):
    seller_id: str = ""  # addition: names the seller in faults and the admin API (default: seller index)
    access_token: str = Field(min_length=1)
    refresh_token: str = ""
    # addition: seconds the access token lives (Lazada: 30 days for an online app)
    expires_in: int = Field(default=30 * 86400, ge=0, alias="expiresIn")
    warehouses: list[str] = Field(default_factory=lambda: [LAZADA_DROPSHIPPING], min_length=1)
    # addition: a Mega campaign is on (error 4170): stock may go up, not down
    increase_only: bool = Field(default=False, alias="increaseOnly")
    # addition: calls per second the seller may make (Lazada: 50 for the inventory API)
    requests_per_second: float = Field(default=50, gt=0, alias="requestsPerSecond")
    products: list[LazadaProduct] = Field(default_factory=list)
    generate: LazadaGenerate | None = None

    @model_validator(mode="after")
    def _inventories_name_warehouses(self) -> LazadaSeller:
        known = set(self.warehouses)
        for p in self.products:
            for s in p.skus:
                for inv in s.multi_warehouse_inventories:
                    if inv.warehouse_code not in known:
                        raise ValueError(
                            f"item {p.item_id} {s.seller_sku}: unknown warehouseCode {inv.warehouse_code!r}"
                        )
        return self


class LazadaConfig(_Model):
    app_key: str = Field(min_length=1)
    app_secret: str = Field(min_length=1)
    sellers: list[LazadaSeller] = Field(default_factory=list)


class SandboxConfig(_Model):
    tiktok: TikTokConfig | None = None
    shopee: ShopeeConfig | None = None
    lazada: LazadaConfig | None = None
    shopify: list[ShopifyShop] = Field(default_factory=list)
    erp: list[ErpSource] = Field(default_factory=list)
    webhooks: Webhook | None = None  # every source without its own webhook delivers here
    seed: int = 0  # addition: seeds the random error rate of faults, so runs repeat


CONFIGMAP_KEY = "sandbox.yaml"


def unwrap_configmap(raw: dict[str, Any], where: str = "sandbox config") -> dict[str, Any]:
    """The config itself, or the one held under data.sandbox.yaml of a ConfigMap manifest: shipped that
    way, examples/ stays one directory `kubectl apply -f` accepts whole, and the sandbox can be mounted
    in a cluster."""
    if raw.get("kind") != "ConfigMap":
        return raw
    text = (raw.get("data") or {}).get(CONFIGMAP_KEY)
    if not isinstance(text, str):
        raise ConfigError(f"{where}: ConfigMap: data.{CONFIGMAP_KEY}: missing; it holds the sandbox config")
    try:
        inner = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: data.{CONFIGMAP_KEY}: not valid YAML: {exc}") from None
    if not isinstance(inner, dict):
        raise ConfigError(f"{where}: data.{CONFIGMAP_KEY}: expected a mapping at the top level")
    return inner


def load_config(source: dict[str, Any] | str | Path) -> SandboxConfig:
    """A validated config from a dict or a YAML file; errors name the file and the field."""
    where = "sandbox config"
    if isinstance(source, (str, Path)):
        where = str(source)
        try:
            raw = yaml.safe_load(Path(source).read_text())
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    else:
        raw = source
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    raw = unwrap_configmap(raw, where)
    try:
        return SandboxConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{where}: {field}: {first['msg']}") from None
