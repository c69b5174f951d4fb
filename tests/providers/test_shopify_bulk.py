"""Shopify full reads by bulk query operation against the sandbox: the same records as the paged
read, all or nothing on every way an operation or its file can fail, and a shop already running as
many bulk queries as Shopify allows. Each test names the shopify.dev page of the rule it relies on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from platform_env import FAST, HOOK_SECRET, LOC1, LOC2, SHOPIFY_ITEMS, SHOPIFY_TOKEN, config

from invsync.engine.records import StockRecord
from invsync.providers import PartialReadError, UnavailableError
from invsync.providers import shopify as sh
from invsync.providers.webhooks import sign_shopify
from invsync.sandbox.server import Sandbox, run_sandbox
from invsync.sandbox.state import Fault

LEVELS = SHOPIFY_ITEMS + SHOPIFY_ITEMS // 2  # every item at LOC1, odd ones at LOC2 (platform_env.py)


def _source(sb: Sandbox, **kwargs: Any) -> sh.ShopifySource:
    return sh.ShopifySource(
        name="src-main", endpoint=f"{sb.url}/shopify/main", access_token=SHOPIFY_TOKEN, retry=FAST, **kwargs
    )


def _sorted(records: list[StockRecord]) -> list[StockRecord]:
    return sorted(records, key=lambda r: (r.location, r.sku))


@pytest.fixture
async def bulk_sandbox(request: pytest.FixtureRequest) -> AsyncIterator[Sandbox]:
    cfg = config()
    cfg["shopify"][0]["bulk"] = getattr(request, "param", {})
    async with run_sandbox(cfg) as sb:
        yield sb


async def test_a_bulk_full_read_equals_the_paged_read_of_the_same_data(bulk_sandbox: Sandbox) -> None:
    """shopify.dev bulk queries guide: one bulk query returns every level of every location as JSONL,
    levels under their location by __parentId; the records equal those read page by page."""
    paged = _source(bulk_sandbox, bulk_threshold=10**9)
    expected = await paged.read_stock([LOC1, LOC2])
    assert bulk_sandbox.state.read_pages["shopify"] == 5
    bulk_sandbox.state.reset_counts()
    bulk = _source(bulk_sandbox, bulk_threshold=1)
    records = await bulk.read_stock([LOC1, LOC2])
    assert len(records) == LEVELS and _sorted(records) == _sorted(expected)
    assert bulk_sandbox.state.read_pages["shopify"] == 0
    assert bulk_sandbox.state.requests[("shopify", "bulk_download", "200")] == 1
    only_loc1 = await bulk.read_stock([LOC1])
    assert _sorted(only_loc1) == _sorted([r for r in expected if r.location == LOC1])
    await paged.aclose()
    await bulk.aclose()


async def test_the_threshold_picks_paging_for_small_sources_and_bulk_for_large_ones(
    bulk_sandbox: Sandbox,
) -> None:
    """Paging stays for reads below sh.BULK_THRESHOLD levels (productVariantsCount x locations; Count in
    the Admin schema); at or above it one bulk operation reads everything."""
    source = _source(bulk_sandbox)
    await source.read_stock([LOC1])  # 520 variants x 1 location: paged
    assert bulk_sandbox.state.read_pages["shopify"] == 3
    assert not bulk_sandbox.state.shopify["main"].bulk_operations
    large = _source(bulk_sandbox, bulk_threshold=SHOPIFY_ITEMS * 2)
    await large.read_stock([LOC1, LOC2])  # 520 x 2 = the threshold: bulk
    assert len(bulk_sandbox.state.shopify["main"].bulk_operations) == 1
    await source.aclose()
    await large.aclose()


async def test_a_webhook_after_a_bulk_read_maps_its_item(bulk_sandbox: Sandbox) -> None:
    """shopify.dev webhooks reference (inventory_levels/update names the item by id): the bulk read
    remembers each item's SKU as the paged read does."""
    source = _source(bulk_sandbox, bulk_threshold=1)
    await source.read_stock([LOC1])
    body = b'{"inventory_item_id": 8, "location_id": 11, "available": 3}'
    headers = {
        "X-Shopify-Hmac-Sha256": sign_shopify(body, HOOK_SECRET),
        "X-Shopify-Topic": "inventory_levels/update",
    }
    assert source.parse_webhook(headers, body, HOOK_SECRET)[0].sku == "SKU-7"
    await source.aclose()


@pytest.mark.parametrize(
    ("fault", "why"),
    [
        (
            Fault(platform="shopify", operation="bulk_operation", bulk_error="TIMEOUT"),
            "ended FAILED \\(TIMEOUT\\)",
        ),
        (Fault(platform="shopify", operation="bulk_operation", bulk_error="ACCESS_DENIED"), "ACCESS_DENIED"),
        (Fault(platform="shopify", operation="bulk_download", truncate=True), "incomplete result"),
        (Fault(platform="shopify", operation="bulk_download", status=503), "HTTP 503|503 after"),
    ],
)
async def test_a_failed_operation_or_an_incomplete_file_reads_nothing(
    bulk_sandbox: Sandbox, fault: Fault, why: str
) -> None:
    """shopify.dev BulkOperationErrorCode: a FAILED operation has partial or incomplete data (never
    used); a file shorter than the operation's objectCount and fileSize is incomplete. Either way the
    read raises PartialReadError and returns nothing."""
    bulk_sandbox.state.faults.append(fault)
    source = _source(bulk_sandbox, bulk_threshold=1)
    with pytest.raises((PartialReadError, UnavailableError), match=why):
        await source.read_stock([LOC1, LOC2])
    await source.aclose()


