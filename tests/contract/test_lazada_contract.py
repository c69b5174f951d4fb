"""Lazada Open Platform as its docs define it: the sandbox refuses what Lazada refuses, with Lazada's
codes, and the client works within those rules. Every test names the page it checks in the public
mirror lazykern/ecommerce-api-docs (LA/ = data/raw/lazada/apis/, LG/ = data/processed/lazada/guides/);
docs/platforms.md ("Lazada") has the same table."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

import kubernetes
import pytest
from lazada_env import (
    APP_KEY,
    APP_SECRET,
    REFRESH,
    SINGLE_TOKEN,
    WH2,
    call,
    multi,
    secret,
    single,
    stock,
    store,
    update,
    world,
)

from invsync.api import Store
from invsync.engine.records import SlotUpdate
from invsync.operator.kube import Kube, KubePorts
from invsync.providers import (
    ACCESS_TOKEN_EXPIRE_IN,
    AuthError,
    PartialReadError,
    RateLimitedError,
    RetryPolicy,
    TokenPair,
    build_channel,
    tokens,
)
from invsync.providers import lazada as lz
from invsync.sandbox.server import Sandbox, SandboxThread
from invsync.sandbox.state import Fault
from invsync.testing.cluster import ControlPlane

FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05, timeout=5)
PRODUCTS = {"filter": "all", "limit": "50"}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with SandboxThread(world()) as sb:
        yield sb


def test_the_docs_signing_example_is_the_signature(sandbox: Sandbox) -> None:
    """LG/developers-guide/call-api-with-http-requests/http-request-sample.md: /order/get with app_key
    123456, access_token test, timestamp 1517820392000, sign_method sha256, order_id 1234 and App Secret
    helloworld signs as 4190D323...AB4A (upper-case hex HMAC-SHA256 of the path and the sorted key+value
    pairs: signature-algorithm.md). The sandbox refuses a wrong sign (IncompleteSignature) and a missing
    one (MissingParameter): LA/system-api/generateaccesstoken.json."""
    params = {
        "app_key": "123456",
        "access_token": "test",
        "timestamp": "1517820392000",
        "sign_method": "sha256",
        "order_id": "1234",
    }
    assert lz.sign("helloworld", "/order/get", params) == (
        "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"
    )
    assert lz.sign("helloworld", "/order/get", params | {"sign": "anything"}) == lz.sign(
        "helloworld", "/order/get", params
    )
    ok = call(sandbox, lz.PRODUCTS_PATH, PRODUCTS)
    assert ok["code"] == "0" and ok["data"]["total_products"] == 3 and ok["request_id"]
    wrong = call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"sign_method": "md5"})
    assert (wrong["code"], wrong["type"]) == ("IncompleteSignature", "ISV") and wrong["message"]


# margins either side of the bound: a busy machine takes a while between signing and checking
@pytest.mark.parametrize(("skew", "accepted"), [(-7300, False), (-7100, True), (7100, True), (7300, False)])
def test_timestamps_are_milliseconds_within_7200_seconds_of_utc(
    sandbox: Sandbox, skew: int, accepted: bool
) -> None:
    """LG/developers-guide/call-api-with-http-requests/calling-parameters.md: timestamp like
    1517886554000 (milliseconds); "the difference between the timestamp and UTC time should not exceed
    7200 seconds". No page names the code of a stale timestamp: InvalidTimestamp is the sandbox's."""
    envelope = call(sandbox, lz.PRODUCTS_PATH, PRODUCTS, skew_ms=skew * 1000)
    assert envelope["code"] == ("0" if accepted else lz.CODE_TIMESTAMP)


def test_get_products_limit_offset_and_filter(sandbox: Sandbox) -> None:
    """LA/product-api/getproducts.json: limit "The maximum is 50" (19 Invalid Limit); offset is
    deprecated, "The maximum offset is 10000" (14 Invalid Offset); filter one of all, live, inactive,
    deleted, pending, rejected, sold-out (36 Invalid status filter); dates in ISO 8601 (17)."""
    assert call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"limit": "51"})["code"] == "19"
    assert call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"offset": "10001"})["code"] == "14"
    assert call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"offset": "10000"})["code"] == "0"
    assert call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"filter": "everything"})["code"] == "36"
    assert call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"create_after": "yesterday"})["code"] == "17"
    page = call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"limit": "2", "offset": "1"})
    assert [p["item_id"] for p in page["data"]["products"]] == [9002, 9003]


