"""TikTok Shop 202309 as its partner docs define it: the sandbox refuses what TikTok refuses, with
TikTok's codes, and the client works within those rules. Every test names the page it checks (in the
public mirror lazykern/ecommerce-api-docs); docs/platforms.md has the same table."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping

import kubernetes
import pytest
from contract_env import (
    APP_KEY,
    APP_SECRET,
    FAST,
    REFRESH,
    TOKEN,
    call,
    inventory,
    secret,
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
    MultiWarehouseRefusedError,
    PartialReadError,
    ProviderError,
    TokenPair,
    build_channel,
    tokens,
)
from invsync.providers import tiktok as tt
from invsync.sandbox.common import cursor
from invsync.sandbox.server import Sandbox, SandboxThread
from invsync.sandbox.state import Fault
from invsync.testing.cluster import ControlPlane

S1_BOTH = [{"warehouse_id": "7000", "quantity": 6}, {"warehouse_id": "7001", "quantity": 9}]


def test_an_update_names_every_warehouse_assigned_to_the_sku(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/update-inventory.doc.json: "You must include all warehouse IDs
    assigned to this SKU ... Do not omit any or add unrelated warehouses"; error 12019028. The whole
    request changes nothing."""
    omitted = update(
        sandbox, "p1", [{"id": "s1", "inventory": S1_BOTH[:1]}, {"id": "s2", "inventory": S1_BOTH[:1]}]
    )
    added = update(
        sandbox, "p1", [{"id": "s2", "inventory": [*S1_BOTH, {"warehouse_id": "7002", "quantity": 0}]}]
    )
    assert omitted["code"] == added["code"] == tt.CODE_WAREHOUSES_INCOMPLETE == 12019028
    assert inventory(sandbox, "s1") == {"7000": 5, "7001": 8} and inventory(sandbox, "s2") == {"7000": 2}
    whole = update(sandbox, "p1", [{"id": "s1", "inventory": S1_BOTH}])
    assert whole["code"] == 0 and not whole["data"] and inventory(sandbox, "s1") == {"7000": 6, "7001": 9}


