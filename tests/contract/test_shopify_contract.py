"""Shopify's Admin GraphQL API as shopify.dev and the published Admin schema define it: the sandbox
serves a subset of the schema, prices queries with Shopify's cost model and refuses what Shopify
refuses; the client's documents fit both. Every test names the page or file it checks."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
from contract_env import FAST, LOC, SHOPIFY_TOKEN, shopify_source, world
from graphql import parse, validate

from invsync.api import InventorySource
from invsync.api.kinds import SHOPIFY_API_VERSION
from invsync.providers import ProviderError, build_source
from invsync.providers import shopify as sh
from invsync.sandbox.config import SHOPIFY_API_VERSIONS
from invsync.sandbox.server import Sandbox, SandboxThread
from invsync.sandbox.shopify import MAX_QUERY_COST, SCHEMA_SUBSET, bulk_query_problem, query_cost
from invsync.sandbox.state import Fault


def _post(
    sb: Sandbox, query: str, variables: dict[str, object], version: str = SHOPIFY_API_VERSION
) -> httpx.Response:
    return httpx.post(
        f"{sb.url}/shopify/main/admin/api/{version}/graphql.json",
        json={"query": query, "variables": variables},
        headers={"X-Shopify-Access-Token": SHOPIFY_TOKEN},
    )


def _cost(query: str, variables: dict[str, object]) -> int:
    operation = parse(query).definitions[0]
    assert SCHEMA_SUBSET.query_type is not None
    return query_cost(operation.selection_set, SCHEMA_SUBSET.query_type, variables)  # type: ignore[attr-defined]


@pytest.mark.parametrize("document", [sh.LOCATIONS_QUERY, sh.LEVELS_QUERY])
def test_the_client_documents_validate_against_the_schema_the_sandbox_serves(document: str) -> None:
    """Shopify/dev-mcp's introspection copy of the Admin schema 2025-01 (data/admin_schema_2025-01.json.gz,
    validated against once, not kept here): the sandbox's subset keeps those types, fields and arguments,
    so a document valid against the subset uses only what the published schema has."""
    assert validate(SCHEMA_SUBSET, parse(document)) == []


def test_a_field_outside_the_schema_is_refused_the_graphql_way(sandbox: Sandbox) -> None:
    """GraphQL specification, validation "Field Selections": a field not on the type is an error in errors[],
    answered with HTTP 200 as Shopify does."""
    answer = _post(sandbox, "query { locations(first: 1) { nodes { id fulfillsOnlineOrders } } }", {})
    assert answer.status_code == 200
    assert (
        "Cannot query field 'fulfillsOnlineOrders' on type 'Location'"
        in answer.json()["errors"][0]["message"]
    )


def test_cost_model_and_the_single_query_limit(sandbox: Sandbox) -> None:
    """shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits: scalars and enums cost 0, objects 1, a
    connection 2 plus its size times a node; a query requesting more than 1,000 points is refused before it
    runs (MAX_COST_EXCEEDED)."""
    assert _cost(sh.LOCATIONS_QUERY, {"first": 250}) == 2 + 250
    assert _cost(sh.LEVELS_QUERY, {"first": 250}) == 1 + 2 + 250 * 4 > MAX_QUERY_COST
    assert _cost(sh.LEVELS_QUERY, {"first": sh.LEVELS_PAGE_SIZE}) <= MAX_QUERY_COST
    refused = _post(sandbox, sh.LEVELS_QUERY, {"location": LOC, "first": 250}).json()
    assert refused["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED" and "data" not in refused
    served = _post(sandbox, sh.LEVELS_QUERY, {"location": LOC, "first": sh.LEVELS_PAGE_SIZE}).json()
    cost = served["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 3 + sh.LEVELS_PAGE_SIZE * 4
    assert cost["actualQueryCost"] == 3 + 1 * 4  # one level returned: the actual cost counts returned nodes


def test_a_throttled_answer_has_no_actual_cost() -> None:
    """shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits: a request the bucket cannot pay for is
    answered THROTTLED (HTTP 200) with extensions.cost; it did not run, so actualQueryCost is null."""
    cfg = world()
    cfg["shopify"][0]["throttle"] = {"maximumAvailable": 200, "restoreRate": 1}
    with SandboxThread(cfg) as sb:
        assert _post(sb, sh.LOCATIONS_QUERY, {"first": 100}).json()["data"]  # 102 of 200: paid
        throttled = _post(sb, sh.LOCATIONS_QUERY, {"first": 250})  # 252: more than the bucket holds
    body = throttled.json()
    assert throttled.status_code == 200 and body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["requestedQueryCost"] == 252
    assert body["extensions"]["cost"]["actualQueryCost"] is None


def test_the_default_version_is_one_shopify_supports(sandbox: Sandbox) -> None:
    """shopify.dev/docs/api/usage/versioning: a stable version each quarter, each supported for at least 12
    months; the versions supported in December 2026 are 2026-01 to 2026-10."""
    assert SHOPIFY_API_VERSION in SHOPIFY_API_VERSIONS
    assert (
        InventorySource.model_validate(
            {
                "apiVersion": "invsync.dev/v1alpha1",
                "kind": "InventorySource",
                "metadata": {"name": "x"},
                "spec": {"provider": "http", "endpoint": "http://x"},
            }
        ).spec.shopify_api_version
        == SHOPIFY_API_VERSION
    )
    assert (
        _post(sandbox, sh.LOCATIONS_QUERY, {"first": 1}).headers["X-Shopify-API-Version"]
        == SHOPIFY_API_VERSION
    )


async def test_an_unsupported_version_falls_forward_and_an_unreleased_one_is_not_found(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """shopify.dev/docs/api/usage/versioning: a request for a version no longer supported falls forward to the
    oldest supported one, and X-Shopify-API-Version says which version answered. A version not released is
    not served (404; the page does not say, the sandbox's choice)."""
    old = _post(sandbox, sh.LOCATIONS_QUERY, {"first": 1}, version="2025-01")
    assert old.status_code == 200 and old.headers["X-Shopify-API-Version"] == min(SHOPIFY_API_VERSIONS)
    assert _post(sandbox, sh.LOCATIONS_QUERY, {"first": 1}, version="2031-01").status_code == 404
    client = build_source(
        shopify_source(sandbox, shopifyApiVersion="2025-01"), {"access_token": SHOPIFY_TOKEN}, retry=FAST
    )
    with caplog.at_level(logging.WARNING, logger="invsync.providers.shopify"):
        assert [x.id for x in await client.list_locations()] == [LOC]
    assert "answered with API version 2026-01, not 2025-01" in caplog.text
    unreleased = build_source(
        shopify_source(sandbox, shopifyApiVersion="2031-01"), {"access_token": SHOPIFY_TOKEN}, retry=FAST
    )
    with pytest.raises(ProviderError, match="does not serve API version 2031-01"):
        await unreleased.list_locations()
    await client.aclose()
    await unreleased.aclose()


# ----------------------------------------------------------------------------- bulk query operations


LOC2 = "gid://shopify/Location/2"


def _run_bulk(sb: Sandbox, query: str, version: str = SHOPIFY_API_VERSION) -> dict[str, Any]:
    answer = _post(sb, sh.BULK_RUN_MUTATION, {"query": query}, version).json()
    payload: dict[str, Any] = answer["data"]["bulkOperationRunQuery"]
    payload["cost"] = answer["extensions"]["cost"]["requestedQueryCost"]
    return payload


def _poll(sb: Sandbox, operation: str) -> dict[str, Any]:
    state: dict[str, Any] = _post(sb, sh.BULK_POLL_QUERY, {"id": operation}).json()["data"]["bulkOperation"]
    return state


def _until(sb: Sandbox, operation: str, *statuses: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (state := _poll(sb, operation))["status"] not in statuses:
        assert time.monotonic() < deadline, state
        time.sleep(0.02)
    return state


def _bulk_world(**bulk: Any) -> dict[str, Any]:
    cfg = world()
    cfg["shopify"][0]["locations"].append({"id": LOC2, "name": "SBY", "active": False})
    cfg["shopify"][0]["items"] = [
        {"sku": f"B-{i}", "levels": {LOC: i} | ({LOC2: 2 * i} if i % 2 else {})} for i in range(40)
    ]
    cfg["shopify"][0]["bulk"] = bulk
    return cfg


@pytest.mark.parametrize(
    "document",
    [sh.VARIANTS_COUNT_QUERY, sh.BULK_RUN_MUTATION, sh.BULK_POLL_QUERY, sh.BULK_CANCEL_MUTATION],
)
def test_the_bulk_documents_validate_against_the_schema_the_sandbox_serves(document: str) -> None:
    """Shopify/dev-mcp's Admin schema 2025-01: productVariantsCount { count precision },
    bulkOperationRunQuery(query:) { bulkOperation userErrors { field message code } },
    bulkOperationCancel(id:); BulkOperation { id status errorCode objectCount fileSize url }. The poll's
    bulkOperation(id:) is newer than that copy: shopify.dev changelog "New Queries for Bulk Operations"
    (2026-01) and the admin-graphql bulkOperation query reference."""
    assert validate(SCHEMA_SUBSET, parse(document)) == []


def test_the_bulk_read_query_keeps_to_the_bulk_restrictions() -> None:
    """shopify.dev bulkOperationRunQuery reference: at least one connection, at most five, nested at
    most two levels deep; the bulk queries guide: one top-level field."""
    assert validate(SCHEMA_SUBSET, parse(sh.BULK_LEVELS_QUERY)) == []
    assert bulk_query_problem(sh.BULK_LEVELS_QUERY) is None


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ("{ productVariantsCount { count } }", "must start with a connection"),
        (
            "{ locations { edges { node { "
            + " ".join(f"l{n}: inventoryLevels {{ edges {{ node {{ id }} }} }}" for n in range(5))
            + " } } } }",
            "more than 5 connections",
        ),
        (
            "{ locations { edges { node { inventoryLevels { edges { node { item { "
            "inventoryLevels { edges { node { id } } } } } } } } } } }",
            "nested more than 2 levels deep",
        ),
        ("{ locations { edges { node { fulfillsOnlineOrders } } } }", "Cannot query field"),
    ],
)
def test_bulk_queries_beyond_the_restrictions_are_refused_with_user_errors(
    sandbox: Sandbox, query: str, why: str
) -> None:
    """shopify.dev bulkOperationRunQuery reference (at least one connection, at most five connections,
    nesting at most two levels) and BulkOperationUserErrorCode (INVALID: the input value is invalid):
    the mutation answers with userErrors and no operation (the messages are the sandbox's)."""
    payload = _run_bulk(sandbox, query)
    assert payload["bulkOperation"] is None
    assert payload["userErrors"][0]["code"] == "INVALID" and why in payload["userErrors"][0]["message"]
    assert payload["userErrors"][0]["field"] == ["query"]


