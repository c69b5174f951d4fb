"""The operator's webhook and metrics endpoints over real loopback HTTP (aiohttp's test server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp.test_utils import TestClient, TestServer

from invsync.api import InventorySource
from invsync.engine.records import StockRecord
from invsync.operator.http import MAX_WEBHOOK_BODY, metrics_app, webhook_app
from invsync.providers.webhooks import generic_headers


def source(webhook: bool = True) -> InventorySource:
    spec: dict[str, object] = {"provider": "http", "endpoint": "http://wms.test"}
    if webhook:
        spec["webhook"] = {"secretRef": {"name": "hook"}}
    return InventorySource.model_validate(
        {"apiVersion": "invsync.dev/v1alpha1", "kind": "InventorySource",
         "metadata": {"name": "wms", "namespace": "shop"}, "spec": spec}
    )  # fmt: skip


class Sink:
    def __init__(self, sources: Mapping[str, InventorySource], secrets: Mapping[str, Mapping[str, str]]):
        self.sources, self.secrets = sources, secrets
        self.delivered: list[tuple[str, str, list[StockRecord]]] = []

    def source(self, namespace: str, name: str) -> InventorySource | None:
        return self.sources.get(name) if namespace == "shop" else None

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return self.secrets.get(name)

    def webhook(self, namespace: str, source: str, rows: list[StockRecord]) -> int:
        self.delivered.append((namespace, source, rows))
        return 1


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, Sink]]:  # type: ignore[type-arg]
    sink = Sink({"wms": source(), "plain": source(webhook=False)}, {"hook": {"secret": "s3cret"}})
    async with TestClient(TestServer(webhook_app(sink))) as c:
        yield c, sink


BODY = json.dumps({"items": [{"sku": "A-1", "location": "jkt", "available": 7}]}).encode()


async def test_signed_delivery_reaches_the_rules(client: tuple[TestClient, Sink]) -> None:  # type: ignore[type-arg]
    c, sink = client
    response = await c.post("/webhooks/shop/wms", data=BODY, headers=generic_headers(BODY, "s3cret"))
    assert response.status == 202
    assert await response.json() == {"accepted": 1, "rules": 1}
    assert sink.delivered == [("shop", "wms", [StockRecord("wms", "jkt", "A-1", 7)])]


async def test_wrong_signature_is_refused(client: tuple[TestClient, Sink]) -> None:  # type: ignore[type-arg]
    c, sink = client
    response = await c.post("/webhooks/shop/wms", data=BODY, headers=generic_headers(BODY, "guess"))
    assert response.status == 401
    assert sink.delivered == []


@pytest.mark.parametrize("path", ["/webhooks/shop/nope", "/webhooks/other/wms", "/webhooks/shop/plain"])
async def test_unknown_source_or_one_without_webhooks_is_404(
    client: tuple[TestClient, Sink], path: str
) -> None:  # type: ignore[type-arg]
    c, _ = client
    response = await c.post(path, data=BODY, headers=generic_headers(BODY, "s3cret"))
    assert response.status == 404


async def test_bodies_over_one_mebibyte_are_413(client: tuple[TestClient, Sink]) -> None:  # type: ignore[type-arg]
    c, sink = client
    big = b"x" * (MAX_WEBHOOK_BODY + 1)
    response = await c.post("/webhooks/shop/wms", data=big, headers=generic_headers(big, "s3cret"))
    assert response.status == 413
    assert sink.delivered == []


async def test_metrics_and_probes() -> None:
    ready = False
    async with TestClient(TestServer(metrics_app(lambda: ready))) as c:
        assert (await c.get("/healthz")).status == 200
        assert (await c.get("/readyz")).status == 503
        ready = True
        assert (await c.get("/readyz")).status == 200
        text = await (await c.get("/metrics")).text()
        assert "# TYPE invsync_listings gauge" in text
