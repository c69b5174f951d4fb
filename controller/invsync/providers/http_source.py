"""The generic HTTP inventory source of docs/interfaces.md, for an ERP or WMS.

``GET {endpoint}/v1/inventory?location=&cursor=&limit=`` pages with ``nextCursor``. ``GET
{endpoint}/v1/locations`` (``{"locations": [{id, name, active}]}``) is an optional addition: a source
that answers it with 404 simply does not list its locations.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from sys import intern

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engine.records import Location, StockRecord
from .base import AuthError, PartialReadError, ProviderError
from .client import Connections, Response
from .transport import RetryPolicy, Transport
from .webhooks import StockItem, parse_generic

PLATFORM = "http"
PAGE_LIMIT = 500


class _Page(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    items: list[StockItem]
    next_cursor: str | None = Field(default=None, alias="nextCursor")


class _Locations(BaseModel):
    model_config = ConfigDict(extra="ignore")

    locations: list[Location]


def _plain_page(source: str, body: bytes) -> tuple[list[StockRecord], str | None] | None:
    """A page whose every field already has its exact type, read without per-row validation (most
    of a full read's CPU otherwise), its SKUs and locations interned (the channels' slots share
    them; the read is kept between syncs); None for anything else, which `_Page` then validates (it
    coerces what it may and names what it refuses)."""
    try:
        page = orjson.loads(body)
    except ValueError:
        return None
    if not isinstance(page, dict):
        return None
    items, cursor = page.get("items"), page.get("nextCursor")
    if not isinstance(items, list) or not (cursor is None or type(cursor) is str) or "next_cursor" in page:
        return None
    records: list[StockRecord] = []
    add = records.append
    for item in items:
        if type(item) is not dict or "continue_selling" in item:  # the field's name, also accepted
            return None
        sku, location, available = item.get("sku"), item.get("location"), item.get("available")
        selling, enabled = item.get("continueSelling", False), item.get("enabled", True)
        if not (
            type(sku) is str
            and sku
            and type(location) is str
            and location
            and type(available) is int
            and type(selling) is bool
            and type(enabled) is bool
        ):
            return None
        add(StockRecord(source, intern(location), intern(sku), available, selling, enabled))
    return records, cursor


class HttpSource:
    """An ERP/WMS speaking invsync's generic inventory contract."""

    def __init__(
        self,
        *,
        name: str,
        endpoint: str,
        token: str | None,
        retry: RetryPolicy | None = None,
        connections: Connections | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.transport = Transport(
            PLATFORM, secrets=[token] if token else [], retry=retry, connections=connections
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _get(self, operation: str, path: str, params: Mapping[str, str]) -> Response:
        url = self.endpoint + path
        response = await self.transport.send(
            operation,
            lambda: self.transport.build("GET", url, params=params, headers=self._headers),
        )
        if response.status_code in (401, 403):
            raise self.transport.error(
                AuthError, operation, f"HTTP {response.status_code}: the token was refused"
            )
        return response

    async def list_locations(self) -> list[Location]:
        response = await self._get("locations", "/v1/locations", {})
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise self.transport.error(ProviderError, "locations", f"HTTP {response.status_code}")
        try:
            return _Locations.model_validate_json(response.content).locations
        except ValidationError as exc:
            raise self.transport.error(
                ProviderError, "locations", f"malformed answer: {exc.errors()[0]['msg']}"
            ) from None

    async def read_stock(self, location_ids: Collection[str]) -> list[StockRecord]:
        """All pages of every location; any failed page raises PartialReadError."""
        records: list[StockRecord] = []
        pages = 0
        for location in location_ids:
            cursor = ""
            while True:
                params = {"location": location, "limit": str(PAGE_LIMIT)} | (
                    {"cursor": cursor} if cursor else {}
                )
                try:
                    page = await self._page(params)
                except ProviderError as exc:
                    if pages == 0:
                        raise
                    raise self.transport.error(
                        PartialReadError, "inventory", f"page {pages + 1} failed, nothing read: {exc}"
                    ) from exc
                pages += 1
                items, next_cursor = page
                records += items
                if not next_cursor:
                    break
                cursor = next_cursor
        return records

    async def _page(self, params: Mapping[str, str]) -> tuple[list[StockRecord], str | None]:
        response = await self._get("inventory", "/v1/inventory", params)
        if response.status_code != 200:
            raise self.transport.error(ProviderError, "inventory", f"HTTP {response.status_code}")
        fast = _plain_page(self.name, response.content)
        if fast is not None:
            return fast
        try:
            page = _Page.model_validate_json(response.content)
            return [item.record(self.name) for item in page.items], page.next_cursor
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise self.transport.error(
                ProviderError, "inventory", f"malformed page: {where}: {first['msg']}"
            ) from None

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> list[StockRecord]:
        return parse_generic(self.name, headers, body, secret)
