"""Shopify Admin GraphQL as an inventory source: locations and per-location inventory levels.

Throttling is cost based: a THROTTLED answer (HTTP 200) carries ``extensions.cost.throttleStatus``,
from which the wait until the bucket holds the query's cost again is computed exactly. A full read of
a large source is one bulk query operation (docs/platforms.md, "Shopify bulk reads"): 10 points and
the operation's generation time instead of 4 points per level paged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Mapping
from typing import Any

import orjson

from ..api.kinds import SHOPIFY_API_VERSION
from ..engine.records import Location, StockRecord
from .base import AuthError, PartialReadError, ProviderError, UnavailableError, WebhookRejectedError
from .client import Connections, NoAnswer, Response
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


# A full read whose estimate (variants x locations asked) reaches this many levels is one bulk
# operation: 2,000 levels paged cost ~8,000 points, four standard-plan buckets (a minute of waiting at
# 100 points/s), while a bulk read costs ~10 points plus its polls whatever the size.
BULK_THRESHOLD = 2_000
VARIANTS_COUNT_QUERY = "query InvsyncVariantsCount { productVariantsCount { count precision } }"
# Bulk queries take no variables and ignore page sizes; connections are read as edges { node }, the
# form every bulk operations example uses. Inactive locations are read too and filtered here, as the
# paged read does.
BULK_LEVELS_QUERY = """{
  locations(includeInactive: true) {
    edges { node { id inventoryLevels { edges { node {
      item { id sku tracked variant { inventoryPolicy } }
      quantities(names: ["available"]) { name quantity }
    } } } } }
  }
}"""
BULK_RUN_MUTATION = """mutation InvsyncBulkRead($query: String!) {
  bulkOperationRunQuery(query: $query) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}"""
BULK_POLL_QUERY = """query InvsyncBulkPoll($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount fileSize url }
}"""
BULK_CANCEL_MUTATION = """mutation InvsyncBulkCancel($id: ID!) {
  bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } }
}"""
# Polls come after a twentieth of the time the operation has run so far (so the wait past completion is
# at most ~5% of the generation time), never sooner than BULK_POLL_MIN nor later than BULK_POLL_MAX; each
# poll costs 1 point.
BULK_POLL_MIN, BULK_POLL_MAX, BULK_POLL_FRACTION = 0.2, 15.0, 0.05
BULK_TIMEOUT = 3600.0  # a read waits this long for its operation, then cancels it
BULK_BUSY = ("LIMIT_REACHED", "OPERATION_IN_PROGRESS")  # the shop runs as many bulk queries as allowed
FAILED_STATUSES = ("FAILED", "CANCELED", "EXPIRED")


def _throttle_hint(response: Response) -> float | None:
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
        retry: RetryPolicy | None = None,
        connections: Connections | None = None,
        api_version: str = API_VERSION,
        bulk_threshold: int = BULK_THRESHOLD,
        bulk_timeout: float = BULK_TIMEOUT,
    ) -> None:
        self.name = name
        self.bulk_threshold = bulk_threshold
        self.bulk_timeout = bulk_timeout
        self.api_version = api_version
        self._fell_forward = False
        self.url = f"{endpoint.rstrip('/')}/admin/api/{api_version}/graphql.json"
        self._token = access_token
        self.transport = Transport(PLATFORM, secrets=[access_token], retry=retry, connections=connections)
        self._items = _ITEMS.setdefault(self.url, {})

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def _query(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        body = {"query": query, "variables": dict(variables)}
        response = await self.transport.send(
            "graphql",
            lambda: self.transport.build(
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
        """All levels at these locations, paged or (a large source) by one bulk operation; a failed
        page, a failed or cancelled operation or an incomplete file raises PartialReadError."""
        wanted = list(dict.fromkeys(location_ids))
        if not wanted:
            return []
        estimate = await self._estimated_levels(len(wanted))
        if estimate >= self.bulk_threshold:
            return await self._bulk_read(set(wanted), estimate)
        return await self._paged_read(wanted)

    async def _estimated_levels(self, locations: int) -> int:
        """Variants times locations: every variant has one inventory item, stocked at most once per
        location."""
        counted = (await self._query(VARIANTS_COUNT_QUERY, {}))["productVariantsCount"] or {}
        return int(counted.get("count", 0)) * locations

    async def _paged_read(self, location_ids: list[str]) -> list[StockRecord]:
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
                    self._record(node, location, records, items)
                if not conn["pageInfo"]["hasNextPage"]:
                    break
                after = conn["pageInfo"]["endCursor"]
        self._items.update(items)
        return records

    def _record(
        self,
        level: Mapping[str, Any],
        location: str,
        records: list[StockRecord],
        items: dict[int, tuple[str, bool]],
    ) -> None:
        """One inventory level as a stock record (paged and bulk reads alike: a bulk read calls this
        for every line, so it keeps to plain lookups)."""
        item = level["item"]
        sku = item.get("sku")
        if not sku:
            return  # an item without a SKU cannot be matched to any listing
        variant = item.get("variant")
        continue_selling = (
            variant is not None and variant.get("inventoryPolicy") == "CONTINUE"
        ) or not item.get("tracked", True)
        available = 0
        for quantity in level["quantities"]:
            if quantity["name"] == "available":
                available = int(quantity["quantity"])
                break
        items[_legacy_id(item["id"])] = (sku, continue_selling)
        records.append(StockRecord(self.name, location, sku, available, continue_selling))

    # ------------------------------------------------------------------ bulk reads

    async def _bulk_read(self, location_ids: set[str], expected: int) -> list[StockRecord]:
        operation = await self._start_bulk()
        try:
            done = await self._wait_bulk(operation, expected)
        except PartialReadError:
            raise  # the operation ended on its own
        except BaseException:  # timed out, could not poll, or the sync was cancelled: free the slot
            await self._cancel_bulk(operation)
            raise
        return await self._download_bulk(done, location_ids)

    async def _start_bulk(self) -> str:
        """Start the bulk query. When the shop already runs as many as Shopify allows (five from API
        2026-01, one before), wait with backoff for one to finish, within the retry policy, then fail:
        those are this app's own (another replica, a read before a restart) and end soon, while
        paging instead would cost a hundred times the points."""
        errors: list[dict[str, Any]] = []
        for attempt in range(self.transport.retry.attempts):
            payload = (await self._query(BULK_RUN_MUTATION, {"query": BULK_LEVELS_QUERY}))[
                "bulkOperationRunQuery"
            ]
            errors = list(payload.get("userErrors") or [])
            operation = payload.get("bulkOperation")
            if not errors and operation:
                return str(operation["id"])
            if not all(e.get("code") in BULK_BUSY for e in errors):
                break
            if attempt + 1 < self.transport.retry.attempts:
                await asyncio.sleep(self.transport.retry.backoff(attempt))
        messages = "; ".join(f"{e.get('code') or 'error'}: {e.get('message', '')}" for e in errors)
        if errors and all(e.get("code") in BULK_BUSY for e in errors):
            raise self.transport.error(
                UnavailableError,
                "graphql",
                f"bulkOperationRunQuery refused after {self.transport.retry.attempts} attempts, the shop "
                f"runs as many bulk queries as Shopify allows ({messages}); the next sync tries again",
                code="bulk_busy",
            )
        raise self.transport.error(ProviderError, "graphql", f"bulkOperationRunQuery refused: {messages}")

    async def _wait_bulk(self, operation: str, expected: int) -> dict[str, Any]:
        """Poll until the operation ends. While it runs, objectCount against the expected objects
        predicts when it ends; the next poll comes then if that is sooner than the usual interval, and
        five times as often once the count reaches the expectation."""
        started = time.monotonic()
        objects = 0
        while True:
            elapsed = time.monotonic() - started
            if elapsed > self.bulk_timeout:
                raise self.transport.error(
                    UnavailableError,
                    "graphql",
                    f"bulk operation {operation} still running after {self.bulk_timeout:.0f}s; cancelled",
                )
            wait = elapsed * BULK_POLL_FRACTION
            if objects >= expected:  # it should end any moment (or the estimate was low)
                wait = elapsed * BULK_POLL_FRACTION / 5
            elif objects > 0:
                wait = min(wait, elapsed * (expected - objects) / objects)
            await asyncio.sleep(min(BULK_POLL_MAX, max(BULK_POLL_MIN, wait)))
            state = (await self._query(BULK_POLL_QUERY, {"id": operation}))["bulkOperation"]
            if state is None:
                raise self.transport.error(
                    PartialReadError, "graphql", f"bulk operation {operation} vanished"
                )
            objects = int(state.get("objectCount") or 0)
            status = state.get("status")
            if status == "COMPLETED":
                return dict(state)
            if status in FAILED_STATUSES:
                why = f" ({state['errorCode']})" if state.get("errorCode") else ""
                raise self.transport.error(
                    PartialReadError,
                    "graphql",
                    f"bulk operation {operation} ended {status}{why}; nothing read",
                    code=str(status),
                )

    async def _cancel_bulk(self, operation: str) -> None:
        try:
            await self._query(BULK_CANCEL_MUTATION, {"id": operation})
        except ProviderError as exc:
            log.info("shopify source %s: could not cancel bulk operation %s: %s", self.name, operation, exc)

    async def _download_bulk(self, state: Mapping[str, Any], location_ids: set[str]) -> list[StockRecord]:
        """Stream the JSONL file line by line: a location line, then its levels (``__parentId``).
        The file must hold exactly the operation's objectCount lines and fileSize bytes."""
        objects = int(state.get("objectCount") or 0)
        url = state.get("url")
        if not url:
            if objects == 0:
                return []  # Shopify gives no file when a bulk query found nothing
            raise self.transport.error(
                PartialReadError, "bulk_download", f"bulk operation {state['id']} completed without a URL"
            )
        url = str(url)
        expected_size = int(state["fileSize"]) if state.get("fileSize") else None
        records: list[StockRecord] = []
        items: dict[int, tuple[str, bool]] = {}
        lines = size = 0
        response = await self.transport.send(
            "bulk_download", lambda: self.transport.build("GET", url), stream=True
        )
        try:
            if response.status_code != 200:
                raise self.transport.error(
                    PartialReadError,
                    "bulk_download",
                    f"HTTP {response.status_code} for the result of bulk operation {state['id']} "
                    "(an expired URL is refused); nothing read",
                )
            rest = b""
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                *complete, rest = (rest + chunk).split(b"\n")
                for raw in complete:
                    lines += 1
                    self._bulk_line(raw, lines, location_ids, records, items)
        except NoAnswer as exc:
            raise self.transport.error(
                PartialReadError, "bulk_download", f"download broke after {size} bytes ({exc}); nothing read"
            ) from exc
        finally:
            await response.aclose()
        if rest or lines != objects or (expected_size is not None and size != expected_size):
            raise self.transport.error(
                PartialReadError,
                "bulk_download",
                f"incomplete result of bulk operation {state['id']}: {lines} of {objects} objects, "
                f"{size} of {expected_size} bytes; nothing read",
            )
        self._items.update(items)
        return records

    def _bulk_line(
        self,
        raw: bytes,
        number: int,
        location_ids: set[str],
        records: list[StockRecord],
        items: dict[int, tuple[str, bool]],
    ) -> None:
        try:
            line = orjson.loads(raw)
            parent = line.get("__parentId")
            if parent in location_ids:
                self._record(line, parent, records, items)
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self.transport.error(
                PartialReadError, "bulk_download", f"line {number} of the bulk result is malformed ({exc})"
            ) from exc

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
    return int(gid.rpartition("/")[2])
