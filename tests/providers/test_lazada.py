"""The Lazada client against the sandbox: refreshes shared between clients, retries, redaction, and
the engine's view of what it reads."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "contract"))
from lazada_env import APP_SECRET, REFRESH, TOKEN, WH2, secret, stock, store, world

from invsync.engine.records import PlanRow, SlotUpdate
from invsync.operator.act import push_rows
from invsync.providers import (
    AuthError,
    CredentialsError,
    PartialReadError,
    ProviderError,
    RetryPolicy,
    TokenPair,
    UnavailableError,
    build_channel,
)
from invsync.sandbox.config import ConfigError, load_config
from invsync.sandbox.server import Sandbox, run_sandbox
from invsync.sandbox.state import Fault

FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05, timeout=5)


@pytest.fixture
async def lazada() -> AsyncIterator[Sandbox]:
    async with run_sandbox(world()) as sb:
        yield sb


async def test_clients_of_one_seller_share_one_refresh(lazada: Sandbox) -> None:
    """The refresh token is single-use: two clients (two rules on one Store) that met an expired token
    at once refresh once, and both go on with the new pair."""
    saved: list[TokenPair] = []

    async def sink(pair: TokenPair) -> None:
        saved.append(pair)

    lazada.state.lazada.sellers["m1"].expire_at = 0
    channels = [build_channel(store(lazada), secret(), retry=FAST, on_refresh=sink) for _ in range(2)]
    counts = await asyncio.gather(*(c.list_warehouses() for c in channels))
    assert [len(c) for c in counts] == [2, 2] and len(saved) == 1
    later = build_channel(store(lazada), secret(), retry=FAST)  # built from the old Secret, in this process
    assert len(await later.list_warehouses()) == 2
    for c in [*channels, later]:
        await c.aclose()
    assert [r["code"] for r in lazada.state.lazada.log if r["operation"] == "token_refresh"] == ["0"]


async def test_a_pair_the_sink_could_not_store_is_used_and_the_loss_logged_without_it(
    lazada: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(pair: TokenPair) -> None:
        raise RuntimeError(f"Secret write refused for {pair.refresh_token}")

    caplog.set_level(logging.DEBUG)
    lazada.state.lazada.sellers["m1"].expire_at = 0
    channel = build_channel(store(lazada), secret(), retry=FAST, on_refresh=broken)
    assert len(await channel.list_warehouses()) == 2
    await channel.aclose()
    seller = lazada.state.lazada.sellers["m1"]
    assert "must authorize the app again" in caplog.text
    for value in (seller.access_token, seller.refresh_token, REFRESH, TOKEN, APP_SECRET):
        assert value not in caplog.text


async def test_5xx_is_retried_and_exhaustion_raises_unavailable(lazada: Sandbox) -> None:
    channel = build_channel(store(lazada), secret(), retry=FAST)
    lazada.state.faults.append(Fault(platform="lazada", operation="warehouses", status=503, count=1))
    assert len(await channel.list_warehouses()) == 2
    lazada.state.faults.append(Fault(platform="lazada", operation="stock_update", status=502))
    with pytest.raises(UnavailableError):
        await channel.push("9001", [SlotUpdate("9001", "9101", "dropshipping", 1, "K-1")])
    await channel.aclose()
    assert stock(lazada, "K-1")["dropshipping"] == 5


async def test_a_first_page_refused_is_a_provider_error_and_a_later_one_a_partial_read() -> None:
    async with run_sandbox(world(generate={"products": 120})) as sb:
        channel = build_channel(store(sb), secret(), retry=FAST)
        sb.state.faults.append(
            Fault(platform="lazada", operation="products_get", status=200, code=506, count=1)
        )
        with pytest.raises(ProviderError, match="code 506") as first:
            await channel.list_listings()
        assert type(first.value) is ProviderError
        sb.state.faults.append(
            Fault(platform="lazada", operation="products_get", status=500, partial_pages=True)
        )
        with pytest.raises(PartialReadError, match="page 2 failed"):
            await channel.list_listings()
        await channel.aclose()


async def test_a_refused_signature_is_an_auth_error_without_the_secret(lazada: Sandbox) -> None:
    channel = build_channel(store(lazada), secret(app_secret="lz-wrong-secret-1"), retry=FAST)
    with pytest.raises(AuthError) as refused:
        await channel.list_warehouses()
    await channel.aclose()
    assert "IncompleteSignature" in str(refused.value) and "lz-wrong-secret-1" not in str(refused.value)


async def test_a_secret_without_app_secret_names_the_key(lazada: Sandbox) -> None:
    creds = secret()
    del creds["app_secret"]
    with pytest.raises(CredentialsError, match="'app_secret'"):
        build_channel(store(lazada), creds)


async def test_a_multi_warehouse_push_writes_only_the_warehouses_it_names(lazada: Sandbox) -> None:
    channel = build_channel(store(lazada), secret(), retry=FAST)
    outcomes = await channel.push("9001", [SlotUpdate("9001", "9102", "dropshipping", 4, "K-2")])
    await channel.aclose()
    assert [o.ok for o in outcomes] == [True]
    assert stock(lazada, "K-2") == {"dropshipping": 4, WH2: 3}


async def test_pushes_of_one_sku_products_at_once_share_requests() -> None:
    """Lazada takes SKUs of different products in one request (inventory-management-api.md); the act
    step pushes product by product, several at once, and those SKUs go 20 per request."""
    async with run_sandbox(world(generate={"products": 30, "quantity": 1})) as sb:
        channel = build_channel(store(sb), secret(), retry=FAST)
        listings = [x for x in await channel.list_listings() if x.sku.startswith("SKU-")]
        rows = [
            PlanRow("r", "lz", x.channel_warehouse_id, x.sku, x.product_id, x.sku_id, 1, 4, "ratio")
            for x in listings
            if x.channel_warehouse_id == "dropshipping"
        ]

        async def progress(done: int, total: int) -> None:
            return None

        outcomes, _ = await push_rows(
            rows, "DecreasesFirst", {"lz": channel}, progress, listings=listings, concurrency={"lz": 30}
        )
        await channel.aclose()
        assert len(outcomes) == 30 and all(o.ok for o in outcomes.values())
        written = [r["skus"] for r in sb.state.lazada.log if r["operation"] == "stock_update"]
        assert sorted(written) == [10, 20]
        assert {stock(sb, x.sku)["dropshipping"] for x in listings} == {4}


# issue 18's example (one SKU line wrapped)
ISSUE_18_CONFIG = """
lazada:
  app_key: "3001"
  app_secret: s
  sellers:
    - access_token: t
      refresh_token: r
      warehouses: [dropshipping]
      products:
        - item_id: 9001
          skus:
            - {SkuId: 9101, SellerSku: K-1,
               multiWarehouseInventories: [{warehouseCode: dropshipping, sellableQuantity: 0}]}
