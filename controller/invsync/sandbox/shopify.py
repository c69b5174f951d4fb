"""The Shopify Admin GraphQL fake: the two queries invsync's client sends, with cost-based throttling."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .common import cursor, json_response, label, offset_of
from .state import SandboxState, ShShop


class _GraphQLBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    variables: dict[str, Any] = Field(default_factory=dict)


_ROOT = re.compile(r"^\s*query\s+\w*\s*(?:\([^)]*\))?\s*\{\s*(\w+)\s*\(", re.S)
_AVAILABLE = 'quantities(names: ["available"])'


class ShopifyFake:
    """The two Admin GraphQL queries the client sends, with Shopify's cost-based throttling."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/shopify/{shop}/admin/api/{version}/graphql.json", self.graphql)]

    @staticmethod
    def _error(message: str, code: str, status: int = 200) -> web.Response:
        return json_response({"errors": [{"message": message, "extensions": {"code": code}}]}, status)

    async def graphql(self, request: web.Request) -> web.Response:
        shop = self.state.shopify.get(request.match_info["shop"])
        label(request, "shopify", "graphql")
        if shop is None:
            return json_response({"errors": "Not Found"}, 404)
        if request.headers.get("X-Shopify-Access-Token") != shop.access_token:
            return json_response(
                {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
                401,
            )
        try:
            body = _GraphQLBody.model_validate_json(await request.read())
        except ValidationError:
            return json_response(
                {"errors": [{"message": "Body must be JSON with a query string and variables"}]}, 400
            )
        match = _ROOT.match(body.query)
        root = match.group(1) if match else ""
        if root not in ("locations", "location") or (root == "location" and _AVAILABLE not in body.query):
            return self._error(
                f"Field '{root or '?'}' doesn't exist on type 'QueryRoot' (the sandbox serves the "
                "locations and location.inventoryLevels queries of invsync's client)",
                "undefinedField",
            )
        first = body.variables.get("first")
        after = body.variables.get("after") or ""
        if not isinstance(first, int) or not 1 <= first <= 250:
            return self._error(
                "Variable $first must be an integer between 1 and 250", "argumentLiteralsIncompatible"
            )
        offset = offset_of(after) if isinstance(after, str) else None
        if offset is None:
            return self._error(
                f"Invalid cursor for current pagination sort: {after}", "argumentLiteralsIncompatible"
            )
        effect = self.state.effect("shopify", "graphql", shop.shop, bool(after))
        if effect is not None:
            await asyncio.sleep(effect.latency)
            if effect.status:
                headers = (
                    {"Retry-After": f"{effect.retry_after:g}"} if effect.retry_after is not None else None
                )
                return json_response(
                    {"errors": [{"message": "Internal error (injected fault)"}]}, effect.status, headers
                )
        # Shopify's cost model: 1 per object, 2 per connection, ``first`` times the cost of a node.
        per_node = 3 if root == "location" else 1
        requested = (3 if root == "location" else 2) + first * per_node
        if not shop.bucket.take(requested):
            return json_response(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": self._cost(shop, requested, 0)},
                }
            )
        if root == "locations":
            page = self._page(list(shop.locations.values()), offset, first)
            data: dict[str, Any] = {"locations": page}
        else:
            location = body.variables.get("location")
            items = shop.by_location.get(location, []) if isinstance(location, str) else []
            page = self._page(items, offset, first)
            page["nodes"] = [self._level(i, str(location)) for i in page["nodes"]]
            known = isinstance(location, str) and location in shop.locations
            data = {"location": {"inventoryLevels": page} if known else None}
            self.state.read_pages["shopify"] += 1
        actual = requested - first * per_node + len(page["nodes"]) * per_node
        shop.bucket.tokens = min(shop.bucket.capacity, shop.bucket.tokens + requested - actual)
        return json_response({"data": data, "extensions": {"cost": self._cost(shop, requested, actual)}})

    @staticmethod
    def _page(nodes: Sequence[Any], offset: int, first: int) -> dict[str, Any]:
        chunk = list(nodes[offset : offset + first])
        return {
            "pageInfo": {
                "hasNextPage": offset + first < len(nodes),
                "endCursor": cursor(offset + len(chunk)) if chunk else None,
            },
            "nodes": chunk,
        }

    @staticmethod
    def _level(item: Any, location: str) -> dict[str, Any]:
        return {
            "item": {
                "id": item.gid,
                "sku": item.sku,
                "tracked": item.tracked,
                "variant": {"inventoryPolicy": item.policy},
            },
            "quantities": [{"name": "available", "quantity": item.levels[location]}],
        }

    @staticmethod
    def _cost(shop: ShShop, requested: int, actual: int) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": shop.throttle.maximum_available,
                "currentlyAvailable": int(shop.bucket.refill()),
                "restoreRate": shop.throttle.restore_rate,
            },
        }