async def test_empty_warehouses_are_left_out_of_the_answer_and_read_as_zero(sandbox: Sandbox) -> None:
    """LG/api-best-practice/product-operation/product-inventory-management/inventory-calculation-logic.md:
    multiWarehouseInventories "does not respond to information from other warehouses when those
    warehouses are not in stock"; GetMultiWarehouseBySeller (/seller/warehouse/get, addressTypes
    ["warehouse"]) lists the seller's warehouses. A warehouse missing from the SKU holds 0."""
    k1 = call(sandbox, lz.PRODUCTS_PATH, PRODUCTS)["data"]["products"][0]["skus"][0]
    assert [w["warehouseCode"] for w in k1["multiWarehouseInventories"]] == ["dropshipping"]
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    assert [w.id for w in await channel.list_warehouses()] == ["dropshipping", WH2]
    slots = {(x.sku, x.channel_warehouse_id): x.quantity for x in await channel.list_listings()}
    await channel.aclose()
    assert slots[("K-1", WH2)] == 0 and slots[("K-2", "dropshipping")] == 0
    assert slots[("K-1", "dropshipping")] == 5 and slots[("K-2", WH2)] == 3


async def test_a_full_read_pages_by_created_time_windows_of_at_most_ten_thousand() -> None:
    """LA/product-api/getproducts.json: offset at most 10000, "It is recommended to use date for
    scrolling query" (create_after / create_before, ISO 8601). A seller with more products is read in
    created-time windows; a page failing mid-read fails the whole read (PartialReadError)."""
    with SandboxThread(world(generate={"products": 10_100, "quantity": 2})) as sb:
        deep = call(sb, lz.PRODUCTS_PATH, PRODUCTS | {"offset": "10001"})
        assert deep["code"] == "14"
        channel = build_channel(store(sb), secret(), retry=FAST)
        listings = await channel.list_listings()
        assert len({x.product_id for x in listings}) == 10_100 + 2  # item 9003 has no SKU
        assert len(listings) == (10_100 + 3) * 2  # every SKU in both warehouses
        sb.state.faults.append(
            Fault(platform="lazada", operation="products_get", status=500, partial_pages=True)
        )
        with pytest.raises(PartialReadError):
            await channel.list_listings()
        await channel.aclose()


async def test_a_webhook_read_filters_by_seller_sku_100_at_a_time(sandbox: Sandbox) -> None:
    """LA/product-api/getproducts.json: sku_seller_list, a JSON array, "A maximum of 100 SKUs"; E070
    for corrupt data in the list (the sandbox also answers 70 for more than 100: a choice)."""
    too_many = call(
        sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"sku_seller_list": str([f"X-{i}" for i in range(101)])}
    )
    assert too_many["code"] == "70"
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    wanted = {"K-2", "S-1"} | {f"NONE-{i}" for i in range(150)}
    assert {(x.sku, x.channel_warehouse_id) for x in await channel.list_listings(wanted)} == {
        ("K-2", "dropshipping"),
        ("K-2", WH2),
    }  # S-1 is another seller's
    await channel.aclose()
    reads = [r for r in sandbox.state.lazada.log if r["operation"] == "products_get" and r["code"] == "0"]
    assert len(reads) == 2  # 152 seller SKUs, 100 per read


def test_update_caps_and_payload_format(sandbox: Sandbox) -> None:
    """LA/product-api/updatesellablequantity.json: "The maximum number of products that can be updated
    is 50" (E204 Too many SKU in one request), E005 Invalid Request Format, E030 Empty Request; the
    payload is XML <Request><Product><Skus><Sku>; the answer {"code": "0", "data": {}}."""
    fifty_one = "".join(single(9101, "K-1", 1) for _ in range(51))
    assert update(sandbox, fifty_one)["code"] == "204"
    assert call(sandbox, lz.UPDATE_PATH, {"payload": "<Request><Product>"}, post=True)["code"] == "5"
    assert call(sandbox, lz.UPDATE_PATH, {}, post=True)["code"] == "30"
    assert stock(sandbox, "K-1") == {"dropshipping": 5, WH2: 0}
    ok = update(sandbox, multi(9101, "K-1", {"dropshipping": 8, WH2: 2}))
    assert (ok["code"], ok["data"]) == ("0", {}) and stock(sandbox, "K-1") == {"dropshipping": 8, WH2: 2}


