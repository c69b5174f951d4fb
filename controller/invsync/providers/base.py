"""The small interfaces every provider implements, and the errors they raise.

Operator, CLI and benchmarks depend on these, never on a concrete platform client.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..engine.records import ChannelWarehouse, Listing, Location, SlotUpdate, StockRecord


class ProviderError(Exception):
    """A platform call failed; the message never contains a credential."""

    def __init__(self, message: str, *, platform: str = "", operation: str = "", code: str = "") -> None:
        super().__init__(message)
        self.platform = platform
        self.operation = operation
        self.code = code


class AuthError(ProviderError):
    """The platform refused the credentials (wrong, expired beyond refresh, or bad signature)."""


class CredentialsError(ProviderError):
    """A credentials Secret lacks a key the provider needs (the message names the key, never a value)."""


class RateLimitedError(ProviderError):
    """Retries were exhausted while the platform kept answering 429 / its rate-limit code."""


class UnavailableError(ProviderError):
    """The platform could not be reached or kept failing (5xx, timeouts, connection errors)."""


class PartialReadError(ProviderError):
    """A read returned only part of the data (a page failed mid-way); nothing may be pushed from it."""


class MultiWarehouseRefusedError(ProviderError):
    """The platform refused a per-warehouse write: the shop is not whitelisted for multi-warehouse."""


class WebhookRejectedError(ProviderError):
    """A webhook delivery failed verification or could not be parsed."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """Result of one slot in a push: ok, or failed with the platform's reason."""

    update: SlotUpdate
    ok: bool
    message: str = ""


class InventorySourceProvider(Protocol):
    """A system that knows real stock (Shopify, a generic HTTP ERP/WMS)."""

    async def list_locations(self) -> list[Location]: ...

    async def read_stock(self, location_ids: Collection[str]) -> list[StockRecord]:
        """Every stock record at these locations, all pages; raises PartialReadError rather than
        returning part of the data."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> list[StockRecord]:
        """Verify a webhook delivery (raises WebhookRejectedError) and return the rows it names."""
        ...

    async def aclose(self) -> None: ...


class SalesChannel(Protocol):
    """A sales-channel shop (TikTok Shop)."""

    async def list_warehouses(self) -> list[ChannelWarehouse]: ...

    async def list_listings(self, seller_skus: Collection[str] | None = None) -> list[Listing]:
        """Every live slot of the shop, all pages; with ``seller_skus``, only those SKUs' slots
        (what a webhook-triggered sync needs)."""
        ...

    async def push(self, product_id: str, updates: Sequence[SlotUpdate]) -> list[PushOutcome]:
        """Set absolute quantities for one product (the platform's batching unit)."""
        ...

    async def aclose(self) -> None: ...
