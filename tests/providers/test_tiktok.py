"""The TikTok Shop client against the sandbox, over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from platform_env import APP_KEY, APP_SECRET, FAST, PRODUCTS, TOKEN, config, store, tiktok_secret

from invsync.engine.records import SlotUpdate
from invsync.metrics import REGISTRY
from invsync.providers import (
    AuthError,
    CredentialsError,
    MultiWarehouseRefusedError,
    PartialReadError,
    RetryPolicy,
    UnavailableError,
    build_channel,
)
from invsync.providers import tiktok as tt
from invsync.sandbox.server import Sandbox, run_sandbox
from invsync.sandbox.state import Fault

# Signature test vector, with the string to sign spelled out by hand (not by the code under test).
VECTOR_SECRET = "s3cr3t"
VECTOR_PATH = "/product/202309/products/search"
VECTOR_PARAMS = {
    "app_key": "k1",
    "timestamp": "1700000000",
    "shop_cipher": "ROW_x",
    "page_size": "100",
    "sign": "ignored",
    "access_token": "ignored-too",
}
VECTOR_BODY = b'{"status":"ACTIVATE"}'
VECTOR_STRING = (
    "s3cr3t/product/202309/products/searchapp_keyk1page_size100shop_cipherROW_xtimestamp1700000000"
    '{"status":"ACTIVATE"}s3cr3t'
)
VECTOR_SIGN = "cc2250614db464a73175fb2020999b7f85f67b352ed5652dc7d1b7f7579e3f94"


def _hand_signed(sb: Sandbox, path: str, params: dict[str, str], body: bytes = b"") -> httpx.Request:
    """A request signed by the recipe itself: secret + path + sorted k+v + body + secret."""
    pairs = "".join(k + params[k] for k in sorted(params))
    text = APP_SECRET + path + pairs + body.decode() + APP_SECRET
    digest = hmac.new(APP_SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    return httpx.Request(
        "POST" if body else "GET",
        sb.url + path,
        params=params | {"sign": digest},
        content=body or None,
        headers={"x-tts-access-token": TOKEN},
    )


def test_signature_matches_the_independent_vector() -> None:
    by_hand = hmac.new(VECTOR_SECRET.encode(), VECTOR_STRING.encode(), hashlib.sha256).hexdigest()
    assert by_hand == VECTOR_SIGN
    assert tt.sign(VECTOR_SECRET, VECTOR_PATH, VECTOR_PARAMS, VECTOR_BODY) == VECTOR_SIGN


async def test_sandbox_verifier_agrees_with_the_vector_and_refuses_a_bad_sign(sandbox: Sandbox) -> None:
    params = {"app_key": APP_KEY, "shop_cipher": "ROW_main", "timestamp": str(int(time.time()))}
    async with httpx.AsyncClient() as client:
        ok = await client.send(_hand_signed(sandbox, tt.WAREHOUSES_PATH, params))
        assert ok.status_code == 200 and ok.json()["code"] == 0
        body = b'{"status":"ACTIVATE"}'
        search = _hand_signed(sandbox, tt.SEARCH_PATH, params | {"page_size": "5"}, body)
        assert (await client.send(search)).json()["code"] == 0
        tampered = _hand_signed(sandbox, tt.SEARCH_PATH, params | {"page_size": "5"}, body)
        tampered.url = tampered.url.copy_set_param("page_size", "6")
        refused = await client.send(tampered)
        assert refused.status_code == 401 and refused.json()["code"] == tt.CODE_SIGN_INVALID
        stale = params | {"timestamp": str(int(time.time()) - 301)}
        old = await client.send(_hand_signed(sandbox, tt.WAREHOUSES_PATH, stale))
        assert old.status_code == 401 and old.json()["code"] == tt.CODE_CREDENTIALS_INVALID


async def test_sandbox_serves_product_detail_and_inventory_search(sandbox: Sandbox) -> None:
    params = {"app_key": APP_KEY, "shop_cipher": "ROW_main", "timestamp": str(int(time.time()))}
    async with httpx.AsyncClient() as client:
        detail = (await client.send(_hand_signed(sandbox, "/product/202309/products/p5", params))).json()
        assert [s["seller_sku"] for s in detail["data"]["skus"]] == ["SKU-5-0", "SKU-5-1"]
        body = b'{"sku_ids":["s5-1"]}'
        found = (
            await client.send(_hand_signed(sandbox, "/product/202309/inventory/search", params, body))
        ).json()
        [sku] = found["data"]["inventory"][0]["skus"]
        assert sku["id"] == "s5-1" and sku["total_available_quantity"] == 5 % 7 + 1


async def test_warehouses(sandbox: Sandbox) -> None:
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    warehouses = {w.id: w for w in await channel.list_warehouses()}
    await channel.aclose()
    assert warehouses["7000"].is_default and warehouses["7000"].effect_status == "ENABLED"
    assert warehouses["7002"].type == "RETURN_WAREHOUSE" and warehouses["7002"].effect_status == "DISABLED"


async def test_listings_page_across_several_pages(sandbox: Sandbox) -> None:
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    listings = await channel.list_listings()
    await channel.aclose()
    assert len(listings) == PRODUCTS * 2 * 2  # two SKUs per product, two warehouses per SKU
    assert len({(x.product_id, x.sku_id, x.channel_warehouse_id) for x in listings}) == len(listings)
    assert sandbox.state.read_pages["tiktok"] == -(-PRODUCTS // tt.PAGE_SIZE) >= 3
    slot = next(x for x in listings if x.sku_id == "s12-1" and x.channel_warehouse_id == "7000")
    assert (slot.sku, slot.product_id, slot.quantity, slot.store) == (
        "SKU-12-1",
        "p12",
        12 % 7,
        "tt-row_main",
    )


async def test_listings_of_some_seller_skus_only(sandbox: Sandbox) -> None:
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    wanted = {f"SKU-{i}-1" for i in range(150)} | {"SKU-7-0", "NOT-LISTED"}
    listings = await channel.list_listings(wanted)
    await channel.aclose()
    assert {x.sku for x in listings} == wanted - {"NOT-LISTED"}
    assert len(listings) == 151 * 2  # two warehouse slots each
    # 151 SKUs in 16 searches of at most 10; each matches under a page of products
    assert sandbox.state.read_pages["tiktok"] == 16


async def test_push_partial_failure_fails_only_the_named_skus(sandbox: Sandbox) -> None:
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    updates = [
        SlotUpdate("p3", "s3-0", "7000", 40, "SKU-3-0"),
        SlotUpdate("p3", "s3-0", "7001", 41, "SKU-3-0"),
        SlotUpdate("p3", "s3-1", "7000", 100_000, "SKU-3-1"),  # above TikTok's 99,999
        SlotUpdate("p3", "s3-1", "7001", 2, "SKU-3-1"),
        SlotUpdate("p3", "s9-0", "7000", 5, "SKU-9-0"),  # not a SKU of p3
        SlotUpdate("p3", "s9-0", "7001", 5, "SKU-9-0"),
    ]
    outcomes = await channel.push("p3", updates)
    await channel.aclose()
    assert [o.ok for o in outcomes] == [True, True, False, False, False, False]
    # the per-warehouse cause reaches the message of every slot of the failed SKU
    assert "warehouse 7000" in outcomes[2].message and "12052055" in outcomes[3].message
    assert "12052556" in outcomes[4].message
    sku = sandbox.state.tiktok["ROW_main"].skus
    assert sku["s3-0"].inventory == {"7000": 40, "7001": 41}
    assert sku["s3-1"].inventory == {"7000": 3 % 7, "7001": 1} and sku["s9-0"].inventory["7000"] == 9 % 7
    assert sandbox.state.writes == {"requests": 1, "slots": 2, "changed": 2}


async def test_429_burst_is_retried_after_retry_after(sandbox: Sandbox) -> None:
    burst = Fault(platform="tiktok", operation="warehouses", burst429=2, retry_after=0.4)
    sandbox.state.faults.append(burst)
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    started = time.monotonic()
    assert len(await channel.list_warehouses()) == 3
    elapsed = time.monotonic() - started
    await channel.aclose()
    assert burst.burst429 == 0
    assert elapsed >= 0.8  # two Retry-After waits; FAST's own backoff is at most 0.05s
    assert sandbox.state.requests[("tiktok", "warehouses", "429")] == 2
    assert sandbox.state.requests[("tiktok", "warehouses", "200")] == 1


async def test_5xx_is_retried_and_exhaustion_raises_unavailable(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(Fault(platform="tiktok", operation="warehouses", status=503, count=2))
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    assert len(await channel.list_warehouses()) == 3
    assert sandbox.state.requests[("tiktok", "warehouses", "503")] == 2
    sandbox.state.faults.append(Fault(platform="tiktok", operation="warehouses", status=500))
    with pytest.raises(UnavailableError, match="HTTP 500 after 4 attempts"):
        await channel.list_warehouses()
    await channel.aclose()


async def test_a_page_failing_mid_read_raises_partial_read(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(
        Fault(platform="tiktok", operation="products_search", status=500, partial_pages=True)
    )
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    with pytest.raises(PartialReadError, match="page 2 failed"):
        await channel.list_listings()
    await channel.aclose()


async def test_bad_signature_is_a_clear_auth_error(sandbox: Sandbox) -> None:
    channel = build_channel(store(sandbox), tiktok_secret(app_secret="wrong-secret-xyz"), retry=FAST)
    with pytest.raises(AuthError, match=r"sign.*code 106001") as caught:
        await channel.list_warehouses()
    await channel.aclose()
    assert "wrong-secret-xyz" not in str(caught.value)
    assert sandbox.state.requests[("tiktok", "warehouses", "401")] == 1  # auth errors are not retried


async def test_expired_token_is_refreshed_once(sandbox: Sandbox) -> None:
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    async with httpx.AsyncClient() as admin:
        r = await admin.post(f"{sandbox.url}/_sandbox/token", json={"shop": "ROW_main", "expired": True})
        assert r.status_code == 200
    assert len(await channel.list_warehouses()) == 3
    shop = sandbox.state.tiktok["ROW_main"]
    assert shop.access_token != TOKEN and not shop.expired
    assert sandbox.state.requests[("tiktok", "token_refresh", "200")] == 1
    assert sandbox.state.requests[("tiktok", "warehouses", "401")] == 1
    assert len(await channel.list_warehouses()) == 3  # the new token is kept
    assert sandbox.state.requests[("tiktok", "token_refresh", "200")] == 1
    await channel.aclose()
    # A new client from the same (now stale) Secret starts with the refreshed token: no refresh.
    again = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    assert len(await again.list_warehouses()) == 3
    assert sandbox.state.requests[("tiktok", "token_refresh", "200")] == 1
    await again.aclose()
    # Once that token expires too, one client refreshes and the other adopts the new token.
    sandbox.state.tiktok["ROW_main"].expired = True
    clients = [build_channel(store(sandbox), tiktok_secret(), retry=FAST) for _ in range(2)]
    for _ in range(3):
        counts = await asyncio.gather(*(c.list_warehouses() for c in clients))
        assert [len(c) for c in counts] == [3, 3]
    assert sandbox.state.requests[("tiktok", "token_refresh", "200")] == 2
    for c in clients:
        await c.aclose()


async def test_expired_token_without_refresh_token_is_an_auth_error(sandbox: Sandbox) -> None:
    sandbox.state.tiktok["ROW_main"].expired = True
    secret = tiktok_secret()
    del secret["refresh_token"]
    channel = build_channel(store(sandbox), secret, retry=FAST)
    with pytest.raises(AuthError, match="code 105002"):
        await channel.list_warehouses()
    await channel.aclose()


async def test_non_whitelisted_shop_refuses_other_warehouses(sandbox: Sandbox) -> None:
    channel = build_channel(store(sandbox, "ROW_single"), tiktok_secret(), retry=FAST)
    with pytest.raises(MultiWarehouseRefusedError, match="no multi-warehouse permission"):
        await channel.push("p1", [SlotUpdate("p1", "s1-0", "7001", 3)])
    outcomes = await channel.push("p1", [SlotUpdate("p1", "s1-0", "7000", 3)])
    await channel.aclose()
    assert [o.ok for o in outcomes] == [True]


async def test_a_shop_rejecting_pushes_fails_every_slot(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(
        Fault(platform="tiktok", operation="inventory_update", target="ROW_main", status=200, code=12019001)
    )
    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    outcomes = await channel.push(
        "p1", [SlotUpdate("p1", "s1-0", "7000", 3), SlotUpdate("p1", "s1-1", "7000", 4)]
    )
    await channel.aclose()
    assert [o.ok for o in outcomes] == [False, False] and "12019001" in outcomes[0].message


async def test_shop_rate_limit_is_enforced_and_the_client_bucket_stays_within_it() -> None:
    cfg = config()
    cfg["tiktok"]["shops"][0]["requestsPerSecond"] = 4
    async with run_sandbox(cfg) as sb:
        polite = build_channel(store(sb, rps=3, burst=1), tiktok_secret(), retry=FAST)
        for _ in range(4):
            await polite.list_warehouses()
        await polite.aclose()
        assert sb.state.requests == {("tiktok", "warehouses", "200"): 4}
        sb.state.reset_counts()
        patient = RetryPolicy(attempts=10, base=0.1, cap=0.5, timeout=5)
        greedy = build_channel(store(sb, rps=1000, burst=100), tiktok_secret(), retry=patient)
        for _ in range(8):
            await greedy.list_warehouses()
        await greedy.aclose()
        limited = sb.state.requests[("tiktok", "warehouses", "429")]
        assert limited > 0, "the sandbox let a shop exceed its requestsPerSecond"
        assert sb.state.requests[("tiktok", "warehouses", "200")] == 8


async def test_a_timeout_is_retried_and_counted(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(Fault(platform="tiktok", operation="warehouses", latency=1, count=1))
    labels = {"platform": "tiktok", "operation": "warehouses", "code": "timeout"}
    before = REGISTRY.get_sample_value("invsync_platform_requests_total", labels) or 0
    channel = build_channel(
        store(sandbox), tiktok_secret(), retry=RetryPolicy(attempts=3, base=0.01, timeout=0.5)
    )
    assert len(await channel.list_warehouses()) == 3
    await channel.aclose()
    assert REGISTRY.get_sample_value("invsync_platform_requests_total", labels) == before + 1


async def test_a_secret_without_a_required_key_names_the_key(sandbox: Sandbox) -> None:
    secret = tiktok_secret()
    del secret["app_secret"]
    with pytest.raises(CredentialsError, match=r"Store shop/tt-row_main: .* no key 'app_secret'"):
        build_channel(store(sandbox), secret)


@given(
    params=st.dictionaries(
        st.text("abcde", min_size=1, max_size=6), st.text("xyz019", max_size=6), max_size=6
    ),
    body=st.binary(max_size=40),
)
def test_sign_ignores_param_order_and_the_excluded_keys(params: dict[str, str], body: bytes) -> None:
    base = tt.sign(APP_SECRET, tt.SEARCH_PATH, params, body)
    reordered = dict(reversed(list(params.items()))) | {"sign": "old", "access_token": TOKEN}
    assert tt.sign(APP_SECRET, tt.SEARCH_PATH, reordered, body) == base
    for key in params:
        assert tt.sign(APP_SECRET, tt.SEARCH_PATH, params | {key: params[key] + "z"}, body) != base
    assert tt.sign(APP_SECRET, tt.SEARCH_PATH, params, body + b" ") != base