async def test_a_single_warehouse_seller_gets_the_single_warehouse_form(sandbox: Sandbox) -> None:
    """LG/api-best-practice/product-operation/product-inventory-management/inventory-management-api.md:
    "Single-warehouse sellers should not use the multi-warehouse format, otherwise an error may be
    reported" (the sandbox refuses it in a 501 detail: a choice); the single-warehouse form updates
    dropshipping only. The client picks the form from GetMultiWarehouseBySeller."""
    refused = update(sandbox, multi(8101, "S-1", {"dropshipping": 9}), token=SINGLE_TOKEN)
    assert refused["code"] == "501" and refused["detail"][0]["seller_sku"] == "S-1"
    assert stock(sandbox, "S-1", "s1") == {"dropshipping": 4}
    channel = build_channel(store(sandbox), secret(access_token=SINGLE_TOKEN, refresh_token=""), retry=FAST)
    outcomes = await channel.push(
        "8001",
        [SlotUpdate("8001", "8101", "dropshipping", 9, "S-1"), SlotUpdate("8001", "8101", WH2, 1, "S-1")],
    )
    await channel.aclose()
    assert [o.ok for o in outcomes] == [False, True] and "one warehouse" in outcomes[0].message
    assert stock(sandbox, "S-1", "s1") == {"dropshipping": 9}


async def test_a_501_fails_the_skus_its_detail_names_and_the_others_are_written(sandbox: Sandbox) -> None:
    """LA/product-api/updatesellablequantity.json: 501 "Update product failed" is an overview code,
    "check the detail field in the API response to understand the SKU where the error occurred and the
    cause". Whether the other SKUs of that request were applied is not documented (the sandbox applies
    none), so the client sends them once more without the failed ones. An unknown warehouseCode fails
    its SKU."""
    refused = update(sandbox, multi(9101, "K-1", {"dropshipping": 1}) + multi(9102, "K-2", {"NOPE": 1}))
    assert refused["code"] == "501" and [d["seller_sku"] for d in refused["detail"]] == ["K-2"]
    assert stock(sandbox, "K-1")["dropshipping"] == 5  # nothing of a refused request applies
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    outcomes = await channel.push(
        "9001",
        [
            SlotUpdate("9001", "9101", "dropshipping", 7, "K-1"),
            SlotUpdate("9001", "9102", "NOPE", 1, "K-2"),
            SlotUpdate("9001", "9102", WH2, 9, "K-2", carried=True),
        ],
    )
    await channel.aclose()
    by_slot = {(o.update.sku, o.update.channel_warehouse_id): o for o in outcomes}
    assert by_slot[("K-1", "dropshipping")].ok and stock(sandbox, "K-1")["dropshipping"] == 7
    assert not by_slot[("K-2", "NOPE")].ok and "NOPE does not exist" in by_slot[("K-2", "NOPE")].message
    assert stock(sandbox, "K-2")[WH2] == 3  # a carried slot is never sent: each warehouse stands alone
    codes = [r["code"] for r in sandbox.state.lazada.log if r["operation"] == "stock_update"]
    assert codes[-2:] == ["501", "0"]


async def test_stock_in_lazadas_warehouse_fbl_is_read_not_written(sandbox: Sandbox) -> None:
    """LG/overview/lazop-2-0-overview.md: fblWarehouseInventories, "The stock from lazada warehouse -
    cannot be edited"; Case 4, "You will not be able to update your stock through this API". Its slots
    read as not writable with status FBL; a write is refused in a 501 detail (the code is a choice)."""
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    fbl = [x for x in await channel.list_listings() if x.sku == "F-1"]
    await channel.aclose()
    assert fbl and all((x.writable, x.status) == (False, lz.FBL_STATUS) for x in fbl)
    refused = update(sandbox, multi(9201, "F-1", {"dropshipping": 3}))
    assert refused["code"] == "501" and "FBL" in refused["detail"][0]["message"]


