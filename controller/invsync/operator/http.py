"""The operator's HTTP side: source webhooks on one port, /metrics and probes on another."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp import web

from ..api import InventorySource
from ..engine.records import StockRecord
from ..metrics import metrics_handler
from ..providers import build_source
from ..providers.base import ProviderError, WebhookRejectedError
from ..providers.webhooks import check_signature_header

log = logging.getLogger("invsync.operator.http")

MAX_WEBHOOK_BODY = 1024 * 1024
# A connection must finish its headers, and a request its body, this soon: connections that never do
# held one file descriptor each, and 1,100 of them took the operator down (docs/security.md).
HEADER_TIMEOUT = 10.0
BODY_TIMEOUT = 30.0
LINGER = 1.0  # reading (and dropping) the rest of a body left unread after the answer; aiohttp: 10s


class WebhookSink(Protocol):
    """What the webhook endpoint needs from the operator."""

    def source(self, namespace: str, name: str) -> InventorySource | None: ...

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None: ...

    def webhook(self, namespace: str, source: str, rows: list[StockRecord]) -> int: ...


FORWARDED = "X-Invsync-Forwarded"  # a delivery relayed by another shard: never relayed again
_RELAYED_HEADERS = ("Content-Type", "X-Invsync-Signature", "X-Invsync-Timestamp")


def webhook_app(
    sink: WebhookSink,
    peers: Callable[[], Sequence[str]] = tuple,
    body_timeout: float = BODY_TIMEOUT,
) -> web.Application:
    """POST /webhooks/{namespace}/{source}: verify with the source's webhook Secret (key `secret`),
    then hand the rows to the rules that read that source.

    A source sends each delivery to one replica, but the rules reading it may live on other shards:
    a delivery this replica could verify is relayed, unchanged (so each peer verifies it again), to
    `peers()` (the other replicas' webhook base URLs as last discovered, docs/operations.md, "Sharding")."""
    relays: set[asyncio.Task[None]] = set()

    async def relay(path: str, headers: Mapping[str, str], body: bytes, targets: Sequence[str]) -> None:
        keep = {
            k: v for k, v in headers.items() if k in _RELAYED_HEADERS or k.lower().startswith("x-shopify-")
        }
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            for peer in targets:
                try:
                    async with session.post(
                        f"{peer.rstrip('/')}{path}", data=body, headers={**keep, FORWARDED: "1"}
                    ):
                        pass
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("webhook relay to %s failed: %s", peer, type(exc).__name__)

    async def receive(request: web.Request) -> web.Response:
        response = await handle(request)
        targets = list(peers())
        if targets and response.status in (202, 422) and FORWARDED not in request.headers:
            body = await request.read()
            task = asyncio.create_task(relay(request.path, request.headers, body, targets))
            relays.add(task)
            task.add_done_callback(relays.discard)
            if response.status == 422:  # verified, but only a shard that read the item can map it
                return web.json_response({"accepted": 0, "rules": 0, "relayed": len(targets)}, status=202)
        return response

    async def handle(request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["source"]
        source = sink.source(namespace, name)
        if source is None:
            return web.json_response({"error": f"InventorySource {namespace}/{name} not found"}, status=404)
        if source.spec.webhook is None:
            return web.json_response(
                {"error": f"InventorySource {namespace}/{name} has no spec.webhook"}, status=404
            )
        try:
            check_signature_header(source.spec.provider, request.headers)
        except WebhookRejectedError as exc:  # before any Secret is read
            return web.json_response({"error": str(exc)}, status=exc.status)
        try:
            async with asyncio.timeout(body_timeout):
                body = await request.read()  # client_max_size answers 413 above the limit
        except TimeoutError:
            return web.json_response({"error": f"body not received within {body_timeout:g}s"}, status=408)
        secret_name = source.spec.webhook.secret_ref.name
        try:
            secret = await sink.read_secret(namespace, secret_name)
            creds = None
            if source.spec.credentials_secret_ref is not None:
                creds = await sink.read_secret(namespace, source.spec.credentials_secret_ref.name)
        except Exception as exc:  # the API server down or hung: the sender retries a 503, not a 500
            log.warning("webhook for %s/%s: Secrets unreadable (%s)", namespace, name, type(exc).__name__)
            return web.json_response(
                {"error": f"Secret {secret_name} of InventorySource {name} cannot be read now; retry later"},
                status=503,
            )
        if secret is None or not secret.get("secret"):
            log.warning(
                "webhook for %s/%s: Secret %s or its key `secret` is missing", namespace, name, secret_name
            )
            return web.json_response(
                {"error": f"Secret {secret_name} (key `secret`) of InventorySource {name} not found"},
                status=503,
            )
        try:
            provider = build_source(source, creds)
        except ProviderError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        try:
            rows = provider.parse_webhook(request.headers, body, secret["secret"])
        except WebhookRejectedError as exc:
            log.warning("webhook for %s/%s rejected: %s", namespace, name, exc)
            return web.json_response({"error": str(exc)}, status=exc.status)
        finally:
            await provider.aclose()
        rules = sink.webhook(namespace, name, rows)
        return web.json_response({"accepted": len(rows), "rules": rules}, status=202)

    app = web.Application(client_max_size=MAX_WEBHOOK_BODY)
    app.router.add_post("/webhooks/{namespace}/{source}", receive)
    return app


class Reachability:
    """Whether the API server answered lately, for /readyz (it said 200 while webhooks answered 500):
    one cheap check at most every `ttl` seconds, each bounded by its own timeout, so probes cost the
    API server one request per `ttl` and never wait on a hung one."""

    def __init__(self, check: Callable[[], Awaitable[bool]], ttl: float = 5.0) -> None:
        self._check, self._ttl = check, ttl
        self._ok: bool | None = None
        self._stamp = -math.inf
        self._running: asyncio.Task[bool] | None = None

    async def __call__(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._running is None and loop.time() - self._stamp >= self._ttl:
            self._running = asyncio.create_task(self._refresh())
        if self._ok is None and self._running is not None:  # the first answer is waited for
            return await asyncio.shield(self._running)
        return bool(self._ok)

    async def _refresh(self) -> bool:
        try:
            ok = await self._check()
        except Exception:  # any failure to answer is "not reachable"
            ok = False
        if ok != self._ok and self._ok is not None:
            log.warning("API server %s", "reachable again" if ok else "unreachable: /readyz answers 503")
        self._ok, self._stamp, self._running = ok, asyncio.get_running_loop().time(), None
        return ok


def metrics_app(
    ready: Callable[[], bool],
    api_server: Callable[[], Awaitable[bool]] | None = None,
    shard: Callable[[], Mapping[str, object]] | None = None,
) -> web.Application:
    """/metrics, /healthz and /readyz (ready: kopf started and, with `api_server`, it answers), and
    /shard: this replica's shard, peers and the rules it acts on (docs/operations.md, "Sharding")."""

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if not ready():
            return web.Response(text="starting\n", status=503)
        if api_server is not None and not await api_server():
            return web.Response(text="API server unreachable\n", status=503)
        return web.Response(text="ok\n")

    async def shard_view(_: web.Request) -> web.Response:
        return web.json_response(shard() if shard is not None else {})

    app = web.Application()
    app.router.add_get("/shard", shard_view)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@dataclass
class Servers:
    runners: list[web.AppRunner]

    async def stop(self) -> None:
        for runner in self.runners:
            await runner.cleanup()


async def serve(
    apps: Mapping[int, web.Application], host: str = "0.0.0.0", header_timeout: float = HEADER_TIMEOUT
) -> Servers:
    """Start each app on its port (one app per port). A connection that has not sent a complete
    request within `header_timeout` of opening (or of its previous response) is closed: aiohttp's
    keep-alive timer starts when a connection opens and is not reset by partial headers."""
    runners = []
    for port, app in apps.items():
        runner = web.AppRunner(
            app, access_log=None, keepalive_timeout=header_timeout, lingering_time=min(LINGER, header_timeout)
        )
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    return Servers(runners)
