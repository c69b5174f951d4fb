"""Plain records that cross the boundary between providers, the engine and the CLI snapshots."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

# The records a read or a plan makes one of per slot (a full read holds a million) are msgspec Structs:
# built in C (0.05 us against 1.2 for a frozen dataclass), a Listing in 80 bytes against 96, and not
# tracked by the cyclic collector (gc=False: their fields are strings and numbers, so no cycle can pass
# through them), so the slots a rule keeps between syncs are not scanned by every full collection
# (bench/bench_read.py, bench/bench_memory.py). msgspec.structs.replace makes a changed copy.


class StockRecord(msgspec.Struct, frozen=True, gc=False):
    """Stock of one SKU at one location of one InventorySource, as the source reports it."""

    source: str  # InventorySource name
    location: str  # location id inside the source
    sku: str  # seller SKU
    available: int
    continue_selling: bool = False  # Shopify CONTINUE or untracked; http continueSelling
    enabled: bool = True  # false: not stocked / flagged disabled at this location


class Listing(msgspec.Struct, frozen=True, gc=False):
    """One live channel slot: a seller SKU's quantity in one channel warehouse of one store."""

    store: str  # Store name
    sku: str  # seller SKU
    product_id: str
    sku_id: str
    channel_warehouse_id: str
    quantity: int
    # The platform's product status as read ("" when it has none), and whether the platform accepts
    # inventory updates for it (TikTok: only ACTIVATE products). A slot that is not writable is read
    # and reported, never pushed.
    status: str = ""
    writable: bool = True


class SlotUpdate(msgspec.Struct, frozen=True, gc=False):
    """An absolute quantity to set on one slot (never an adjustment, so retries cannot double-count)."""

    product_id: str
    sku_id: str
    channel_warehouse_id: str
    quantity: int
    sku: str = ""  # seller SKU, for reporting
    # Sent at its live value only because the platform takes a SKU's warehouses together (TikTok:
    # every warehouse assigned to the SKU in each update); not a change the plan asked for.
    carried: bool = False


@dataclass(frozen=True, slots=True)
class ChannelWarehouse:
    """A warehouse as the sales channel reports it."""

    id: str
    name: str = ""
    type: str = ""  # TikTok: SALES_WAREHOUSE | RETURN_WAREHOUSE
    effect_status: str = "ENABLED"  # ENABLED | DISABLED | RESTRICTED
    is_default: bool = False


@dataclass(frozen=True, slots=True)
class Location:
    """A stock location as the inventory source reports it."""

    id: str
    name: str = ""
    active: bool = True


class PlanRow(msgspec.Struct, frozen=True, gc=False):
    """The desired quantity of one managed slot, and the step of docs/rules.md that decided it."""

    rule: str
    store: str
    channel_warehouse_id: str
    sku: str
    product_id: str
    sku_id: str
    live: int
    desired: int
    reason: str  # ratio | threshold | continueSelling | fixed | lowStock | clamp | noSource


@dataclass(frozen=True, slots=True)
class Conflict:
    """A younger rule also selects `count` slots of `store` that the older rule `owner` owns."""

    store: str
    owner: str
    count: int


@dataclass(frozen=True, slots=True)
class Hold:
    """A plan held by the safety policy; `id` is stable while the zeroing set does not change."""

    id: str
    zeroing: int
    of: int


@dataclass(frozen=True, slots=True)
class ProductBatch:
    """One platform write: every changed slot of one product (TikTok takes one update per product),
    and the other slots of the changed SKUs, carried at their live values."""

    store: str
    product_id: str
    updates: tuple[SlotUpdate, ...]
    priority: int  # lower goes first: 0 zeroes, 1 decreases, 2 increases only


@dataclass(frozen=True, slots=True)
class HeldSlots:
    """`count` slots of `store` the rule manages but holds: the data that would decide them cannot be
    trusted, so they are not pushed (docs/rules.md, "Held slots"). `cause` is one of HELD_CAUSES."""

    store: str
    cause: str
    warehouses: tuple[str, ...]  # the Warehouses at fault
    count: int
    location: str = ""  # duplicateLocation: "source/location" counted twice

    @property
    def message(self) -> str:
        names = ", ".join(self.warehouses)
        if self.cause == "missingWarehouse":
            what = (
                f"Warehouse {names} does not exist"
                if len(self.warehouses) == 1
                else f"Warehouses {names} do not exist"
            )
        elif self.cause == "duplicateLocation":
            what = f"Warehouses {names} are the same location {self.location}, which counts once at most"
        else:
            what = f"only Warehouses that are not Ready ({names}) could feed them"
        return f"{self.count} listings of Store {self.store} held: {what}"


HELD_CAUSES = ("unreadyWarehouse", "missingWarehouse", "duplicateLocation")


# Why a platform refuses inventory updates of a product not in its writable status (docs/platforms.md).
_WRITABLE_ONLY: dict[str, str] = {
    "tiktok": "TikTok updates only ACTIVATE products",
    "shopee": "Shopee updates stock of NORMAL items only",
    "lazada": "Lazada takes no stock update for stock held in its own warehouses (FBL)",
}


@dataclass(frozen=True, slots=True)
class NotWritable:
    """`count` slots of `store` the rule would manage, whose product the platform takes no inventory
    update for (its status): read and reported, never pushed."""

    store: str
    platform: str
    status: str
    count: int

    @property
    def reason(self) -> str:
        why = _WRITABLE_ONLY.get(self.platform, "the platform takes no inventory update for it")
        return f"product status {self.status or 'unknown'}: {why}"
