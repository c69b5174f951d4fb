"""Shopify's Admin GraphQL API as shopify.dev and the published Admin schema define it: the sandbox
serves a subset of the schema, prices queries with Shopify's cost model and refuses what Shopify
refuses; the client's documents fit both. Every test names the page or file it checks."""

from __future__ import annotations

import logging

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
from invsync.sandbox.shopify import MAX_QUERY_COST, SCHEMA_SUBSET, query_cost


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
