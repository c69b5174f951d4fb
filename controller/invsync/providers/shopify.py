"""Shopify Admin GraphQL as an inventory source: locations and per-location inventory levels.

Throttling is cost based: a THROTTLED answer (HTTP 200) carries ``extensions.cost.throttleStatus``,
from which the wait until the bucket holds the query's cost again is computed exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import httpx

from ..api.kinds import SHOPIFY_API_VERSION
from ..engine.records import Location, StockRecord
from .base import AuthError, PartialReadError, ProviderError, WebhookRejectedError
from .transport import RetryPolicy, Transport
from .webhooks import SHOPIFY_HMAC_HEADER, parse_generic, verify_shopify

log = logging.getLogger("invsync.providers.shopify")

PLATFORM = "shopify"
API_VERSION = SHOPIFY_API_VERSION
VERSION_HEADER = "X-Shopify-API-Version"
PAGE_SIZE = 250  # Shopify's maximum for `first`
# A levels page costs 3 + 4 per level (location, connection, level, item, variant, quantities); a single
# query may cost at most 1,000 points, so 250 levels (1,003) would be refused: 200 cost 803.
LEVELS_PAGE_SIZE = 200
LOCATION_GID = "gid://shopify/Location/"
ITEM_GID = "gid://shopify/InventoryItem/"

LOCATIONS_QUERY = """query InvsyncLocations($first: Int!, $after: String) {
  locations(first: $first, after: $after, includeInactive: true) {
    pageInfo { hasNextPage endCursor }
    nodes { id name isActive }
  }
}"""

LEVELS_QUERY = """query InvsyncLevels($location: ID!, $first: Int!, $after: String) {
  location(id: $location) {
    inventoryLevels(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        item { id sku tracked variant { inventoryPolicy } }
        quantities(names: ["available"]) { name quantity }
      }
    }
  }
}"""


def _throttle_hint(response: httpx.Response) -> float | None:
    """Seconds until the cost bucket can pay for the throttled query again, or None if not throttled."""
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors
    ):
        return None
    cost = (body.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(missing / float(status["restoreRate"]), 0.05)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 0.0


# Per shop (GraphQL URL): inventory item legacy id -> (sku, continue selling) from the last read.
# Shopify's own webhook names items by id only, and the client that parses a delivery is rarely the
# one that read the stock.
_ITEMS: dict[str, dict[int, tuple[str, bool]]] = {}


class ShopifySource:
    """One Shopify store's locations and stock."""

    def __init__(
        self,
        *,
        name: str,
        endpoint: str,
        access_token: str,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        api_version: str = API_VERSION,
    ) -> None:
        self.name = name
        self.api_version = api_version
        self._fell_forward = False
        self.url = f"{endpoint.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._token = access_token
        self.transport = Transport(PLATFORM, secrets=[access_token], client=client, retry=retry)
        self._items = _ITEMS.setdefault(self.url, {})

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _query(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        body = {"query": query, "variables": dict(variables)}
        response = await self.transport.send(
            "graphql",
            lambda: self.transport.client.build_request(
                "POST", self.url, json=body, headers={"X-Shopify-Access-Token": self._token}
            ),
            hint=_throttle_hint,
        )
        if response.status_code in (401, 403):
            raise self.transport.error(
                AuthError, "graphql", f"HTTP {response.status_code}: the access token was refused"
            )
        if response.status_code == 404:
            raise self.transport.error(
                ProviderError,
                "graphql",
                f"HTTP 404: no shop here, or Shopify does not serve API version "
                f"{self.api_version} (spec.shopifyApiVersion)",
            )
        served = response.headers.get(VERSION_HEADER)
        if served and served != self.api_version and not self._fell_forward:
            self._fell_forward = True
            log.warning(
                "shopify source %s: Shopify answered with API version %s, not %s (no longer supported); "
                "set spec.shopifyApiVersion to a supported version",
                self.name,
                served,
                self.api_version,
            )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200 or not isinstance(payload, dict):
            raise self.transport.error(
                ProviderError, "graphql", f"HTTP {response.status_code}: unexpected answer"
            )
        if payload.get("errors"):
            messages = "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in payload["errors"]
            )
            raise self.transport.error(ProviderError, "graphql", messages)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise self.transport.error(ProviderError, "graphql", "answer without data")
        return data

    async def list_locations(self) -> list[Location]:
        locations: list[Location] = []
        after: str | None = None
        while True:
            conn = (await self._query(LOCATIONS_QUERY, {"first": PAGE_SIZE, "after": after}))["locations"]
            locations += [
                Location(n["id"], n.get("name", ""), bool(n.get("isActive", True))) for n in conn["nodes"]
            ]
            if not conn["pageInfo"]["hasNextPage"]:
                return locations
            after = conn["pageInfo"]["endCursor"]

    async def read_stock(self, location_ids: Collection[str]) -> list[StockRecord]:
        """All levels at these locations; any failed page raises PartialReadError."""
        records: list[StockRecord] = []
        items: dict[int, tuple[str, bool]] = {}
        pages = 0
        for location in location_ids:
            after: str | None = None
            while True:
                variables = {"location": location, "first": LEVELS_PAGE_SIZE, "after": after}
                try:
                    data = await self._query(LEVELS_QUERY, variables)
                except ProviderError as exc:
                    if pages == 0:
                        raise
                    raise self.transport.error(
                        PartialReadError, "graphql", f"page {pages + 1} failed, nothing read: {exc}"
                    ) from exc
                pages += 1
                if data.get("location") is None:
                    raise self.transport.error(
                        ProviderError, "graphql", f"location {location} does not exist"
                    )
                conn = data["location"]["inventoryLevels"]
                for node in conn["nodes"]:
                    item = node["item"]
                    sku = item.get("sku") or ""
                    if not sku:
                        continue  # an item without a SKU cannot be matched to any listing
                    policy = (item.get("variant") or {}).get("inventoryPolicy", "DENY")
                    continue_selling = policy == "CONTINUE" or not item.get("tracked", True)
                    available = next(
                        (int(q["quantity"]) for q in node["quantities"] if q["name"] == "available"), 0
                    )
                    items[_legacy_id(item["id"])] = (sku, continue_selling)
                    records.append(StockRecord(self.name, location, sku, available, continue_selling))
                if not conn["pageInfo"]["hasNextPage"]:
                    break
                after = conn["pageInfo"]["endCursor"]
        self._items.update(items)
        return records

    def parse_webhook(self, headers: Mapping[str, str], body: bytes, secret: str) -> list[StockRecord]:
        """Shopify's ``inventory_levels/update`` (by X-Shopify-Hmac-Sha256) or the generic format."""
        if SHOPIFY_HMAC_HEADER.lower() not in {k.lower() for k in headers}:
            return parse_generic(self.name, headers, body, secret)
        payload = verify_shopify(headers, body, secret)
        known = self._items.get(payload["inventory_item_id"])
        if known is None:
            raise WebhookRejectedError(
                f"inventory item {payload['inventory_item_id']} is not in the last read of source "
                f"{self.name}; the next full read will pick it up",
                status=422,
            )
        sku, continue_selling = known
        return [
            StockRecord(
                self.name,
                LOCATION_GID + str(payload["location_id"]),
                sku,
                payload["available"],
                continue_selling,
            )
        ]


def _legacy_id(gid: str) -> int:
    """Shopify webhooks use the numeric id that ends a GraphQL global id."""
    return int(gid.rsplit("/", 1)[-1])
