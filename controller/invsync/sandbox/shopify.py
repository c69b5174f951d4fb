"""The Shopify Admin GraphQL fake: a subset of the Admin schema (what invsync's client reads), with
Shopify's calculated query cost, single-query cost limit, cost bucket, API version handling and bulk
query operations (docs/platforms.md names the shopify.dev page of each rule)."""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    IntValueNode,
    NameNode,
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
from .state import SandboxState, ShBulkOperation, ShItem, ShShop

MAX_QUERY_COST = 1000  # rate-limits page: a single query's requested cost limit
MAX_PAGE = 250  # limits page: `first` / `last` at most 250
VERSION_HEADER = "X-Shopify-API-Version"
QUARTERS = frozenset({"01", "04", "07", "10"})  # versioning page: a stable version each quarter
MUTATION_COST = 10  # rate-limits page: a mutation field costs 10 points
# Bulk query operations (bulk-operations/queries guide, bulkOperationRunQuery reference)
BULK_MAX_CONNECTIONS = 5
BULK_MAX_DEPTH = 2  # levels of nested connections
BULK_CONCURRENT = {"2026-01": 5}  # from this version on: five bulk queries per shop at a time; before: one
RUNNING = frozenset({"CREATED", "RUNNING", "CANCELING"})

# The part of the Admin API schema the fake serves: the types and fields of invsync's documents, as
# Shopify's Admin schema defines them (checked against the published 2025-01 schema; bulkOperation(id:)
# and groupObjects came in 2026-01, from their reference pages).
SCHEMA_SUBSET = build_schema("""
type QueryRoot {
  locations(first: Int, after: String, last: Int, before: String, reverse: Boolean = false, query: String,
            includeLegacy: Boolean = false, includeInactive: Boolean = false): LocationConnection!
  location(id: ID): Location
  productVariantsCount(query: String): Count
  bulkOperation(id: ID!): BulkOperation
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
}
type Mutation {
  bulkOperationRunQuery(query: String!, groupObjects: Boolean! = false): BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
}
type Count { count: Int! precision: CountPrecision! }
enum CountPrecision { EXACT AT_LEAST }
scalar DateTime
scalar UnsignedInt64
scalar URL
enum BulkOperationType { QUERY MUTATION }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationUserErrorCode { INVALID LIMIT_REACHED OPERATION_IN_PROGRESS }
type BulkOperation {
  id: ID! status: BulkOperationStatus! errorCode: BulkOperationErrorCode createdAt: DateTime!
  completedAt: DateTime objectCount: UnsignedInt64! rootObjectCount: UnsignedInt64! fileSize: UnsignedInt64
  url: URL partialDataUrl: URL query: String! type: BulkOperationType!
}
type BulkOperationUserError { code: BulkOperationUserErrorCode field: [String!] message: String! }
type UserError { field: [String!] message: String! }
type BulkOperationRunQueryPayload { bulkOperation: BulkOperation userErrors: [BulkOperationUserError!]! }
type BulkOperationCancelPayload { bulkOperation: BulkOperation userErrors: [UserError!]! }
type PageInfo { hasNextPage: Boolean! hasPreviousPage: Boolean! endCursor: String startCursor: String }
type LocationConnection { pageInfo: PageInfo! edges: [LocationEdge!]! nodes: [Location!]! }
type LocationEdge { cursor: String! node: Location! }
type Location {
  id: ID!
  name: String!
  isActive: Boolean!
  inventoryLevels(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
                  query: String): InventoryLevelConnection!
}
type InventoryLevelConnection { pageInfo: PageInfo! edges: [InventoryLevelEdge!]! nodes: [InventoryLevel!]! }
type InventoryLevelEdge { cursor: String! node: InventoryLevel! }
type InventoryLevel { id: ID! item: InventoryItem! quantities(names: [String!]!): [InventoryQuantity!]! }
type InventoryQuantity { id: ID! name: String! quantity: Int! }
type InventoryItem {
  id: ID!
  sku: String
  tracked: Boolean!
  variant: ProductVariant!
  inventoryLevels(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
                  query: String): InventoryLevelConnection!
}
type ProductVariant { id: ID! inventoryPolicy: ProductVariantInventoryPolicy! }
enum ProductVariantInventoryPolicy { DENY CONTINUE }
schema { query: QueryRoot mutation: Mutation }
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


def _node_field(connection: FieldNode) -> FieldNode | None:
    """The selection of a connection's node: ``nodes { ... }`` or ``edges { node { ... } }``."""
    assert connection.selection_set is not None
    for s in connection.selection_set.selections:
        if not isinstance(s, FieldNode):
            continue
        if s.name.value == "nodes":
            return s
        if s.name.value == "edges" and s.selection_set is not None:
            return next(
                (
                    e
                    for e in s.selection_set.selections
                    if isinstance(e, FieldNode) and e.name.value == "node"
                ),
                None,
            )
    return None


def query_cost(selections: SelectionSetNode, parent: GraphQLObjectType, variables: Mapping[str, Any]) -> int:
    """Shopify's requested cost: scalars and enums 0, objects 1, a connection 2 plus its size times
    the cost of one node (its edges and page info are free), a mutation 10."""
    cost = 0
    for selection in selections.selections:
        if not isinstance(selection, FieldNode) or selection.name.value.startswith("__"):
            continue
        if parent is SCHEMA_SUBSET.mutation_type:
            cost += MUTATION_COST
            continue
        field = parent.fields[selection.name.value]
        named = get_named_type(field.type)
        if is_leaf_type(named) or selection.selection_set is None:
            continue
        assert isinstance(named, GraphQLObjectType)
        if named.name.endswith("Connection"):
            nodes = _node_field(selection)
            node_type = get_named_type(named.fields["nodes"].type)
            assert isinstance(node_type, GraphQLObjectType)
            per_node = 1 + (
                query_cost(nodes.selection_set, node_type, variables) if nodes and nodes.selection_set else 0
            )
            cost += 2 + _size(selection, variables) * per_node
        else:
            cost += 1 + query_cost(selection.selection_set, named, variables)
    return cost


def _connections(selections: SelectionSetNode, parent: GraphQLObjectType, depth: int = 0) -> tuple[int, int]:
    """How many connection fields a document selects and how deep they nest."""
    count, deepest = 0, 0
    for selection in selections.selections:
        if not isinstance(selection, FieldNode) or selection.selection_set is None:
            continue
        named = get_named_type(parent.fields[selection.name.value].type)
        if not isinstance(named, GraphQLObjectType):
            continue
        level = depth + named.name.endswith("Connection")
        inner, below = _connections(selection.selection_set, named, level)
        count, deepest = count + inner + (level > depth), max(deepest, below, level)
    return count, deepest


def bulk_query_problem(query: str) -> str | None:
    """Why Shopify would refuse this bulk query (bulkOperationRunQuery reference and the bulk queries
    guide: one top-level connection field, at least one connection, at most five, nested at most two
    deep, no variables), or None. The wording of each refusal is the sandbox's own."""
    document, problems = _document(query)
    if problems:
        return problems[0].message
    assert document is not None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation.value != "query":
        return "Bulk queries must be a single query operation"
    operation = operations[0]
    if operation.variable_definitions:
        return "Bulk queries cannot take variables"
    roots = [s for s in operation.selection_set.selections if isinstance(s, FieldNode)]
    query_root = SCHEMA_SUBSET.query_type
    assert query_root is not None
    if len(roots) != 1:
        return "Bulk queries must select a single top-level field"
    if not get_named_type(query_root.fields[roots[0].name.value].type).name.endswith("Connection"):
        return f"Bulk queries must start with a connection; {roots[0].name.value} is not one"
    count, depth = _connections(operation.selection_set, query_root)
    if count > BULK_MAX_CONNECTIONS:
        return f"Bulk queries cannot contain more than {BULK_MAX_CONNECTIONS} connections"
    if depth > BULK_MAX_DEPTH:
        return f"Bulk queries cannot contain connections nested more than {BULK_MAX_DEPTH} levels deep"
    return None


class _BulkRows:
    """The objects of the fake's schema as a bulk query sees them: every field of every type in
    SCHEMA_SUBSET that a bulk query can reach, resolved from the shop's state."""

    def __init__(self, shop: ShShop) -> None:
        self.shop = shop

    def resolve(self, type_name: str, field: FieldNode, obj: Any) -> Any:
        name = field.name.value
        if type_name == "QueryRoot" and name == "locations":
            inactive = any(
                a.name.value == "includeInactive" and getattr(a.value, "value", False) is True
                for a in field.arguments
            )
            return [loc for loc in self.shop.locations.values() if inactive or loc["isActive"]]
        if type_name == "Location":
            if name == "inventoryLevels":
                return [(item, obj["id"]) for item in self.shop.by_location.get(obj["id"], [])]
            return obj.get(name)
        if type_name == "InventoryLevel":
            item, location = obj
            if name == "id":
                return (
                    f"gid://shopify/InventoryLevel/{location.rsplit('/', 1)[-1]}?inventory_item_id="
                    + (item.gid.rsplit("/", 1)[-1])
                )
            if name == "item":
                return item
            names = next((a.value for a in field.arguments if a.name.value == "names"), None)
            wanted = [getattr(v, "value", "") for v in getattr(names, "values", [])]
            return [(n, item.levels[location] if n == "available" else 0) for n in wanted]
        if type_name == "InventoryQuantity":
            return {"name": obj[0], "quantity": obj[1], "id": f"gid://shopify/InventoryQuantity/{obj[0]}"}[
                name
            ]
        if type_name == "InventoryItem":
            assert isinstance(obj, ShItem)
            if name == "variant":
                return obj
            if name == "inventoryLevels":
                return [(obj, location) for location in obj.levels]
            return {"id": obj.gid, "sku": obj.sku, "tracked": obj.tracked}[name]
        if type_name == "ProductVariant":
            number = obj.gid.rsplit("/", 1)[-1]
            return {"id": f"gid://shopify/ProductVariant/{number}", "inventoryPolicy": obj.policy}[name]
        raise KeyError(f"{type_name}.{name}")

    def _object(
        self,
        selections: SelectionSetNode,
        parent: GraphQLObjectType,
        obj: Any,
        children: list[tuple[FieldNode, Any]],
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in selections.selections:
            if not isinstance(field, FieldNode) or field.name.value.startswith("__"):
                continue
            key = field.alias.value if field.alias else field.name.value
            value = self.resolve(parent.name, field, obj)
            named = get_named_type(parent.fields[field.name.value].type)
            if is_leaf_type(named) or field.selection_set is None:
                out[key] = value
            elif named.name.endswith("Connection"):
                children.append((field, value))  # flattened: its nodes follow as lines of their own
            else:
                assert isinstance(named, GraphQLObjectType)
                if isinstance(value, list):
                    out[key] = [self._object(field.selection_set, named, v, children) for v in value]
                else:
                    out[key] = self._object(field.selection_set, named, value, children)
        return out

    def lines(
        self,
        connection: FieldNode,
        parent: GraphQLObjectType,
        nodes: Sequence[Any],
        parent_id: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The JSONL objects of one connection: each node, then its nested connections' nodes, each
        with the id of the node it belongs to in ``__parentId`` (bulk queries guide, "JSONL")."""
        node_field = _node_field(connection)
        named = get_named_type(parent.fields[connection.name.value].type)
        assert isinstance(named, GraphQLObjectType)
        node_type = get_named_type(named.fields["nodes"].type)
        assert isinstance(node_type, GraphQLObjectType)
        if node_field is None or node_field.selection_set is None:
            return
        identity = FieldNode(name=NameNode(value="id"), arguments=())
        for node in nodes:
            children: list[tuple[FieldNode, Any]] = []
            line = self._object(node_field.selection_set, node_type, node, children)
            if parent_id is not None:
                line["__parentId"] = parent_id
            yield line
            if children:
                own_id = self.resolve(node_type.name, identity, node)
                for child, values in children:
                    yield from self.lines(child, node_type, values, own_id)


class ShopifyFake:
    """The Admin GraphQL queries and bulk operations the client uses, with Shopify's cost-based
    throttling."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/shopify/{shop}/admin/api/{version}/graphql.json", self.graphql),
            web.get("/shopify-bulk/{shop}/{number}.jsonl", self.download),
        ]

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
        response = await self._answer(shop, request, version)
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

    async def _answer(self, shop: ShShop, request: web.Request, version: str) -> web.Response:
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
        root_field = next(s for s in operation.selection_set.selections if isinstance(s, FieldNode))
        root = root_field.name.value
        mutation = operation.operation.value == "mutation"
        root_type = SCHEMA_SUBSET.mutation_type if mutation else SCHEMA_SUBSET.query_type
        assert root_type is not None
        paged = root in ("locations", "location")
        first = body.variables.get("first")
        after = body.variables.get("after") or ""
        if paged and (not isinstance(first, int) or not 1 <= first <= MAX_PAGE):
            return self._error(
                f"Variable $first must be an integer between 1 and {MAX_PAGE}", "argumentLiteralsIncompatible"
            )
        offset = offset_of(after) if isinstance(after, str) else None
        if offset is None:
            return self._error(
                f"Invalid cursor for current pagination sort: {after}", "argumentLiteralsIncompatible"
            )
        requested = query_cost(operation.selection_set, root_type, body.variables)
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
        if not paged:
            answer = self._bulk_answer(shop, request, version, root, body)
            shop.points += requested
            return json_response(
                {"data": answer, "extensions": {"cost": self._cost(shop, requested, requested)}}
            )
        assert isinstance(first, int)
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
            operation.selection_set, root_type, {**body.variables, "first": first - 1}
        )
        actual = requested - (first - len(page["nodes"])) * per_node
        shop.bucket.tokens = min(shop.bucket.capacity, shop.bucket.tokens + requested - actual)
        shop.points += actual
        return json_response({"data": data, "extensions": {"cost": self._cost(shop, requested, actual)}})

    # ------------------------------------------------------------------ counts and bulk operations

    def _bulk_answer(
        self, shop: ShShop, request: web.Request, version: str, root: str, body: _GraphQLBody
    ) -> dict[str, Any]:
        if root == "productVariantsCount":
            return {root: {"count": len(shop.items), "precision": "EXACT"}}
        if root == "bulkOperation":
            number = _number(body.variables.get("id"))
            op = shop.bulk_operations.get(number) if number is not None else None
            return {root: self._operation(shop, request, op) if op else None}
        if root == "currentBulkOperation":
            latest = max(shop.bulk_operations.values(), key=lambda o: o.number, default=None)
            return {root: self._operation(shop, request, latest) if latest else None}
        if root == "bulkOperationCancel":
            number = _number(body.variables.get("id"))
            op = shop.bulk_operations.get(number) if number is not None else None
            if op is None:
                return {
                    root: {
                        "bulkOperation": None,
                        "userErrors": [_user_error("Bulk operation does not exist")],
                    }
                }
            if op.status not in ("CREATED", "RUNNING"):
                message = f"A bulk operation cannot be canceled when it is {op.status.lower()}"
                return {
                    root: {
                        "bulkOperation": self._operation(shop, request, op),
                        "userErrors": [_user_error(message)],
                    }
                }
            op.cancel, op.status = True, "CANCELING"
            return {root: {"bulkOperation": self._operation(shop, request, op), "userErrors": []}}
        return {"bulkOperationRunQuery": self._run(shop, request, version, body)}

    def _run(self, shop: ShShop, request: web.Request, version: str, body: _GraphQLBody) -> dict[str, Any]:
        query = body.variables.get("query", "")
        if not isinstance(query, str) or (problem := bulk_query_problem(query)) is not None:
            return {
                "bulkOperation": None,
                "userErrors": [_user_error(problem or "query must be a string", "INVALID")],
            }
        limit = 5 if version >= min(BULK_CONCURRENT) else 1
        running = [o for o in shop.bulk_operations.values() if o.status in RUNNING]
        if len(running) >= limit:
            if limit == 1:
                message = (
                    f"A bulk query operation for this app and shop is already in progress: {running[0].gid}."
                )
                return {"bulkOperation": None, "userErrors": [_user_error(message, "OPERATION_IN_PROGRESS")]}
            message = "Bulk operations limit reached. Please try again later."
            return {"bulkOperation": None, "userErrors": [_user_error(message, "LIMIT_REACHED")]}
        number = max(shop.bulk_operations, default=0) + 1
        op = ShBulkOperation(number, query, time.time(), secrets.token_urlsafe(16))
        shop.bulk_operations[number] = op
        fault = self.state.effect("shopify", "bulk_operation", shop.shop)
        op.task = asyncio.get_running_loop().create_task(
            self._generate(shop, op, fault.bulk_error if fault else None)
        )
        return {"bulkOperation": self._operation(shop, request, op), "userErrors": []}

    async def _generate(self, shop: ShShop, op: ShBulkOperation, failure: str | None) -> None:
        """Run one bulk query: CREATED for the start delay, RUNNING while the objects are read at the
        configured rate (objectCount grows), then COMPLETED with the JSONL file, or FAILED with half of
        it as partial data (an injected errorCode), or CANCELED."""
        if not await self._pace(op, time.monotonic() + shop.bulk.start_delay):
            return
        op.status = "RUNNING"
        document, _ = _document(op.query)
        assert document is not None
        operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
        root = next(s for s in operation.selection_set.selections if isinstance(s, FieldNode))
        query_root = SCHEMA_SUBSET.query_type
        assert query_root is not None
        rows = _BulkRows(shop)
        lines: list[bytes] = []
        rate = shop.bulk.objects_per_second
        chunk = max(1, min(1000, int(rate / 20)))  # objectCount grows about 20 times a second
        started = time.monotonic()
        for line in rows.lines(root, query_root, rows.resolve("QueryRoot", root, None)):
            lines.append(orjson.dumps(line) + b"\n")
            op.object_count += 1
            op.root_object_count += "__parentId" not in line
            if op.object_count % chunk == 0 and not await self._pace(op, started + op.object_count / rate):
                return
        if not await self._pace(op, started + op.object_count / rate):
            return
        if failure is not None:
            op.status, op.error_code = "FAILED", failure
            op.data = b"".join(lines[: len(lines) // 2]) or None
        else:
            op.status = "COMPLETED"
            op.data = b"".join(lines) if lines else None
        op.completed = time.time()

    @staticmethod
    async def _pace(op: ShBulkOperation, until: float) -> bool:
        """Wait until the simulated generation time has passed; False (and CANCELED) if cancelled."""
        await asyncio.sleep(0)  # other requests are served between chunks even when generation lags
        while not op.cancel and (left := until - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))
        if op.cancel:
            op.status, op.completed = "CANCELED", time.time()
        return not op.cancel

    def _operation(self, shop: ShShop, request: web.Request, op: ShBulkOperation) -> dict[str, Any]:
        """The BulkOperation object; the URL of a finished operation expires after the configured
        lifetime (seven days by default), and the operation then reads EXPIRED."""
        if op.status == "COMPLETED" and op.completed and time.time() > op.completed + shop.bulk.url_lifetime:
            op.status = "EXPIRED"
        url = None
        if op.data is not None and op.status in ("COMPLETED", "FAILED"):
            assert op.completed is not None
            expires = int(op.completed + shop.bulk.url_lifetime)
            url = (
                f"{request.scheme}://{request.host}/shopify-bulk/{shop.shop}/{op.number}.jsonl"
                f"?expires={expires}&signature={op.signature}"
            )
        return {
            "id": op.gid,
            "type": "QUERY",
            "status": op.status,
            "errorCode": op.error_code,
            "createdAt": _iso(op.created),
            "completedAt": _iso(op.completed) if op.completed and op.status == "COMPLETED" else None,
            "objectCount": str(op.object_count),
            "rootObjectCount": str(op.root_object_count),
            "fileSize": str(len(op.data)) if op.data is not None and op.status == "COMPLETED" else None,
            "url": url if op.status == "COMPLETED" else None,
            "partialDataUrl": url if op.status == "FAILED" else None,
            "query": op.query,
        }

    async def download(self, request: web.Request) -> web.StreamResponse:
        """A bulk operation's JSONL file at its signed URL. Refusals (a wrong signature, an expired
        URL) answer 403 with a plain-text reason: Shopify serves these files from cloud storage and
        documents neither the status nor the body (the sandbox's choice)."""
        shop = self.state.shopify.get(request.match_info["shop"])
        label(request, "shopify", "bulk_download")
        op = shop.bulk_operations.get(_number(request.match_info["number"]) or 0) if shop else None
        if shop is None or op is None or op.data is None or request.query.get("signature") != op.signature:
            return web.Response(status=403, text="AccessDenied: invalid signature")
        assert op.completed is not None
        if time.time() > op.completed + shop.bulk.url_lifetime:
            return web.Response(status=403, text="AccessDenied: Request has expired")
        effect = self.state.effect("shopify", "bulk_download", shop.shop)
        data = op.data
        if effect is not None:
            await asyncio.sleep(effect.latency)
            if effect.status:
                return web.Response(status=effect.status, text="Internal error (injected fault)")
            if effect.truncate:
                data = data[: len(data) // 2]
        return web.Response(body=data, content_type="application/jsonl")

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


def _number(gid: object) -> int | None:
    """The number ending a BulkOperation global id (or a bare number)."""
    tail = str(gid).rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _user_error(message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"field": ["query"] if code else None, "message": message}
    if code:
        error["code"] = code
    return error


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
