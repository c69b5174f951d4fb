"""The operator's webhook and metrics endpoints over real loopback HTTP (aiohttp's test server)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from invsync.api import InventorySource
from invsync.engine.records import StockRecord
from invsync.operator.http import MAX_WEBHOOK_BODY, Reachability, metrics_app, serve, webhook_app
from invsync.operator.kube import Kube
from invsync.providers.webhooks import generic_headers


def source(webhook: bool = True, provider: str = "http") -> InventorySource:
    spec: dict[str, object] = {"provider": provider, "endpoint": "http://wms.test"}
    if provider == "shopify":
        spec["credentialsSecretRef"] = {"name": "shop-creds"}
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
        self.secret_reads = 0

    def source(self, namespace: str, name: str) -> InventorySource | None:
        return self.sources.get(name) if namespace == "shop" else None

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.secret_reads += 1
        return self.secrets.get(name)

    def webhook(self, namespace: str, source: str, rows: list[StockRecord]) -> int:
        self.delivered.append((namespace, source, rows))
        return 1


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, Sink]]:  # type: ignore[type-arg]
    sink = Sink(
        {"wms": source(), "plain": source(webhook=False), "shop": source(provider="shopify")},
        {"hook": {"secret": "s3cret"}, "shop-creds": {"access_token": "shpat_x"}},
    )
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


@pytest.mark.parametrize(
    ("path", "header"),
    [("/webhooks/shop/wms", "X-Invsync-Signature"), ("/webhooks/shop/shop", "X-Shopify-Hmac-Sha256")],
)
async def test_unsigned_delivery_is_refused_before_any_secret_is_read(
    client: tuple[TestClient, Sink], path: str, header: str
) -> None:  # type: ignore[type-arg]
    """Every unsigned request cost two Secret GETs on the API server (issue 14)."""
    c, sink = client
    response = await c.post(path, data=BODY, headers={"Content-Type": "application/json"})
    assert response.status == 401
    assert header in (await response.json())["error"]
    assert sink.secret_reads == 0 and sink.delivered == []


async def _raw(port: int, request: bytes) -> bytes:
    """Send `request` bytes as they are (non-ASCII headers included) and read the whole answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.fixture
async def server() -> AsyncIterator[tuple[int, Sink]]:
    """The webhook app served as `invsync run` serves it, with short header and body timeouts."""
    sink = Sink({"wms": source(), "shop": source(provider="shopify")}, {"hook": {"secret": "s3cret"}})
    servers = await serve({0: webhook_app(sink, body_timeout=0.5)}, "127.0.0.1", header_timeout=0.5)
    port = servers.runners[0].addresses[0][1]
    yield port, sink
    await servers.stop()


@pytest.mark.parametrize(
    ("path", "header"),
    [("/webhooks/shop/wms", b"X-Invsync-Signature"), ("/webhooks/shop/shop", b"X-Shopify-Hmac-Sha256")],
)
async def test_non_ascii_signature_is_401_not_500(server: tuple[int, Sink], path: str, header: bytes) -> None:
    port, sink = server
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len(BODY)}\r\n".encode()
        + header
        + ": sha256=\u00e9\u00e9\u00e9".encode()
        + b"\r\nX-Invsync-Timestamp: 1\r\n\r\n"
        + BODY
    )
    answer = await _raw(port, request)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"not ASCII" in answer and b"Traceback" not in answer
    assert sink.secret_reads == 0


async def test_connections_that_never_finish_their_headers_are_closed(server: tuple[int, Sink]) -> None:
    """1,100 connections that never finished their headers took the operator down (issue 14)."""
    port, sink = server
    slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    for _, writer in slow:
        writer.write(b"POST /webhooks/shop/wms HTTP/1.1\r\nHost: x\r\nX-Invsync-Sig")  # never finished
        await writer.drain()
    for reader, writer in slow:
        assert await reader.read() == b"", "the server closes the connection without an answer"
        writer.close()
    # meanwhile, and afterwards, a complete request is answered
    signed = generic_headers(BODY, "s3cret")
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    answer = await _raw(
        port,
        f"POST /webhooks/shop/wms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Length: {len(BODY)}\r\n{head}\r\n".encode()
        + BODY,
    )
    assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
    assert len(sink.delivered) == 1


async def test_a_body_that_never_arrives_is_408(server: tuple[int, Sink]) -> None:
    port, sink = server
    signed = generic_headers(BODY, "s3cret")
    head = "".join(f"{k}: {v}\r\n" for k, v in signed.items())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /webhooks/shop/wms HTTP/1.1\r\nHost: x\r\nContent-Length: {len(BODY)}\r\n{head}\r\n".encode()
        + BODY[:5]
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert sink.delivered == [] and sink.secret_reads == 0


async def test_readyz_follows_the_api_server(kubeconfig: Path) -> None:
    """/readyz is 503 while the API server cannot be reached (it said 200 while webhooks got 500);
    checked against the session's real API server, then one that accepts connections and never answers."""
    import kubernetes

    live = Kube(kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # connections are accepted by the kernel, never answered
        dead = Kube(kubernetes_config(f"https://127.0.0.1:{hung.getsockname()[1]}"))  # type: ignore[arg-type]
        checks = {"live": 0, "dead": 0}

        def probe(kube: Kube, name: str) -> Reachability:
            async def check() -> bool:
                checks[name] += 1
                return await kube.reachable(timeout=0.5)

            return Reachability(check, ttl=3600)

        async with TestClient(TestServer(metrics_app(lambda: True, probe(live, "live")))) as c:
            assert (await c.get("/readyz")).status == 200
            assert (await c.get("/readyz")).status == 200
        async with TestClient(TestServer(metrics_app(lambda: True, probe(dead, "dead")))) as c:
            response = await c.get("/readyz")
            assert response.status == 503 and "API server unreachable" in await response.text()
            assert (await c.get("/readyz")).status == 503
    assert checks == {"live": 1, "dead": 1}, "probes are cached: one API call per ttl"


async def test_a_delivery_while_the_api_server_hangs_is_503_not_500() -> None:
    """With the API server down, webhooks got 500 (issue 14): a signed delivery whose Secret cannot be
    read now is a 503 the sender retries, after a bounded wait."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        dead = Kube(kubernetes_config(f"https://127.0.0.1:{hung.getsockname()[1]}"))  # type: ignore[arg-type]

        class Unreachable(Sink):
            async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
                self.secret_reads += 1
                return await dead.read_secret(namespace, name, timeout=0.5)

        sink = Unreachable({"wms": source()}, {})
        async with TestClient(TestServer(webhook_app(sink))) as c:
            response = await c.post("/webhooks/shop/wms", data=BODY, headers=generic_headers(BODY, "s3cret"))
            assert response.status == 503
            assert "cannot be read now" in (await response.json())["error"]
    assert sink.secret_reads == 1 and sink.delivered == []


def kubernetes_config(host: str) -> object:
    """An API client for `host`, TLS unverified (the far end never answers anyway)."""
    import kubernetes

    config = kubernetes.client.Configuration()
    config.host, config.verify_ssl = host, False
    return kubernetes.client.ApiClient(config)
