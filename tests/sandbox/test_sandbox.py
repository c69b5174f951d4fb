"""The sandbox as users and other tests drive it: the command, the admin API, webhooks, scale."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from invsync.api import InventorySource, Store
from invsync.engine.records import SlotUpdate
from invsync.providers import RetryPolicy, UnavailableError, WebhookRejectedError, build_channel, build_source
from invsync.sandbox.common import cursor
from invsync.sandbox.config import ConfigError, load_config
from invsync.sandbox.server import SandboxThread, run_sandbox

HERE = Path(__file__).parent
CONFIG = HERE / "sandbox.yaml"
FAST = RetryPolicy(attempts=3, base=0.01, cap=0.05, timeout=10)
LOC = "gid://shopify/Location/1"


EXAMPLES = HERE.parents[1] / "examples" / "sandbox.yaml"
INVSYNC = [str(Path(sys.executable).parent / "invsync"), "sandbox"]
MODULE = [sys.executable, "-m", "invsync.sandbox"]


def _start(*args: str, command: list[str] = MODULE) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*command, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline()


def _serve_and_stop(command: list[str], config: Path) -> dict[str, Any]:
    """Start as a user would, read the one line saying where it listens, fetch the state, Ctrl-C."""
    proc, line = _start("--config", str(config), command=command)
    try:
        assert "listening on http://127.0.0.1:" in line, line
        url = line.split("listening on ")[1].split()[0]
        state: dict[str, Any] = httpx.get(f"{url}/_sandbox/state", timeout=10).json()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    return state


def test_invsync_sandbox_serves_the_examples_fixture() -> None:
    state = _serve_and_stop(INVSYNC, EXAMPLES)
    assert state["tiktok"] and (state["shopify"] or state["erp"])


def test_module_entry_serves_the_spec_example() -> None:
    state = _serve_and_stop(MODULE, CONFIG)
    assert state["tiktok"]["ROW_abc"]["products"][0]["skus"][0]["seller_sku"] == "A-1"
    assert state["shopify"]["main"]["items"][0]["levels"] == {LOC: 100}


def test_bad_config_exits_2_naming_file_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("effect_status: ENABLED", "effect_status: ON"))
    proc, _ = _start("--config", str(bad))
    assert proc.wait(timeout=20) == 2
    assert proc.stderr is not None
    err = proc.stderr.read().strip()
    assert str(bad) in err and "tiktok.shops.0.warehouses.0.effect_status" in err and "\n" not in err


def test_a_busy_port_exits_2_with_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc, _ = _start("--config", str(CONFIG), "--port", str(port))
        assert proc.wait(timeout=20) == 2
    assert proc.stderr is not None
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr.read()


def test_config_errors_name_the_field() -> None:
    raw: dict[str, Any] = {
        "shopify": [{"shop": "m", "access_token": "x", "items": [{"sku": "A", "levels": {"L": 1}}]}]
    }
    with pytest.raises(
        ConfigError, match=r"shopify\.0: .*items\[0\] \(A\): levels names unknown location 'L'"
    ):
        load_config(raw)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(HERE / "missing.yaml")
    with pytest.raises(ConfigError, match=r"erp\.0\.name"):
        SandboxThread({"erp": [{"name": "no spaces allowed"}]})


def test_a_configmap_manifest_holds_the_config() -> None:
    plain = load_config(CONFIG)
    wrapped = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"sandbox.yaml": CONFIG.read_text()}}
    assert load_config(wrapped) == plain
    with pytest.raises(ConfigError, match=r"ConfigMap: data\.sandbox\.yaml: missing"):
        load_config({"apiVersion": "v1", "kind": "ConfigMap", "data": {"other": "x: 1"}})
    with pytest.raises(ConfigError, match=r"data\.sandbox\.yaml: expected a mapping"):
        load_config({"apiVersion": "v1", "kind": "ConfigMap", "data": {"sandbox.yaml": "- 1"}})


def test_thread_runner_serves_synchronous_callers() -> None:
    with SandboxThread(CONFIG) as sb:
        assert httpx.get(f"{sb.url}/_sandbox/requests").json()["total"] == 0


@asynccontextmanager
async def _receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A stand-in for the operator's webhook port: records what it is sent."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/webhooks/{ns}/{source}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", got
    finally:
        await runner.cleanup()


def _source(url: str, provider: str, name: str) -> InventorySource:
    return InventorySource.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "InventorySource",
            "metadata": {"name": name},
            "spec": {"provider": provider, "endpoint": url, "credentialsSecretRef": {"name": "c"}},
        }
    )


async def test_stock_changes_send_each_sources_own_webhook_format() -> None:
    async with _receiver() as (hook_url, got):
        raw = load_config(CONFIG).model_dump(by_alias=True)
        raw["webhooks"] = {"url": f"{hook_url}/webhooks/default/wms", "secret": "w-secret"}
        raw["shopify"][0]["webhook"] = {"url": f"{hook_url}/webhooks/default/main", "secret": "s-secret"}
        async with run_sandbox(raw) as sb, httpx.AsyncClient(base_url=sb.url) as admin:
            r = await admin.post(
                "/_sandbox/stock", json={"source": "wms", "location": "jkt", "sku": "A-1", "available": 7}
            )
            assert r.json() == {
                "ok": True,
                "webhook": {"url": f"{hook_url}/webhooks/default/wms", "status": 202},
            }
            wms = build_source(_source(f"{sb.url}/erp/wms", "http", "wms"), {"token": "t"}, retry=FAST)
            headers, body = got[0]
            assert wms.parse_webhook(headers, body, "w-secret")[0].available == 7

            shop = build_source(
                _source(f"{sb.url}/shopify/main", "shopify", "main"), {"access_token": "shpat_x"}
            )
            await shop.read_stock([LOC])
            r = await admin.post(
                "/_sandbox/stock", json={"source": "main", "location": LOC, "sku": "A-1", "available": 3}
            )
            assert r.json()["webhook"]["status"] == 202
            headers, body = got[1]
            assert "X-Shopify-Hmac-Sha256" in headers and json.loads(body)["location_id"] == 1
            [record] = shop.parse_webhook(headers, body, "s-secret")
            assert (record.sku, record.location, record.available) == ("A-1", LOC, 3)
            with pytest.raises(WebhookRejectedError):
                shop.parse_webhook(headers, body, "w-secret")
            assert (await shop.read_stock([LOC]))[0].available == 3
            assert sb.state.webhooks_sent == {"delivered": 2}
            await shop.aclose()
            await wms.aclose()


def _store(url: str) -> Store:
    return Store.model_validate(
        {
            "apiVersion": "invsync.dev/v1alpha1",
            "kind": "Store",
            "metadata": {"name": "tt"},
            "spec": {
                "platform": "tiktok",
                "endpoint": url,
                "shopCipher": "ROW_abc",
                "credentialsSecretRef": {"name": "c"},
            },
        }
    )


async def test_admin_listing_faults_and_request_counts() -> None:
    async with run_sandbox(CONFIG) as sb, httpx.AsyncClient(base_url=sb.url) as admin:
        channel = build_channel(
            _store(sb.url), {"app_key": "k", "app_secret": "s", "access_token": "t"}, retry=FAST
        )
        edit = {"shop": "ROW_abc", "seller_sku": "A-1", "warehouse_id": "7000", "quantity": 12}
        assert (await admin.post("/_sandbox/listing", json=edit)).json() == {"ok": True, "skus": ["s1"]}
        assert [x.quantity for x in await channel.list_listings()] == [12]

        bad = await admin.post("/_sandbox/faults", json={"platform": "tiktok", "errorRate": 2})
        assert bad.status_code == 400 and "faults.0.errorRate" in bad.json()["error"]
        fault = {"platform": "tiktok", "operation": "inventory_update", "target": "ROW_abc", "status": 500}
        assert len((await admin.post("/_sandbox/faults", json=fault)).json()["faults"]) == 1
        with pytest.raises(UnavailableError):
            await channel.push("p1", [SlotUpdate("p1", "s1", "7000", 5)])
        assert (await admin.post("/_sandbox/faults", json={"clear": True})).json() == {"faults": []}
        assert [o.ok for o in await channel.push("p1", [SlotUpdate("p1", "s1", "7000", 5)])] == [True]
        await channel.aclose()

        counts = (await admin.get("/_sandbox/requests")).json()
        by_key = {(c["platform"], c["operation"], c["code"]): c["count"] for c in counts["requests"]}
        assert by_key == {
            ("tiktok", "products_search", "200"): 1,
            ("tiktok", "inventory_update", "500"): 3,
            ("tiktok", "inventory_update", "200"): 1,
        }
        assert counts["writes"] == {"requests": 1, "slots": 1, "changed": 1}
        assert counts["readPages"] == {"tiktok": 1}
        assert (await admin.delete("/_sandbox/requests")).json()["total"] == 0


async def test_two_hundred_thousand_generated_listings_page_by_index() -> None:
    raw = load_config(CONFIG).model_dump(by_alias=True)
    raw["tiktok"]["shops"][0]["generate"] = {"products": 100_000, "skusPerProduct": 2, "quantity": 4}
    raw["tiktok"]["requestsPerSecond"] = 10_000
    async with run_sandbox(raw) as sb:
        shop = sb.state.tiktok["ROW_abc"]
        assert len(shop.skus) == 200_001 and shop.skus["gs199999"].seller_sku == "SKU-0199999"
        channel = build_channel(
            _store(sb.url), {"app_key": "k", "app_secret": "s", "access_token": "t"}, retry=FAST
        )
        # the last page of the newest 10,000 products (one search lists at most 10,000), through a token
        # the sandbox issued, as a reader deep into the catalogue sees it
        newest = {"create_time_ge": shop.times[-10_000], "create_time_le": shop.times[-1]}
        params = {"page_size": "100", "page_token": cursor(10_000 - 100)}
        envelope = await channel._call(
            "products_search", "POST", "/product/202309/products/search", params, newest
        )
        data = orjson.loads(memoryview(envelope.data))
        assert data["total_count"] == 10_000 and data["next_page_token"] == ""
        assert data["products"][-1]["skus"][1] == {
            "id": "gs199999",
            "seller_sku": "SKU-0199999",
            "inventory": [{"warehouse_id": "7000", "quantity": 4}],
        }
        edit = {"shop": "ROW_abc", "seller_sku": "SKU-0199999", "warehouse_id": "7000", "quantity": 77}
        async with httpx.AsyncClient(base_url=sb.url) as admin:
            assert (await admin.post("/_sandbox/listing", json=edit)).json()["skus"] == ["gs199999"]
        outcome = await channel.push("gp99998", [SlotUpdate("gp99998", "gs199996", "7000", 9)])
        assert outcome[0].ok and shop.skus["gs199996"].inventory["7000"] == 9
        assert shop.skus["gs199999"].inventory["7000"] == 77
        await channel.aclose()


def test_generated_sources_line_up_with_generated_listings() -> None:
    raw = load_config(CONFIG).model_dump(by_alias=True)
    raw["shopify"][0]["generate"] = {"items": 3, "available": 5}
    raw["erp"][0]["generate"] = {"items": 2, "sku": "SKU-{:07d}", "locations": ["jkt", "sby"], "available": 1}
    state = SandboxThread(raw)
    with state as sb:
        snap = httpx.get(f"{sb.url}/_sandbox/state").json()
    skus = [i["sku"] for i in snap["shopify"]["main"]["items"]]
    assert skus == ["A-1", "SKU-0000000", "SKU-0000001", "SKU-0000002"]
    assert snap["shopify"]["main"]["items"][3]["levels"] == {LOC: 5}
    assert len(snap["erp"]["wms"]["items"]) == 1 + 4
    with pytest.raises(ConfigError, match=r"generate\.sku: .*not a format string"):
        load_config(raw | {"erp": [{"name": "x", "generate": {"items": 1, "sku": "S-{name}"}}]})


def test_a_client_gone_mid_request_is_neither_an_error_nor_counted(caplog: pytest.LogCaptureFixture) -> None:
    app = load_config(CONFIG).tiktok
    assert app is not None
    with SandboxThread(CONFIG) as sb:
        host, port = sb.url.removeprefix("http://").split(":")
        query = f"app_key={app.app_key}&timestamp={int(time.time())}"  # past the checks made before the body
        with socket.create_connection((host, int(port))) as conn:  # promise a body, send part, hang up
            conn.sendall(
                f"POST /product/202309/products/search?{query} HTTP/1.1\r\nHost: x\r\n"
                'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"page'.encode()
            )
        assert httpx.get(f"{sb.url}/_sandbox/state").status_code == 200  # the server has moved on
        assert httpx.get(f"{sb.url}/_sandbox/requests").json()["total"] == 0
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