def test_a_bulk_query_runs_to_a_jsonl_file_with_parents_named() -> None:
    """shopify.dev bulk queries guide and BulkOperation reference: the mutation costs 10 points
    (rate-limits page: a mutation), the operation is CREATED, then RUNNING while objectCount grows, then
    COMPLETED with url and fileSize; the file is JSONL, one object per line, a nested connection's
    nodes on lines of their own with the id of their parent in __parentId."""
    with SandboxThread(_bulk_world(objectsPerSecond=200, startDelay=0.2)) as sb:
        started = _run_bulk(sb, sh.BULK_LEVELS_QUERY)
        assert started["userErrors"] == [] and started["cost"] == 10
        operation = started["bulkOperation"]["id"]
        assert started["bulkOperation"]["status"] == "CREATED"
        running = _until(sb, operation, "RUNNING")
        assert running["url"] is None
        done = _until(sb, operation, "COMPLETED")
        assert int(done["objectCount"]) == 2 + 40 + 20  # two locations, their levels
        answer = _post(sb, sh.BULK_POLL_QUERY, {"id": operation}).json()
        assert answer["extensions"]["cost"]["requestedQueryCost"] == 1
        file = httpx.get(done["url"])
    assert file.status_code == 200 and len(file.content) == int(done["fileSize"])
    lines = [json.loads(line) for line in file.content.decode().splitlines()]
    assert len(lines) == int(done["objectCount"])
    assert lines[0] == {"id": LOC}  # the location; its levels follow on lines of their own
    level = lines[1]
    assert level["__parentId"] == LOC and level["item"]["sku"] == "B-0"
    assert level["quantities"] == [{"name": "available", "quantity": 0}]
    parents = {line["__parentId"] for line in lines if "__parentId" in line}
    assert parents == {LOC, LOC2}


