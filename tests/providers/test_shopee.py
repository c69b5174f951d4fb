"""ShopeeChannel against the sandbox: retries, errors a seller can act on, credentials kept out of logs, and
one refresh per shop however many clients it has (a refresh token works once)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from invsync.engine.records import SlotUpdate
from invsync.providers import CredentialsError, RetryPolicy, TokenPair, UnavailableError, build_channel
from invsync.sandbox.server import Sandbox, SandboxThread
from invsync.sandbox.state import Fault

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "contract"))
from shopee_env import FAST, PARTNER_KEY, REFRESH, SHOP_ID, TOKEN, secret, stock, store, world


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with SandboxThread(world()) as sb:
        yield sb


async def test_5xx_is_retried_and_exhaustion_raises_unavailable(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(Fault(platform="shopee", operation="warehouses", status=503, count=2))
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    assert len(await channel.list_warehouses()) == 2
    sandbox.state.faults[:] = [Fault(platform="shopee", operation="warehouses", status=502)]
    with pytest.raises(UnavailableError, match="HTTP 502 after 3 attempts"):
        await channel.list_warehouses()
    await channel.aclose()
    assert sandbox.state.requests[("shopee", "warehouses", "503")] == 2


async def test_a_timeout_is_retried(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(Fault(platform="shopee", operation="update_stock", latency=1.0, count=1))
    channel = build_channel(store(sandbox), secret(), retry=RetryPolicy(attempts=3, base=0.01, timeout=0.5))
    [outcome] = await channel.push("5001", [SlotUpdate("5001", "7002", "IDZ", 6, "K-2")])
    await channel.aclose()
    assert outcome.ok and stock(sandbox, 5001, 7002) == {"IDZ": 6}


async def test_a_refused_call_fails_every_slot_with_shopees_message(sandbox: Sandbox) -> None:
    sandbox.state.faults.append(
        Fault(
            platform="shopee", operation="update_stock", status=200, error="error_holiday_mode_change_stock"
        )
    )
    channel = build_channel(store(sandbox), secret(), retry=FAST)
    outcomes = await channel.push(
        "5001", [SlotUpdate("5001", "7001", "IDZ", 1, "K-1"), SlotUpdate("5001", "7002", "IDZ", 1, "K-2")]
    )
    await channel.aclose()
    assert not any(o.ok for o in outcomes)
    assert all("error_holiday_mode_change_stock" in o.message for o in outcomes)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"partner_key": ""}, "no key 'partner_key'"),
        ({"partner_id": ""}, "no key 'partner_id'"),
        ({"partner_id": "20O1"}, "'partner_id' is not a number"),
        ({"access_token_expire_in": "soon"}, "not a unix time"),
    ],
)
def test_a_secret_without_a_usable_key_names_the_key(
    sandbox: Sandbox, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(CredentialsError, match=message) as refused:
        build_channel(store(sandbox), secret(**overrides))
    assert PARTNER_KEY not in str(refused.value) and "Store shop/sp" in str(refused.value)


async def test_two_clients_of_a_shop_spend_its_refresh_token_once(sandbox: Sandbox) -> None:
    """A second refresh with the same (spent) refresh token would lock the shop out."""
    sandbox.state.shopee[SHOP_ID].expire_in = int(time.time()) - 1
    saved: list[str] = []

    async def sink(pair: TokenPair) -> None:
        saved.append(pair.refresh_token)

    the_store = store(sandbox).model_copy(update={"name": "two-clients"})
    one, two = (build_channel(the_store, secret(), retry=FAST, on_refresh=sink) for _ in range(2))
    first, second = await asyncio.gather(one.list_warehouses(), two.list_warehouses())
    assert first == second and len(first) == 2
    third = build_channel(the_store, secret(), retry=FAST, on_refresh=sink)  # built from the old Secret
    assert len(await third.list_listings()) == 5
    for channel in (one, two, third):
        await channel.aclose()
    assert sandbox.state.requests[("shopee", "token_refresh", "200")] == 1
    assert saved == [sandbox.state.shopee[SHOP_ID].refresh_token]


async def test_no_credential_in_logs_or_errors(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sandbox.state.shopee[SHOP_ID].expire_in = int(time.time()) - 1
    the_store = store(sandbox).model_copy(update={"name": "logged"})
    channel = build_channel(the_store, secret(), retry=FAST)
    await channel.list_listings()
    await channel.push("5001", [SlotUpdate("5001", "7002", "IDZ", 3, "K-2")])
    await channel.aclose()
    shop = sandbox.state.shopee[SHOP_ID]
    text = caplog.text
    assert "access token refreshed" in text and "get_item_list" in text
    assert all(v not in text for v in (TOKEN, REFRESH, PARTNER_KEY, shop.access_token, shop.refresh_token))
