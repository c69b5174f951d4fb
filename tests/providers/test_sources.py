"""The Shopify and generic HTTP sources against the sandbox, and their webhook verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import pytest
from platform_env import (
    ERP_ITEMS,
    ERP_TOKEN,
    FAST,
    HOOK_SECRET,
    LOC1,
    LOC2,
    SHOPIFY_ITEMS,
    SHOPIFY_TOKEN,
    config,
    source,
)

from invsync.engine.records import StockRecord
from invsync.providers import AuthError, PartialReadError, WebhookRejectedError, build_source
from invsync.providers import shopify as sh
from invsync.sandbox.server import Sandbox, run_sandbox
from invsync.sandbox.state import Fault

# ----------------------------------------------------------------------------- Shopify


async def test_shopify_locations_and_stock_across_pages(sandbox: Sandbox) -> None:
    shop = build_source(source(sandbox, "shopify", "main"), {"access_token": SHOPIFY_TOKEN}, retry=FAST)
    locations = await shop.list_locations()
    assert [(x.id, x.name, x.active) for x in locations] == [(LOC1, "JKT", True), (LOC2, "SBY", False)]
    records = await shop.read_stock([LOC1, LOC2])
    await shop.aclose()
    at1 = {r.sku: r for r in records if r.location == LOC1}
    at2 = {r.sku: r for r in records if r.location == LOC2}
    assert len(at1) == SHOPIFY_ITEMS and len(at2) == SHOPIFY_ITEMS // 2  # odd items only at LOC2
    assert sandbox.state.read_pages["shopify"] == 3 + 2  # 200 per page
    assert at1["SKU-7"] == StockRecord("src-main", LOC1, "SKU-7", 7, continue_selling=False)
    assert at1["SKU-3"].continue_selling  # inventoryPolicy CONTINUE
    assert at1["SKU-10"].continue_selling  # not tracked
    assert at2["SKU-7"].available == 1 and "SKU-8" not in at2


async def test_shopify_cost_throttling_waits_for_the_bucket() -> None:
    cfg = config()
    cfg["shopify"][0]["throttle"] = {"maximumAvailable": 900, "restoreRate": 4000}
    async with run_sandbox(cfg) as sb:
        shop = build_source(source(sb, "shopify", "main"), {"access_token": SHOPIFY_TOKEN}, retry=FAST)
        records = await shop.read_stock([LOC1])
        await shop.aclose()
        assert len(records) == SHOPIFY_ITEMS
        # a 200-level page costs 803 of 900: every page after the first was throttled at least once
        assert sb.state.requests[("shopify", "graphql", "200")] >= 2 * 3 - 1
        assert sb.state.read_pages["shopify"] == 3


async def test_shopify_bad_token_is_an_auth_error(sandbox: Sandbox) -> None:
    shop = build_source(source(sandbox, "shopify", "main"), {"access_token": "shpat_wrong_1234"}, retry=FAST)
    with pytest.raises(AuthError, match="HTTP 401") as caught:
        await shop.list_locations()
    await shop.aclose()
    assert "shpat_wrong_1234" not in str(caught.value)


async def test_shopify_page_failing_mid_read_raises_partial_read(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(Fault(platform="shopify", status=502, partial_pages=True))
    shop = build_source(source(sandbox, "shopify", "main"), {"access_token": SHOPIFY_TOKEN}, retry=FAST)
    with pytest.raises(PartialReadError, match="page 2 failed"):
        await shop.read_stock([LOC1])
    await shop.aclose()


async def test_sandbox_rejects_graphql_it_does_not_serve(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/shopify/main/admin/api/{sh.API_VERSION}/graphql.json"
    headers = {"X-Shopify-Access-Token": SHOPIFY_TOKEN}
    async with httpx.AsyncClient() as client:
        r = await client.post(url, json={"query": "query { shop(id: 1) { name } }"}, headers=headers)
        assert "Cannot query field 'shop' on type 'QueryRoot'" in r.json()["errors"][0]["message"]
        bad = await client.post(
            url, json={"query": sh.LOCATIONS_QUERY, "variables": {"first": 251}}, headers=headers
        )
        assert "between 1 and 250" in bad.json()["errors"][0]["message"]


def _shopify_webhook(payload: dict[str, int | None], secret: str) -> tuple[dict[str, str], bytes]:
    body = json.dumps(payload).encode()
    mac = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-Shopify-Hmac-Sha256": mac, "X-Shopify-Topic": "inventory_levels/update"}, body


async def test_shopify_webhook_maps_item_and_location_through_the_last_read(sandbox: Sandbox) -> None:
    shop = build_source(source(sandbox, "shopify", "main"), {"access_token": SHOPIFY_TOKEN}, retry=FAST)
    await shop.read_stock([LOC1])
    await shop.aclose()
    stranger = _shopify_webhook(
        {"inventory_item_id": 999_999, "location_id": 11, "available": 9}, HOOK_SECRET
    )
    with pytest.raises(WebhookRejectedError, match="not in the last read") as unknown:
        shop.parse_webhook(*stranger, HOOK_SECRET)
    assert unknown.value.status == 422
    # the operator parses deliveries with a fresh client: the last read is shared per shop
    fresh = build_source(source(sandbox, "shopify", "main"), {"access_token": SHOPIFY_TOKEN})
    headers, body = _shopify_webhook({"inventory_item_id": 4, "location_id": 11, "available": 9}, HOOK_SECRET)
    item = sandbox.state.shopify["main"].items["gid://shopify/InventoryItem/4"]
    assert fresh.parse_webhook(headers, body, HOOK_SECRET) == [
        StockRecord("src-main", LOC1, item.sku, 9, True)
    ]
    with pytest.raises(WebhookRejectedError, match="Hmac") as forged:
        fresh.parse_webhook(headers, body.replace(b"9", b"8"), HOOK_SECRET)
    assert forged.value.status == 401
    untracked = _shopify_webhook({"inventory_item_id": 11, "location_id": 11, "available": None}, HOOK_SECRET)
    assert [(r.available, r.continue_selling) for r in fresh.parse_webhook(*untracked, HOOK_SECRET)] == [
        (0, True)
    ]
    await fresh.aclose()


# ----------------------------------------------------------------------------- generic HTTP


async def test_http_source_pages_with_bearer_token(sandbox: Sandbox) -> None:
    wms = build_source(source(sandbox, "http", "wms"), {"token": ERP_TOKEN}, retry=FAST)
    assert [x.id for x in await wms.list_locations()] == ["jkt"]
    records = await wms.read_stock(["jkt"])
    await wms.aclose()
    assert len(records) == ERP_ITEMS and sandbox.state.read_pages["http"] == 3  # 500 per page
    by_sku = {r.sku: r for r in records}
    assert by_sku["E-7"] == StockRecord("src-wms", "jkt", "E-7", 7, continue_selling=True)
    assert not by_sku["E-8"].enabled and by_sku["E-1099"].available == 1099


async def test_http_source_without_token_is_refused(sandbox: Sandbox) -> None:
    wms = build_source(source(sandbox, "http", "wms"), None, retry=FAST)
    with pytest.raises(AuthError, match="HTTP 401"):
        await wms.read_stock(["jkt"])
    await wms.aclose()


async def test_http_source_retries_5xx_and_honours_retry_after(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(
        Fault(platform="http", operation="inventory", status=503, retry_after=0.3, count=1)
    )
    wms = build_source(source(sandbox, "http", "wms"), {"token": ERP_TOKEN}, retry=FAST)
    started = time.monotonic()
    assert len(await wms.read_stock(["jkt"])) == ERP_ITEMS
    assert time.monotonic() - started >= 0.3
    await wms.aclose()
    assert sandbox.state.requests[("http", "inventory", "503")] == 1


def _generic(items: list[dict[str, object]], secret: str, sent: float) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"items": items}).encode()
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-invsync-signature": f"sha256={mac}", "x-invsync-timestamp": str(int(sent))}, body


async def test_generic_webhook_verification(sandbox: Sandbox) -> None:
    wms = build_source(source(sandbox, "http", "wms"), {"token": ERP_TOKEN}, retry=FAST)
    row = {"sku": "E-1", "location": "jkt", "available": 4, "continueSelling": False, "enabled": True}
    headers, body = _generic([row], HOOK_SECRET, time.time())
    assert wms.parse_webhook(headers, body, HOOK_SECRET) == [StockRecord("src-wms", "jkt", "E-1", 4)]
    cases = [
        (_generic([row], "other-secret", time.time()), 401, "does not match"),
        (_generic([row], HOOK_SECRET, time.time() - 301), 401, "refused"),
        (_generic([{"sku": "E-1"}], HOOK_SECRET, time.time()), 400, "items.0.location"),
        (({"x-invsync-timestamp": "1"}, body), 401, "missing X-Invsync-Signature"),
        (_generic([row] * 60_000, HOOK_SECRET, time.time()), 413, "exceeds"),
    ]
    for (h, b), status, message in cases:
        with pytest.raises(WebhookRejectedError, match=message) as caught:
            wms.parse_webhook(h, b, HOOK_SECRET)
        assert caught.value.status == status
    await wms.aclose()
