"""The Shopify Admin GraphQL fake: a subset of the Admin schema (what invsync's client reads), with
Shopify's calculated query cost, single-query cost limit, cost bucket and API version handling
(docs/platforms.md names the shopify.dev page of each rule)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    build_schema,
    get_named_type,
    is_leaf_type,
    parse,
    validate,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .common import cursor, json_response, label, offset_of
from .state import SandboxState, ShShop

MAX_QUERY_COST = 1000  # rate-limits page: a single query's requested cost limit
MAX_PAGE = 250  # limits page: `first` / `last` at most 250
VERSION_HEADER = "X-Shopify-API-Version"
QUARTERS = frozenset({"01", "04", "07", "10"})  # versioning page: a stable version each quarter

# The part of the Admin API schema the fake serves: the types and fields of invsync's two queries, as
# Shopify's Admin schema defines them (checked against the published 2025-01 schema).
SCHEMA_SUBSET = build_schema("""
type QueryRoot {
  locations(first: Int, after: String, last: Int, before: String, reverse: Boolean = false, query: String,
            includeLegacy: Boolean = false, includeInactive: Boolean = false): LocationConnection!
  location(id: ID): Location
}
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! endCursor: String startCursor: String }
type LocationConnection { pageInfo: PageInfo! nodes: [Location!]! }
type Location {
  id: ID!
  name: String!
  isActive: Boolean!
  inventoryLevels(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
                  query: String): InventoryLevelConnection!
}
type InventoryLevelConnection { pageInfo: PageInfo! nodes: [InventoryLevel!]! }
type InventoryLevel { id: ID! item: InventoryItem! quantities(names: [String!]!): [InventoryQuantity!]! }
type InventoryQuantity { id: ID! name: String! quantity: Int! }
type InventoryItem { id: ID! sku: String tracked: Boolean! variant: ProductVariant! }
type ProductVariant { id: ID! inventoryPolicy: ProductVariantInventoryPolicy! }
enum ProductVariantInventoryPolicy { DENY CONTINUE }
schema { query: QueryRoot }
""")


class _GraphQLBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    variables: dict[str, Any] = Field(default_factory=dict)


@functools.lru_cache(maxsize=64)
def _document(query: str) -> tuple[DocumentNode | None, tuple[GraphQLError, ...]]:
    """The parsed document and its validation errors against the subset (clients send few documents)."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, (exc,)
    return document, tuple(validate(SCHEMA_SUBSET, document))


def _size(field: FieldNode, variables: Mapping[str, Any]) -> int:
    """A connection's requested size: its `first` or `last` argument (a literal or a variable)."""
    for arg in field.arguments:
        if arg.name.value in ("first", "last"):
            value = arg.value
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, VariableNode):
                given = variables.get(value.name.value)
                return given if isinstance(given, int) else 0
    return 0


def query_cost(selections: SelectionSetNode, parent: GraphQLObjectType, variables: Mapping[str, Any]) -> int:
    """Shopify's requested cost: scalars and enums 0, objects 1, a connection 2 plus its size times
    the cost of one node; the page info of a connection is free."""
    cost = 0
    for selection in selections.selections:
        if not isinstance(selection, FieldNode) or selection.name.value.startswith("__"):
            continue
        field = parent.fields[selection.name.value]
        named = get_named_type(field.type)
        if is_leaf_type(named) or selection.selection_set is None:
            continue
        assert isinstance(named, GraphQLObjectType)
        if named.name.endswith("Connection"):
            nodes = next(
                (
                    s
                    for s in selection.selection_set.selections
                    if isinstance(s, FieldNode) and s.name.value == "nodes"
                ),
                None,
            )
            node_type = get_named_type(named.fields["nodes"].type)
            assert isinstance(node_type, GraphQLObjectType)
            per_node = 1 + (
                query_cost(nodes.selection_set, node_type, variables) if nodes and nodes.selection_set else 0
            )
            cost += 2 + _size(selection, variables) * per_node
        else:
            cost += 1 + query_cost(selection.selection_set, named, variables)
    return cost


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
        version = self._version(shop, request.match_info["version"])
        if version is None:
            return json_response({"errors": "Not Found"}, 404)
        if request.headers.get("X-Shopify-Access-Token") != shop.access_token:
            return json_response(
                {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
                401,
            )
        response = await self._answer(shop, request)
        response.headers[VERSION_HEADER] = version
        return response

    @staticmethod
    def _version(shop: ShShop, asked: str) -> str | None:
        """The version that serves a request: the one asked if served, the oldest served one for an
        older (no longer supported) version, None (404) for one not released."""
        served = sorted(shop.api_versions)
        if asked in served:
            return asked
        parts = asked.split("-")
        well_formed = len(parts) == 2 and parts[0].isdigit() and len(parts[0]) == 4 and parts[1] in QUARTERS
        return served[0] if well_formed and served and asked < served[0] else None

    async def _answer(self, shop: ShShop, request: web.Request) -> web.Response:
        try:
            body = _GraphQLBody.model_validate_json(await request.read())
        except ValidationError:
            return json_response(
                {"errors": [{"message": "Body must be JSON with a query string and variables"}]}, 400
            )
        document, problems = _document(body.query)
        if problems:
            return json_response({"errors": [p.formatted for p in problems]})
        assert document is not None
        operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        root = next(s for s in operation.selection_set.selections if isinstance(s, FieldNode)).name.value
        query_root = SCHEMA_SUBSET.query_type
        assert query_root is not None
        first = body.variables.get("first")
        after = body.variables.get("after") or ""
        if not isinstance(first, int) or not 1 <= first <= MAX_PAGE:
            return self._error(
                f"Variable $first must be an integer between 1 and {MAX_PAGE}", "argumentLiteralsIncompatible"
            )
        offset = offset_of(after) if isinstance(after, str) else None
        if offset is None:
            return self._error(
                f"Invalid cursor for current pagination sort: {after}", "argumentLiteralsIncompatible"
            )
        requested = query_cost(operation.selection_set, query_root, body.variables)
        if requested > MAX_QUERY_COST:
            return json_response(
                {
                    "errors": [
                        {
                            "message": f"Query cost is {requested}, which exceeds the single query max cost "
                            f"limit ({MAX_QUERY_COST}).",
                            "extensions": {
                                "code": "MAX_COST_EXCEEDED",
                                "cost": requested,
                                "maxCost": MAX_QUERY_COST,
                            },
                        }
                    ]
                }
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
        if not shop.bucket.take(requested):
            return json_response(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": self._cost(shop, requested, None)},
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
        # the actual cost counts the nodes returned, not the nodes asked for
        per_node = requested - query_cost(
            operation.selection_set, query_root, {**body.variables, "first": first - 1}
        )
        actual = requested - (first - len(page["nodes"])) * per_node
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
    def _cost(shop: ShShop, requested: int, actual: int | None) -> dict[str, Any]:
        """``extensions.cost``; the actual cost is null when the query did not run (throttled)."""
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": shop.throttle.maximum_available,
                "currentlyAvailable": int(shop.bucket.refill()),
                "restoreRate": shop.throttle.restore_rate,
            },
        }
