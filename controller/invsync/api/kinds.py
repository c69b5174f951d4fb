"""The four invsync kinds (SPEC section 1). CRDs in crds/ are generated from these models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from .common import (
    Conditions,
    DurationBounds,
    LabelSelector,
    LocalObjectReference,
    Model,
    Name,
    NonNegative,
    Percent,
    Resource,
    cel,
)

# --------------------------------------------------------------------------- InventorySource

# The newest stable Shopify Admin API version in December 2026; supported until at least October 2027
# (docs/platforms.md, Shopify: versions).
SHOPIFY_API_VERSION = "2026-10"


class WebhookSpec(Model):
    secret_ref: LocalObjectReference = Field(
        description="Secret whose key `secret` verifies webhook deliveries (HMAC-SHA256)."
    )


class InventorySourceSpec(Model):
    provider: Literal["shopify", "http"] = Field(
        description="shopify: a Shopify store and its locations; http: an ERP/WMS speaking invsync's "
        "generic HTTP inventory contract."
    )
    endpoint: str = Field(
        min_length=1,
        pattern=r"^https?://",
        description="Base URL of the source, e.g. https://example.myshopify.com.",
    )
    credentials_secret_ref: LocalObjectReference | None = Field(
        default=None,
        description="Secret with the credentials: key `access_token` (shopify) or `token` (http, optional).",
    )
    shopify_api_version: str = Field(
        default=SHOPIFY_API_VERSION,
        pattern=r"^[0-9]{4}-(01|04|07|10)$",
        description="Shopify Admin API version (provider shopify). Shopify supports each for at least 12 "
        "months and answers an older one with its oldest supported version.",
    )
    poll_interval: Annotated[str, DurationBounds("10s", "720h")] = Field(
        default="5m", description="Full re-read period; webhooks make changes immediate."
    )
    webhook: WebhookSpec | None = Field(
        default=None, description="Verify and accept change notifications from this source."
    )

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.provider != 'shopify' || has(self.credentialsSecretRef)",
                "credentialsSecretRef is required for provider shopify",
            )
        )
    )


class SourceLocation(Model):
    id: str = Field(description="Location id inside the source.")
    name: str = Field(default="", description="Display name.")
    active: bool = Field(default=True, description="Whether the source reports the location as active.")


class InventorySourceStatus(Model):
    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: Conditions
    locations: list[SourceLocation] = Field(default_factory=list, description="Locations the source reports.")
    items: NonNegative = Field(default=0, description="Stock records in the last full read.")
    last_fetch_time: str | None = Field(
        default=None,
        description="When the last full read succeeded.",
        json_schema_extra={"format": "date-time"},
    )


class InventorySource(Resource):
    """A system that knows real stock: a Shopify store (its locations) or an ERP/WMS speaking
    the generic HTTP contract."""

    kind: Literal["InventorySource"] = "InventorySource"
    spec: InventorySourceSpec = Field(description="What to read stock from.")
    status: InventorySourceStatus | None = Field(default=None, description="What the last read found.")


# --------------------------------------------------------------------------- Warehouse


class WarehouseSpec(Model):
    source_ref: LocalObjectReference = Field(description="The InventorySource this location belongs to.")
    location_id: str = Field(min_length=1, description="The location's id inside the source.")
    type: Literal["SelfOwned", "ThirdParty", "Platform"] = Field(
        default="SelfOwned",
        description="SelfOwned or ThirdParty stock counts; Platform (platform-fulfilled) stock never counts.",
    )
    enabled: bool = Field(default=True, description="false: this warehouse contributes nothing anywhere.")


class WarehouseStatus(Model):
    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: Conditions
    skus: NonNegative = Field(default=0, description="SKUs stocked at this location in the last read.")
    available: NonNegative = Field(
        default=0, description="Units available at this location in the last read."
    )


class Warehouse(Resource):
    """One stock location inside an InventorySource (self-owned, third-party or platform-fulfilled)."""

    kind: Literal["Warehouse"] = "Warehouse"
    spec: WarehouseSpec = Field(description="Which location, and whether it counts.")
    status: WarehouseStatus | None = Field(
        default=None, description="What the location held at the last read."
    )


# --------------------------------------------------------------------------- Store


class ChannelWarehouseMapping(Model):
    channel_warehouse_id: str = Field(min_length=1, description="The platform's warehouse id.")
    warehouse_refs: list[Name] = Field(
        default_factory=list,
        max_length=64,
        description="Warehouses (by name, same namespace) whose stock feeds this channel warehouse.",
        json_schema_extra={"x-kubernetes-list-type": "set"},  # a name twice would count its stock twice
    )
    enabled: bool = Field(
        default=True, description="false: invsync leaves this channel warehouse's listings untouched."
    )


class RateLimit(Model):
    requests_per_second: float = Field(
        default=10,
        ge=0.1,
        le=10000,
        description="Sustained platform requests per second for this store (0.1 to 10,000).",
        # the API server compares an integer value with int(minimum): 0 would pass `minimum: 0.1`
        json_schema_extra=cel(("self >= 0.1", "should be greater than or equal to 0.1")),
    )
    burst: int = Field(default=10, ge=1, le=10000, description="Requests allowed at once above the rate.")


TIKTOK_HOST = "open-api.tiktokglobalshop.com"


class StoreSpec(Model):
    platform: Literal["tiktok", "shopee", "lazada"] = Field(description="The sales channel's platform.")
    endpoint: str = Field(
        default=f"https://{TIKTOK_HOST}",
        pattern=r"^https?://",
        description="Base URL of the platform API (default TikTok's; a shopee store names the Shopee host "
        "near its servers, e.g. https://partner.shopeemobile.com, a lazada store its venture's API base, "
        "e.g. https://api.lazada.sg/rest); tests point it at the sandbox.",
    )
    shop_cipher: str | None = Field(
        default=None, min_length=1, description="TikTok shop_cipher identifying the shop (platform tiktok)."
    )
    shop_id: int | None = Field(
        default=None, ge=1, description="Shopee shop_id identifying the shop (platform shopee)."
    )
    credentials_secret_ref: LocalObjectReference = Field(
        description="Secret with keys app_key, app_secret, access_token (refresh_token optional) for tiktok "
        "and lazada (the seller is the one its access_token names); partner_id, partner_key, access_token, "
        "refresh_token for shopee."
    )
    multi_warehouse: bool = Field(
        default=False,
        description="The shop is whitelisted for TikTok multi-warehouse inventory (no API field reveals it).",
    )
    warehouses: list[ChannelWarehouseMapping] = Field(
        default_factory=list,
        max_length=64,
        description="Channel warehouses and the Warehouses that feed each one.",
        # a list-map: the API server itself rejects a repeated channelWarehouseId, at no CEL cost
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["channelWarehouseId"],
        },
    )
    max_quantity: NonNegative = Field(default=99999, description="The channel's ceiling (TikTok: 99,999).")
    rate_limit: RateLimit = Field(default_factory=RateLimit, description="Client-side platform rate limit.")

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "self.multiWarehouse || !has(self.warehouses) || size(self.warehouses) <= 1",
                "warehouses: a store with multiWarehouse false has at most one channel warehouse",
            ),
            (
                "self.platform != 'tiktok' || has(self.shopCipher)",
                "shopCipher is required for platform tiktok",
                ".shopCipher",
            ),
            (
                "self.platform != 'shopee' || has(self.shopId)",
                "shopId is required for platform shopee",
                ".shopId",
            ),
            (
                f"self.platform != 'shopee' || !self.endpoint.contains('{TIKTOK_HOST}')",
                "a shopee store names its Shopee API host, e.g. https://partner.shopeemobile.com",
                ".endpoint",
            ),
            (
                "self.platform != 'lazada' || self.endpoint.endsWith('/rest')",
                "a lazada Store names its venture's API base, e.g. https://api.lazada.sg/rest",
                ".endpoint",
            ),
        )
    )


class ChannelWarehouseStatus(Model):
    id: str
    name: str = ""
    type: str = ""
    effect_status: str = ""


class StoreStatus(Model):
    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: Conditions
    channel_warehouses: list[ChannelWarehouseStatus] = Field(
        default_factory=list, description="Warehouses the platform reports for the shop."
    )
    listings: NonNegative = Field(default=0, description="Listing slots read in the last sync.")


class Store(Resource):
    """One sales-channel shop and the Warehouses that feed each of its channel warehouses."""

    kind: Literal["Store"] = "Store"
    spec: StoreSpec = Field(description="The shop, its credentials and its warehouse mapping.")
    status: StoreStatus | None = Field(default=None, description="What the platform reports for the shop.")


# --------------------------------------------------------------------------- SyncRule


class StoreSelection(Model):
    names: list[Name] = Field(
        default_factory=list,
        max_length=256,
        description="Stores by name.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    selector: LabelSelector | None = Field(default=None, description="Stores by label.")

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "size(self.names) > 0 || has(self.selector)",
                "stores: name at least one store or give a selector",
            )
        )
    )


class WarehouseSelection(Model):
    name: Name | None = Field(default=None, description="One Warehouse by name.")
    selector: LabelSelector | None = Field(
        default=None, description="Warehouses by label (e.g. all active locations of a source)."
    )
    ratio: Percent = Field(
        default=100, description="Sync ratio in percent of the warehouse's available stock."
    )

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "has(self.name) != has(self.selector)",
                "each warehouse entry needs exactly one of name or selector",
            )
        )
    )


class ContinueSelling(Model):
    honor: bool = Field(
        default=True, description="Publish `quantity` for items the source sells when out of stock."
    )
    quantity: NonNegative = Field(default=99999, description="Quantity shown for continue-selling items.")


class LowStock(Model):
    threshold: NonNegative = Field(description="At or below this pool, only the preferred store keeps stock.")
    preferred_store: Name = Field(description="The store that keeps the last units.")


# A seller SKU pattern as the platform holds SKUs: " A-*" or "GIFT-* " matches nothing, so an exclude or
# an override written so would silently not apply (and the SKUs be pushed). No control characters.
SkuPattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        pattern=r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$",
    ),
]


class SkuFilter(Model):
    include: list[SkuPattern] = Field(
        default_factory=lambda: ["*"], max_length=1024, description="Shell-style patterns on the seller SKU."
    )
    exclude: list[SkuPattern] = Field(
        default_factory=list, max_length=1024, description="Patterns never managed."
    )


class Override(Model):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!(has(self.exclude) && self.exclude && has(self.fixedQuantity))",
                "an override that excludes its SKUs publishes no quantity",
                ".fixedQuantity",
            )
        )
    )

    skus: list[SkuPattern] = Field(
        min_length=1, max_length=1024, description="Shell-style seller SKU patterns."
    )
    exclude: bool = Field(default=False, description="true: these SKUs are not managed by this rule.")
    fixed_quantity: NonNegative | None = Field(default=None, description="Publish exactly this quantity.")
    execution_ratio: Percent | None = Field(default=None, description="Replaces the rule's executionRatio.")
    safety_stock: NonNegative | None = Field(default=None, description="Replaces the rule's safetyStock.")
    out_of_stock_threshold: NonNegative | None = Field(
        default=None, description="Replaces the rule's outOfStockThreshold."
    )
    rounding: Literal["Down", "Nearest", "Up"] | None = Field(
        default=None, description="Replaces the rule's rounding."
    )
    max_quantity: NonNegative | None = Field(default=None, description="Replaces the rule's maxQuantity.")


class PushPolicy(Model):
    mode: Literal["Enforce", "DryRun"] = Field(
        default="Enforce", description="Enforce pushes; DryRun plans, counts and reports but pushes nothing."
    )
    increase_settle: Annotated[str, DurationBounds("0s", "24h")] = Field(
        default="0s", description="An increase is pushed only after the source has shown it this long."
    )
    order: Literal["DecreasesFirst", "AsListed"] = Field(
        default="DecreasesFirst", description="Under a rate limit, zeroes and decreases go before increases."
    )


class SafetyPolicy(Model):
    max_zero_fraction: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Hold a plan that would zero more than this fraction of listings.",
    )
    min_listings: NonNegative = Field(
        default=10, description="The hold applies only when at least this many listings show stock."
    )


class SyncRuleSpec(Model):
    stores: StoreSelection = Field(
        description="Stores that get stock from this rule (names and selector: union)."
    )
    warehouses: list[WarehouseSelection] = Field(
        min_length=1,
        max_length=256,
        description="Warehouses by name or label selector, each with its sync ratio.",
        json_schema_extra=cel(
            (
                "self.all(a, !has(a.name) || self.exists_one(b, has(b.name) && b.name == a.name))",
                "duplicate warehouse name",
            )
        ),
    )
    execution_ratio: Percent = Field(default=100, description="Percent applied on top of the sync ratios.")
    safety_stock: NonNegative = Field(default=0, description="Units held back after ratios.")
    rounding: Literal["Down", "Nearest", "Up"] = Field(
        default="Down", description="How fractions are rounded."
    )
    out_of_stock_threshold: NonNegative = Field(
        default=0, description="A pool at or below this shows 0 on the channel."
    )
    max_quantity: NonNegative | None = Field(
        default=None, description="Optional cap; the store's maxQuantity always applies."
    )
    continue_selling: ContinueSelling = Field(
        default_factory=ContinueSelling, description="Items the source sells when out of stock."
    )
    low_stock: LowStock | None = Field(default=None, description="Keep the last units on one store.")
    skus: SkuFilter = Field(default_factory=SkuFilter, description="Which seller SKUs this rule manages.")
    overrides: list[Override] = Field(
        default_factory=list, max_length=256, description="Per-SKU overrides; the first match wins."
    )
    push: PushPolicy = Field(default_factory=PushPolicy, description="How the plan is pushed.")
    interval: Annotated[str, DurationBounds("1s", "720h")] = Field(
        default="5m", description="Periodic full reconcile against the live channel."
    )
    suspend: bool = Field(default=False, description="true: plan and report, push nothing.")
    safety: SafetyPolicy = Field(default_factory=SafetyPolicy, description="Mass-zeroing protection.")

    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                "!has(self.lowStock) || has(self.stores.selector) "
                "|| (has(self.stores.names) && self.lowStock.preferredStore in self.stores.names)",
                "must be one of stores.names: the store that keeps the last units gets its stock "
                "from this rule",
                ".lowStock.preferredStore",
            )
        )
    )


class SyncSummary(Model):
    listings: NonNegative = 0
    in_sync: NonNegative = 0
    drifted: NonNegative = 0
    pushed: NonNegative = 0
    failed: NonNegative = 0
    unmatched: NonNegative = 0
    held: NonNegative = 0
    conflicted: NonNegative = 0


class StoreSummary(Model):
    name: str
    listings: NonNegative = 0
    in_sync: NonNegative = 0
    drifted: NonNegative = 0
    pushed: NonNegative = 0
    failed: NonNegative = 0


class HoldStatus(Model):
    id: str = Field(description="Set annotation invsync.dev/approve-hold to this value to release the hold.")
    zeroing: NonNegative = Field(description="Listings the held plan would set to zero.")
    of: NonNegative = Field(description="Listings that show stock now.")


class SyncRuleStatus(Model):
    observed_generation: int | None = Field(default=None, description="Generation last reconciled.")
    conditions: Conditions
    last_sync_time: str | None = Field(default=None, json_schema_extra={"format": "date-time"})
    last_handled_requested_at: str | None = Field(
        default=None, description="Last value of invsync.dev/requested-at acted upon."
    )
    summary: SyncSummary = Field(default_factory=SyncSummary, description="Counts over all stores.")
    stores: list[StoreSummary] = Field(default_factory=list, description="Counts per store.")
    hold: HoldStatus | None = Field(default=None, description="Present only while a plan is held.")
    last_full_read_time: str | None = Field(
        default=None,
        description=(
            "When the listings of every selected Store were last read in full: the counts rest on that "
            "read and the updates acknowledged since. A read that changes nothing moves it at most "
            "once an hour."
        ),
        json_schema_extra={"format": "date-time"},
    )
    acknowledged_since_full_read: int | None = Field(
        default=None, description="Updates the platform acknowledged since lastFullReadTime."
    )


class SyncRule(Resource):
    """Which stores get stock from which warehouses, how the quantity is computed and how it is pushed."""

    kind: Literal["SyncRule"] = "SyncRule"
    spec: SyncRuleSpec = Field(description="How quantities are computed and pushed.")
    status: SyncRuleStatus | None = Field(default=None, description="The result of the last sync.")


KINDS: dict[str, type[Resource]] = {
    "InventorySource": InventorySource,
    "Warehouse": Warehouse,
    "Store": Store,
    "SyncRule": SyncRule,
}
