"""The sandbox as manifests/overlays/local runs it: examples/sandbox.yaml names loopback webhook URLs
(for `make run`); --deliver-webhooks-to sends them to the operator's Service, paths kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from aiohttp import web

from invsync.sandbox.config import ConfigError, load_config
from invsync.sandbox.server import redirect_webhooks, run_sandbox
from invsync.testing.cluster import REPO_ROOT, binary_dir

EXAMPLE = REPO_ROOT / "examples" / "sandbox.yaml"


def test_every_webhook_goes_to_the_origin_with_its_path_and_secret_kept() -> None:
    config = load_config(EXAMPLE)
    moved = redirect_webhooks(config, "http://invsync.invsync-system.svc:8081")
    assert moved.webhooks is not None and config.webhooks is not None
    assert moved.webhooks.url == "http://invsync.invsync-system.svc:8081/webhooks/invsync-demo/wms"
    assert moved.webhooks.secret == config.webhooks.secret
    [shop] = moved.shopify
    assert shop.webhook is not None
    assert shop.webhook.url == "http://invsync.invsync-system.svc:8081/webhooks/invsync-demo/shopify-main"
    assert [source.webhook for source in moved.erp] == [source.webhook for source in config.erp]


@pytest.mark.parametrize("origin", ["invsync:8081", "ftp://invsync:8081", "http://"])
def test_an_origin_that_is_not_http_is_refused_on_the_command_line(origin: str) -> None:
    with pytest.raises(ConfigError, match="--deliver-webhooks-to"):
        redirect_webhooks(load_config(EXAMPLE), origin)
    done = subprocess.run(
        [sys.executable, "-m", "invsync.sandbox", f"--config={EXAMPLE}", f"--deliver-webhooks-to={origin}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "--deliver-webhooks-to" in done.stderr


async def test_a_stock_change_is_delivered_to_the_origin() -> None:
    paths: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/webhooks/{ns}/{source}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        config = redirect_webhooks(load_config(EXAMPLE), origin)
        async with run_sandbox(config) as sandbox, httpx.AsyncClient(base_url=sandbox.url) as admin:
            change = {"source": "wms", "location": "wh1", "sku": "EB-A", "available": 40}
            report = (await admin.post("/_sandbox/stock", json=change)).json()
        assert report["webhook"] == {"url": f"{origin}/webhooks/invsync-demo/wms", "status": 202}
        assert paths == ["/webhooks/invsync-demo/wms"]
    finally:
        await runner.cleanup()


def test_the_local_overlay_points_every_example_endpoint_at_the_sandbox_service() -> None:
    """manifests/overlays/local/demo: each Store's and InventorySource's endpoint is examples/' own with
    the loopback sandbox replaced by the in-cluster one, path kept (a new example is not left behind)."""
    kubectl = str(binary_dir() / "kubectl")

    def endpoints(directory: Path) -> dict[tuple[str, str], str]:
        rendered = subprocess.run(
            [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=True, timeout=60
        ).stdout
        return {
            (doc["kind"], doc["metadata"]["name"]): doc["spec"]["endpoint"]
            for doc in yaml.safe_load_all(rendered)
            if doc and doc["kind"] in ("Store", "InventorySource")
        }

    examples = endpoints(REPO_ROOT / "examples")
    local = endpoints(REPO_ROOT / "manifests" / "overlays" / "local" / "demo")
    assert examples and set(local) == set(examples)
    for name, url in examples.items():
        assert url.startswith("http://127.0.0.1:18090")
        assert local[name] == url.replace(
            "http://127.0.0.1:18090", "http://invsync-sandbox.invsync-demo.svc:18090"
        )