"""


async def test_the_issues_config_serves_a_single_warehouse_seller(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(ISSUE_18_CONFIG)
    async with run_sandbox(path) as sb:
        the_store = store(sb)
        creds = {"app_key": "3001", "app_secret": "s", "access_token": "t", "refresh_token": "r"}
        channel = build_channel(the_store, creds, retry=FAST)
        [slot] = await channel.list_listings()
        assert (slot.sku, slot.product_id, slot.sku_id, slot.channel_warehouse_id, slot.quantity) == (
            "K-1",
            "9001",
            "9101",
            "dropshipping",
            0,
        )
        assert [
            o.ok for o in await channel.push("9001", [SlotUpdate("9001", "9101", "dropshipping", 6, "K-1")])
        ] == [True]
        await channel.aclose()
        assert sb.state.snapshot()["lazada"]["0"]["products"][0]["skus"][0]["stock"] == {"dropshipping": 6}


def test_a_config_naming_an_unknown_warehouse_says_where(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(ISSUE_18_CONFIG.replace("warehouseCode: dropshipping", "warehouseCode: elsewhere"))
    with pytest.raises(
        ConfigError, match=r"sandbox.yaml: lazada\.sellers\.0.*K-1: unknown warehouseCode 'elsewhere'"
    ):
        load_config(path)