@pytest.mark.parametrize(
    ("version", "limit", "code"), [("2026-10", 5, "LIMIT_REACHED"), ("2025-10", 1, "OPERATION_IN_PROGRESS")]
)
def test_bulk_queries_beyond_the_concurrency_limit_of_the_version_are_refused(
    version: str, limit: int, code: str
) -> None:
    """shopify.dev bulk queries guide: from API 2026-01 an app runs up to five bulk queries at a time per
    shop, before that one; BulkOperationUserErrorCode: OPERATION_IN_PROGRESS (a bulk operation is already
    in progress), LIMIT_REACHED (bulk operations limit reached). Which of the two answers the sixth
    query in 2026-01+ is not stated: the sandbox answers LIMIT_REACHED."""
    cfg = _bulk_world(objectsPerSecond=1)
    cfg["shopify"][0]["apiVersions"] = [version]
    with SandboxThread(cfg) as sb:
        for _ in range(limit):
            assert _run_bulk(sb, sh.BULK_LEVELS_QUERY, version)["userErrors"] == []
        refused = _run_bulk(sb, sh.BULK_LEVELS_QUERY, version)
        assert refused["bulkOperation"] is None and refused["userErrors"][0]["code"] == code
        first = sb.state.shopify["main"].bulk_operations[1].gid
        cancel = _post(sb, sh.BULK_CANCEL_MUTATION, {"id": first}, version).json()["data"]
        assert cancel["bulkOperationCancel"]["bulkOperation"]["status"] == "CANCELING"
        deadline = time.monotonic() + 5
        while sb.state.shopify["main"].bulk_operations[1].status != "CANCELED":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert _run_bulk(sb, sh.BULK_LEVELS_QUERY, version)["userErrors"] == []  # a slot is free again