async def test_carried_warehouses_are_sent_at_the_value_tiktok_holds_at_the_write(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/update-inventory.doc.json (every assigned warehouse in each
    update) and data/raw/tiktok/api-reference/products/inventory-search.doc.json (POST
    /product/202309/inventory/search by sku_ids; warehouse_inventory[].available_quantity is Get Product's
    inventory.quantity): a value read minutes ago would undo the sale made since; the value re-read at the
    write cannot."""
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    read = {x.channel_warehouse_id: x for x in await channel.list_listings({"A-1"})}
    sandbox.state.tiktok["ROW_c"].skus["s1"].inventory["7001"] = 7  # one sold at 7001 after the read
    outcomes = await channel.push(
        "p1",
        [
            SlotUpdate("p1", "s1", "7000", 20, "A-1"),
            SlotUpdate("p1", "s1", "7001", read["7001"].quantity, "A-1", carried=True),
        ],
    )
    await channel.aclose()
    assert [o.ok for o in outcomes] == [True, True] and outcomes[1].update.quantity == 7
    assert inventory(sandbox, "s1") == {"7000": 20, "7001": 7}
    assert sandbox.state.requests[("tiktok", "inventory_search", "200")] == 1


async def test_a_sku_whose_warehouses_changed_since_the_read_is_not_written(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/update-inventory.doc.json: every assigned warehouse, no other; a
    SKU whose assignment changed since the read cannot be written from that read (12019028 otherwise)."""
    sandbox.state.tiktok["ROW_c"].skus["s1"].inventory["7002"] = 0  # the seller assigned another warehouse
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    outcomes = await channel.push(
        "p1", [SlotUpdate("p1", "s1", "7000", 1), SlotUpdate("p1", "s1", "7001", 8, carried=True)]
    )
    await channel.aclose()
    assert not any(o.ok for o in outcomes) and "warehouses changed" in outcomes[0].message
    assert sandbox.state.writes["requests"] == 0


def test_inventory_search_limits(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/inventory-search.doc.json: product_ids at most 100 (12019120),
    sku_ids at most 600 (12019015); when both are given, sku_ids win."""
    path = tt.INVENTORY_SEARCH_PATH
    assert call(sandbox, "POST", path, {"sku_ids": [f"x{i}" for i in range(601)]})["code"] == 12019015
    assert call(sandbox, "POST", path, {"product_ids": [f"x{i}" for i in range(101)]})["code"] == 12019120
    both = call(sandbox, "POST", path, {"sku_ids": ["s2"], "product_ids": ["p1"]})
    assert [s["id"] for p in both["data"]["inventory"] for s in p["skus"]] == ["s2"]


async def test_no_multi_warehouse_permission_is_12052094_with_a_message_a_seller_understands() -> None:
    """data/raw/tiktok/api-reference/products/update-inventory.doc.json: 12052094 "No multiple warehouse
    permission"."""
    with SandboxThread(world(multiWarehouse=False)) as sb:
        refused = update(sb, "p1", [{"id": "s1", "inventory": S1_BOTH}])
        assert refused["code"] == tt.CODE_MULTI_WAREHOUSE_REFUSED == 12052094
        channel = build_channel(store(sb), secret(), retry=FAST)
        with pytest.raises(
            MultiWarehouseRefusedError, match=r"no multi-warehouse permission.*default warehouse"
        ):
            await channel.push("p1", [SlotUpdate("p1", "s1", "7000", 1), SlotUpdate("p1", "s1", "7001", 1)])
        await channel.aclose()
        assert inventory(sb, "s1") == {"7000": 5, "7001": 8}


async def test_a_search_filters_at_most_ten_seller_skus(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/search-products.doc.json (the mirrored page is 202502):
    12019027, at most 10 seller_skus in the search filter. The client asks 10 at a time."""
    eleven = call(
        sandbox,
        "POST",
        tt.SEARCH_PATH,
        {"seller_skus": [f"A-{i}" for i in range(11)]},
        query={"page_size": "10"},
    )
    assert eleven["code"] == tt.CODE_SELLER_SKUS_MAX == 12019027
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    wanted = {"A-1", "A-2", "B-1"} | {f"NONE-{i}" for i in range(22)}
    assert {x.sku for x in await channel.list_listings(wanted)} == {"A-1", "A-2", "B-1"}
    await channel.aclose()
    # the refused search above, then 25 SKUs 10 per search
    assert sandbox.state.requests[("tiktok", "products_search", "200")] == 1 + 3


async def test_one_search_lists_at_most_ten_thousand_products_and_a_full_read_partitions_by_create_time() -> (
    None
):
    """data/raw/tiktok/api-reference/products/search-products.doc.json (202502 page): 12052180, the total
    number of search results can not exceed 10000; create_time_ge / create_time_le filter the search. A
    full read of a larger shop is all or nothing across its windows."""
    with SandboxThread(world(generate={"products": 10_500, "quantity": 1})) as sb:
        deep = call(sb, "POST", tt.SEARCH_PATH, {}, query={"page_size": "100", "page_token": cursor(10_000)})
        assert deep["code"] == tt.CODE_SEARCH_RESULTS_MAX == 12052180
        channel = build_channel(store(sb), secret(), retry=FAST)
        listings = await channel.list_listings()
        assert len({x.product_id for x in listings}) == 10_502
        assert len(listings) == 10_500 * 2 + 3 + 1  # generated SKUs sit in both enabled warehouses
        sb.state.faults.append(
            Fault(platform="tiktok", operation="products_search", status=500, partial_pages=True)
        )
        with pytest.raises(PartialReadError):
            await channel.list_listings()
        await channel.aclose()


async def test_only_activate_products_take_inventory_updates(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/update-inventory.doc.json: "Update the inventory quantity of
    SKUs belonging to a product in the ACTIVATE status"; 12052901 for a product in another status. Listings
    carry the status and are not writable outside ACTIVATE
    (data/raw/tiktok/api-reference/products/search-products.doc.json lists the statuses)."""
    refused = update(sandbox, "p2", [{"id": "s3", "inventory": [{"warehouse_id": "7000", "quantity": 9}]}])
    assert refused["code"] == 12052901 and inventory(sandbox, "s3") == {"7000": 4}
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    by_sku = {x.sku: x for x in await channel.list_listings()}
    await channel.aclose()
    assert (by_sku["B-1"].status, by_sku["B-1"].writable) == ("SELLER_DEACTIVATED", False)
    assert (by_sku["A-2"].status, by_sku["A-2"].writable) == ("ACTIVATE", True)


# margins either side of each bound: a busy machine takes a while between signing and checking
@pytest.mark.parametrize(("skew", "accepted"), [(-320, False), (-280, True), (20, True), (40, False)])
def test_timestamps_from_five_minutes_before_to_thirty_seconds_after_now(
    sandbox: Sandbox, skew: int, accepted: bool
) -> None:
    """data/processed/tiktok/guides/developer-guide/tiktok-shop-api-concepts/common-errors.md: timestamps must
    lie from 5 minutes before to 30 seconds after the current time; 36009004 otherwise."""
    envelope = call(sandbox, "GET", tt.WAREHOUSES_PATH, skew=skew)
    assert envelope["code"] == (0 if accepted else tt.CODE_CREDENTIALS_INVALID)


async def test_token_codes_invalid_and_expired(sandbox: Sandbox) -> None:
    """data/processed/tiktok/guides/developer-guide/tiktok-shop-api-concepts/common-errors.md: 36009004 for an
    invalid x-tts-access-token, 105002 for an expired one (refresh it), 106001 for an invalid sign."""
    with pytest.raises(AuthError, match="code 36009004"):
        channel = build_channel(store(sandbox), secret(access_token="ck-not-a-token"), retry=FAST)
        try:
            await channel.list_warehouses()
        finally:
            await channel.aclose()
    sandbox.state.tiktok["ROW_c"].expired = True
    channel = build_channel(store(sandbox), secret(refresh_token=""), retry=FAST)
    with pytest.raises(AuthError, match="code 105002"):
        await channel.list_warehouses()
    await channel.aclose()


def test_update_error_codes_for_product_sku_warehouse_and_quantity(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/update-inventory.doc.json error codes: 12052032 product does not
    exist, 12052556 SKU id does not exist, 12052097 warehouse does not exist, 12052531 warehouse disabled,
    12052055 quantity outside the allowed limits; per-SKU errors in data.errors[] with
    detail.extra_errors[] per warehouse (main code 12052990)."""
    assert update(sandbox, "nope", [{"id": "s1", "inventory": S1_BOTH}])["code"] == 12052032
    answer = update(
        sandbox,
        "p1",
        [
            {"id": "zz", "inventory": S1_BOTH},
            {"id": "s1", "inventory": [{"warehouse_id": "7000", "quantity": 100_000}, S1_BOTH[1]]},
        ],
    )
    errors = {e["detail"]["sku_id"]: e for e in answer["data"]["errors"]}
    assert answer["code"] == 0 and errors["zz"]["code"] == 12052556
    assert errors["s1"]["code"] == 12052990
    assert errors["s1"]["detail"]["extra_errors"] == [
        {
            "warehouse_id": "7000",
            "code": 12052055,
            "message": errors["s1"]["detail"]["extra_errors"][0]["message"],
        }
    ]
    shop = sandbox.state.tiktok["ROW_c"]
    shop.skus["s2"].inventory["9999"] = 1  # assigned, but the shop has no such warehouse
    shop.skus["s2"].inventory["7002"] = 0  # assigned and disabled
    wrong = update(
        sandbox,
        "p1",
        [
            {
                "id": "s2",
                "inventory": [
                    {"warehouse_id": "7000", "quantity": 1},
                    {"warehouse_id": "9999", "quantity": 1},
                    {"warehouse_id": "7002", "quantity": 3},
                ],
            }
        ],
    )
    codes = {x["warehouse_id"]: x["code"] for x in wrong["data"]["errors"][0]["detail"]["extra_errors"]}
    assert codes == {"9999": 12052097, "7002": 12052531}
    assert inventory(sandbox, "s1") == {"7000": 5, "7001": 8} and inventory(sandbox, "s2")["7000"] == 2


async def test_per_warehouse_errors_reach_the_push_outcome(sandbox: Sandbox) -> None:
    """data/raw/tiktok/api-reference/products/update-inventory.doc.json response:
    data.errors[].detail.extra_errors[] name the warehouse, code and message of each secondary error."""
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    outcomes = await channel.push(
        "p1",
        [
            SlotUpdate("p1", "s1", "7000", 100_000),
            SlotUpdate("p1", "s1", "7001", 1),
            SlotUpdate("p1", "s2", "7000", 3),
        ],
    )
    await channel.aclose()
    assert [o.ok for o in outcomes] == [False, False, True]
    assert "code 12052990" in outcomes[0].message and "warehouse 7000" in outcomes[0].message
    assert "code 12052055" in outcomes[1].message


async def test_an_access_token_is_refreshed_before_it_expires_and_the_pair_is_handed_on(
    sandbox: Sandbox,
) -> None:
    """data/processed/tiktok/guides/developer-guide/get-started/authorization/authorization-overview-202407.md:
    GET /api/v2/token/refresh with app_key, app_secret, refresh_token, grant_type=refresh_token answers
    access_token, access_token_expire_in (unix time, seven days by default) and refresh_token."""
    saved: list[TokenPair] = []

    async def sink(pair: TokenPair) -> None:
        saved.append(pair)

    soon = str(int(time.time()) + 3600)  # inside the last day of the token's life
    channel = tt.TikTokChannel(
        store="tt",
        endpoint=sandbox.url,
        shop_cipher="ROW_c",
        credentials=tt.Credentials(APP_KEY, APP_SECRET, TOKEN, REFRESH, int(soon)),
        rate=1000,
        burst=100,
        retry=FAST,
        on_refresh=sink,
    )
    assert len(await channel.list_warehouses()) == 3
    await channel.aclose()
    [pair] = saved
    assert pair.access_token == sandbox.state.tiktok["ROW_c"].access_token != TOKEN
    assert pair.access_token_expire_in >= time.time() + 7 * 86400 - 60
    assert sandbox.state.requests[("tiktok", "warehouses", "401")] == 0  # refreshed before, not after


async def test_a_refreshed_pair_is_written_to_the_stores_secret(
    cluster: ControlPlane, namespace: str, sandbox: Sandbox
) -> None:
    """data/processed/tiktok/guides/developer-guide/get-started/authorization/authorization-overview-202407.md:
    a refresh issues a new access token (and refresh token); a restarted operator must start from the new
    pair, so the operator writes it to the Store's Secret."""
    api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    kube = Kube(api)
    creds = secret(**{ACCESS_TOKEN_EXPIRE_IN: str(int(time.time()) + 60)})
    kube.core.create_namespaced_secret(namespace, {"metadata": {"name": "tiktok-creds"}, "stringData": creds})
    the_store = Store.model_validate(
        store(sandbox).model_dump(by_alias=True) | {"metadata": {"name": "tt", "namespace": namespace}}
    )
    channel = KubePorts(kube).channel(the_store, creds)
    assert len(await channel.list_warehouses()) == 3
    await channel.aclose()
    stored: Mapping[str, str] | None = await kube.read_secret(namespace, "tiktok-creds")
    assert stored is not None and stored["access_token"] == sandbox.state.tiktok["ROW_c"].access_token
    assert (
        int(stored[ACCESS_TOKEN_EXPIRE_IN]) > time.time() + 6 * 86400 and stored["app_secret"] == APP_SECRET
    )
    tokens._NEWEST.clear()  # a new process: nothing in memory counts
    restarted = build_channel(the_store, stored, retry=FAST)
    assert len(await restarted.list_warehouses()) == 3
    await restarted.aclose()
    assert sandbox.state.requests[("tiktok", "token_refresh", "200")] == 1
    api.close()


async def test_a_search_page_of_other_types_than_the_docs_is_refused_and_nothing_is_read() -> None:
    """data/raw/tiktok/api-reference/products/search-products.doc.json (Response Parameters): code int,
    products[].id, skus[].id, seller_sku and inventory[].warehouse_id strings, quantity and total_count
    ints. The client decodes pages into those types: a page that has others (a quantity as a string)
    is refused as malformed, naming the field, and no slot of it is kept."""
    slot = {"warehouse_id": "7000", "quantity": "7"}
    product = {
        "id": "1729",
        "status": "ACTIVATE",
        "skus": [{"id": "1730", "seller_sku": "A", "inventory": [slot]}],
    }
    page = {"code": 0, "message": "Success", "data": {"total_count": 1, "products": [product]}}
    body = json.dumps(page).encode()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    endpoint = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    channel = tt.TikTokChannel(
        store="tt",
        endpoint=endpoint,
        shop_cipher="ROW_c",
        credentials=tt.Credentials(APP_KEY, APP_SECRET, TOKEN),
        rate=1000,
        burst=100,
        retry=FAST,
    )
    async with server:
        with pytest.raises(ProviderError, match=r"page 1 is malformed .*quantity"):
            await channel.list_listings()
    await channel.aclose()