async def test_during_a_mega_campaign_stock_goes_up_not_down_4170(sandbox: Sandbox) -> None:
    """LA/product-api/updatesellablequantity.json: 4170, during the Mega campaign "Sellers can increase
    stocks, but may not decrease stocks". The sandbox answers 4170 (with detail) when every failure is
    one; the client fails those SKUs with Lazada's message."""
    sandbox.state.lazada.sellers["m1"].increase_only = True
    assert update(sandbox, multi(9101, "K-1", {"dropshipping": 4}))["code"] == "4170"
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    outcomes = await channel.push(
        "9001",
        [SlotUpdate("9001", "9101", "dropshipping", 2, "K-1"), SlotUpdate("9001", "9102", WH2, 6, "K-2")],
    )
    await channel.aclose()
    assert [o.ok for o in outcomes] == [False, True]
    assert "may not decrease" in outcomes[0].message and "4170" in outcomes[0].message
    assert stock(sandbox, "K-1")["dropshipping"] == 5 and stock(sandbox, "K-2")[WH2] == 6


async def test_pushes_go_twenty_skus_per_request() -> None:
    """LA/product-api/updatesellablequantity.json: at most 50 SKUs, "but 20 is recommended"; error 513
    advises 20 or fewer per request."""
    with SandboxThread(world(skus=45)) as sb:
        channel = build_channel(store(sb), secret(), retry=FAST)
        updates = [SlotUpdate("9003", str(9300 + n), "dropshipping", 3, f"M-{n}") for n in range(45)]
        assert all(o.ok for o in await channel.push("9003", updates))
        await channel.aclose()
        assert [r["skus"] for r in sb.state.lazada.log if r["operation"] == "stock_update"] == [20, 20, 5]
        assert {stock(sb, f"M-{n}")["dropshipping"] for n in range(45)} == {3}


async def test_the_rate_limit_901_is_retried_in_the_next_second() -> None:
    """LA/product-api/updatesellablequantity.json and getproducts.json: 901 "API level QPS limiting flow,
    please retry in the next second"; LG/.../inventory-management-api.md: 50 inventory calls per second
    per seller. Retries exhausted raise RateLimitedError."""
    with SandboxThread(world(requestsPerSecond=1)) as sb:
        channel = build_channel(
            store(sb), secret(), retry=RetryPolicy(attempts=4, base=0.01, cap=0.05, timeout=5)
        )
        started = time.monotonic()
        assert len(await channel.list_warehouses()) == 2
        await channel.list_listings()  # the bucket of one call per second is empty: 901, then one second
        assert time.monotonic() - started >= 0.9
        assert "901" in [r["code"] for r in sb.state.lazada.log]
        sb.state.faults.append(Fault(platform="lazada", operation="stock_update", status=200, code=901))
        with pytest.raises(RateLimitedError):
            await channel.push("9001", [SlotUpdate("9001", "9101", "dropshipping", 1, "K-1")])
        await channel.aclose()


async def test_token_codes_and_a_refresh_token_used_twice(sandbox: Sandbox) -> None:
    """LA/finance-api/getpayoutstatus.json (and every seller API): IllegalAccessToken, "The specified
    access token is invalid or expired"; LA/system-api/refreshaccesstoken.json: /auth/token/refresh
    returns a new access_token and refresh_token, IllegalRefreshToken for an invalid one;
    LG/quick-start-guide/seller-authorization-introduction.md: "You must save the latest refresh_token",
    so a refresh token works once."""
    channel = build_channel(
        store(sandbox), secret(access_token="lz-not-a-token", refresh_token=""), retry=FAST
    )
    with pytest.raises(AuthError, match="IllegalAccessToken"):
        await channel.list_warehouses()
    await channel.aclose()
    first = call(sandbox, lz.REFRESH_PATH, {"refresh_token": REFRESH}, token=None, post=True)
    assert first["code"] == "0" and first["refresh_token"] != REFRESH and first["expires_in"] > 0
    again = call(sandbox, lz.REFRESH_PATH, {"refresh_token": REFRESH}, token=None, post=True)
    assert again["code"] == lz.CODE_REFRESH_TOKEN
    assert call(sandbox, lz.PRODUCTS_PATH, PRODUCTS)["code"] == lz.CODE_ACCESS_TOKEN  # the old token
    assert call(sandbox, lz.PRODUCTS_PATH, PRODUCTS, token=first["access_token"])["code"] == "0"