def test_a_cancelled_bulk_query_ends_canceled_without_a_file() -> None:
    """shopify.dev BulkOperationStatus: CANCELING (cancelation initiated, a short delay until) CANCELED;
    bulkOperationCancel reference. A finished operation cannot be cancelled (userErrors; wording is the
    sandbox's)."""
    with SandboxThread(_bulk_world(objectsPerSecond=20)) as sb:
        operation = _run_bulk(sb, sh.BULK_LEVELS_QUERY)["bulkOperation"]["id"]
        _until(sb, operation, "RUNNING")
        _post(sb, sh.BULK_CANCEL_MUTATION, {"id": operation})
        canceled = _until(sb, operation, "CANCELED")
        assert canceled["url"] is None
        again = _post(sb, sh.BULK_CANCEL_MUTATION, {"id": operation}).json()["data"]["bulkOperationCancel"]
        assert "cannot be canceled" in again["userErrors"][0]["message"]


def test_a_failed_bulk_query_has_an_error_code_and_only_partial_data() -> None:
    """shopify.dev BulkOperationErrorCode (ACCESS_DENIED, INTERNAL_SERVER_ERROR, TIMEOUT: partial or
    incomplete data) and BulkOperation.partialDataUrl (the incomplete data of a failed operation; url
    stays null)."""
    with SandboxThread(_bulk_world()) as sb:
        sb.state.faults.append(Fault(platform="shopify", operation="bulk_operation", bulk_error="TIMEOUT"))
        operation = _run_bulk(sb, sh.BULK_LEVELS_QUERY)["bulkOperation"]["id"]
        failed = _until(sb, operation, "FAILED")
        answer = _post(sb, "query($id: ID!) { bulkOperation(id: $id) { partialDataUrl } }", {"id": operation})
        partial = httpx.get(answer.json()["data"]["bulkOperation"]["partialDataUrl"])
    assert failed["errorCode"] == "TIMEOUT" and failed["url"] is None
    assert 0 < len(partial.content.splitlines()) < int(failed["objectCount"])


def test_the_result_url_expires() -> None:
    """shopify.dev BulkOperation reference: url and partialDataUrl expire after seven days (the sandbox's
    urlLifetime shortens that); BulkOperationStatus EXPIRED: the operation's URL has expired. How the
    storage refuses an expired URL is not documented: the sandbox answers 403."""
    with SandboxThread(_bulk_world(urlLifetime=1.5)) as sb:
        operation = _run_bulk(sb, sh.BULK_LEVELS_QUERY)["bulkOperation"]["id"]
        url = _until(sb, operation, "COMPLETED")["url"]
        assert httpx.get(url).status_code == 200
        expired = _until(sb, operation, "EXPIRED")
        assert expired["url"] is None and httpx.get(url).status_code == 403
        assert httpx.get(url.replace("signature=", "signature=x")).status_code == 403