async def test_a_download_failing_once_is_retried(bulk_sandbox: Sandbox) -> None:
    """The result URL stays valid for seven days (BulkOperation reference): a 5xx of the download is
    retried like any request."""
    bulk_sandbox.state.faults.append(
        Fault(platform="shopify", operation="bulk_download", status=502, count=1)
    )
    source = _source(bulk_sandbox, bulk_threshold=1)
    assert len(await source.read_stock([LOC1, LOC2])) == LEVELS
    await source.aclose()


@pytest.mark.parametrize("bulk_sandbox", [{"objectsPerSecond": 200}], indirect=True)
async def test_an_operation_cancelled_by_someone_else_reads_nothing(bulk_sandbox: Sandbox) -> None:
    """shopify.dev BulkOperationStatus: CANCELING, then CANCELED (bulkOperationCancel from anyone with
    the app's token); the read raises PartialReadError."""
    source = _source(bulk_sandbox, bulk_threshold=1)
    read = asyncio.create_task(source.read_stock([LOC1, LOC2]))
    while not bulk_sandbox.state.shopify["main"].bulk_operations:
        await asyncio.sleep(0.01)
    operation = bulk_sandbox.state.shopify["main"].bulk_operations[1]
    async with httpx.AsyncClient() as client:
        await client.post(
            source.url,
            json={"query": sh.BULK_CANCEL_MUTATION, "variables": {"id": operation.gid}},
            headers={"X-Shopify-Access-Token": SHOPIFY_TOKEN},
        )
    with pytest.raises(PartialReadError, match="ended CANCELED"):
        await read
    await source.aclose()


@pytest.mark.parametrize("bulk_sandbox", [{"urlLifetime": 0.05}], indirect=True)
async def test_an_operation_whose_url_expired_reads_nothing(bulk_sandbox: Sandbox) -> None:
    """shopify.dev BulkOperation reference: url expires (seven days; the sandbox's urlLifetime here is
    shorter than the first poll) and the status reads EXPIRED: the read raises PartialReadError."""
    source = _source(bulk_sandbox, bulk_threshold=1)
    with pytest.raises(PartialReadError, match="ended EXPIRED"):
        await source.read_stock([LOC1, LOC2])
    await source.aclose()


@pytest.mark.parametrize("bulk_sandbox", [{"objectsPerSecond": 50}], indirect=True)
async def test_a_read_that_stops_waiting_cancels_its_operation(bulk_sandbox: Sandbox) -> None:
    """A read cancelled while it waits (the operator stopping) or past its timeout cancels its bulk
    query (bulkOperationCancel), so it does not hold one of the shop's concurrent slots (bulk queries
    guide: five from 2026-01)."""
    source = _source(bulk_sandbox, bulk_threshold=1)
    read = asyncio.create_task(source.read_stock([LOC1, LOC2]))
    await asyncio.sleep(0.5)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await read
    operations = bulk_sandbox.state.shopify["main"].bulk_operations
    assert operations[1].status in ("CANCELING", "CANCELED")
    impatient = _source(bulk_sandbox, bulk_threshold=1, bulk_timeout=0.3)
    with pytest.raises(UnavailableError, match="still running after 0s; cancelled"):
        await impatient.read_stock([LOC1, LOC2])
    assert operations[2].status in ("CANCELING", "CANCELED")
    await source.aclose()
    await impatient.aclose()


@pytest.mark.parametrize("bulk_sandbox", [{"objectsPerSecond": 1}], indirect=True)
async def test_a_shop_running_five_bulk_queries_already_fails_the_read_after_waiting(
    bulk_sandbox: Sandbox,
) -> None:
    """shopify.dev bulk queries guide: from API 2026-01 five bulk queries per shop at a time, the next is
    refused (BulkOperationUserErrorCode LIMIT_REACHED). The read retries with backoff within its retry
    policy, then fails with UnavailableError naming the limit; nothing is read page by page instead."""
    async with httpx.AsyncClient() as client:
        for _ in range(5):
            answer = await client.post(
                f"{bulk_sandbox.url}/shopify/main/admin/api/{sh.API_VERSION}/graphql.json",
                json={"query": sh.BULK_RUN_MUTATION, "variables": {"query": sh.BULK_LEVELS_QUERY}},
                headers={"X-Shopify-Access-Token": SHOPIFY_TOKEN},
            )
            assert answer.json()["data"]["bulkOperationRunQuery"]["userErrors"] == []
    source = _source(bulk_sandbox, bulk_threshold=1)
    with pytest.raises(UnavailableError, match="LIMIT_REACHED") as caught:
        await source.read_stock([LOC1, LOC2])
    assert caught.value.code == "bulk_busy"
    assert bulk_sandbox.state.read_pages["shopify"] == 0
    mutations = bulk_sandbox.state.requests[("shopify", "graphql", "200")]
    assert mutations == 5 + 1 + FAST.attempts  # theirs, the count, our attempts
    await source.aclose()


async def test_the_signed_result_url_never_reaches_the_logs(
    bulk_sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever holds a bulk operation's URL can download its file for seven days (BulkOperation
    reference): the transport's request lines show it with the signature redacted."""
    source = _source(bulk_sandbox, bulk_threshold=1)
    with caplog.at_level(logging.DEBUG, logger="invsync.providers"):
        await source.read_stock([LOC1])
    await source.aclose()
    signature = bulk_sandbox.state.shopify["main"].bulk_operations[1].signature
    assert "/shopify-bulk/main/1.jsonl" in caplog.text and signature not in caplog.text