async def test_an_expired_token_is_refreshed_and_the_new_pair_stored_before_it_is_used(
    sandbox: Sandbox,
) -> None:
    """LG/quick-start-guide/seller-authorization-introduction.md: refresh "30 minutes before the token
    expires"; expires_in in seconds; a new refresh_token each time. The pair reaches the token sink before
    any call uses it."""
    order: list[str] = []

    async def sink(pair: TokenPair) -> None:
        order.append("stored")
        assert sandbox.state.lazada.sellers["m1"].access_token == pair.access_token

    soon = str(int(time.time()) + 600)  # inside the last 30 minutes
    channel = build_channel(
        store(sandbox), secret(**{ACCESS_TOKEN_EXPIRE_IN: soon}), retry=FAST, on_refresh=sink
    )
    assert len(await channel.list_warehouses()) == 2
    await channel.aclose()
    assert order == ["stored"]
    codes = [(r["operation"], r["code"]) for r in sandbox.state.lazada.log]
    assert codes == [("token_refresh", "0"), ("warehouses", "0")]  # refreshed before, not after a refusal


async def test_a_rotated_pair_is_written_to_the_secret_and_used_after_a_restart(
    cluster: ControlPlane, namespace: str, sandbox: Sandbox
) -> None:
    """LG/quick-start-guide/seller-authorization-introduction.md: "You will get new access_token and
    refresh_token. You must save the latest refresh_token"; the old refresh token is spent
    (IllegalRefreshToken, LA/system-api/refreshaccesstoken.json). The operator writes the pair to the
    Store's Secret, and a restarted operator works from it, refreshing again with the new refresh token."""
    api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    kube = Kube(api)
    creds = secret()
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": "lazada-creds"}, "stringData": creds})
    the_store = Store.model_validate(store(sandbox, namespace=namespace).model_dump(by_alias=True))
    sandbox.state.lazada.sellers["m1"].expire_at = time.time() - 1  # expired: refreshed on IllegalAccessToken
    channel = KubePorts(kube).channel(the_store, creds)
    assert len(await channel.list_warehouses()) == 2
    await channel.aclose()
    stored: Mapping[str, str] | None = await kube.read_secret(namespace, "lazada-creds")
    seller = sandbox.state.lazada.sellers["m1"]
    assert stored is not None and (stored["access_token"], stored["refresh_token"]) == (
        seller.access_token,
        seller.refresh_token,
    )
    assert (
        stored["refresh_token"] != REFRESH
        and stored["app_key"] == APP_KEY
        and stored["app_secret"] == APP_SECRET
    )
    assert int(stored[ACCESS_TOKEN_EXPIRE_IN]) > time.time() + 29 * 86400
    tokens._NEWEST.clear()  # a new process: nothing in memory counts
    restarted = build_channel(the_store, stored, retry=FAST)
    assert len(await restarted.list_warehouses()) == 2
    seller.expire_at = time.time() - 1  # and once more: the stored refresh token is the live one
    restarted.creds.access_token_expire_in = 0
    assert len(await restarted.list_warehouses()) == 2
    await restarted.aclose()
    refreshes = [r["code"] for r in sandbox.state.lazada.log if r["operation"] == "token_refresh"]
    assert refreshes == ["0", "0"]
    api.close()


def test_the_envelope_of_an_error_has_code_type_message_and_request_id(sandbox: Sandbox) -> None:
    """LG/developers-guide/error-messages.md: errors come in three types, ISV, ISP and SYSTEM, with the
    request ID and the error code; success is {"code": "0", "data": ..., "request_id": ...}
    (LA/product-api/updatesellablequantity.json example)."""
    refused = call(sandbox, lz.PRODUCTS_PATH, PRODUCTS | {"limit": "0"})
    assert set(refused) == {"code", "type", "message", "request_id"} and refused["type"] in (
        "ISV",
        "ISP",
        "SYSTEM",
    )
    assert APP_SECRET not in str(refused)
