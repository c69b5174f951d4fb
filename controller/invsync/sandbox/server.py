"""The sandbox HTTP server: one fake per platform (a module each, mirroring providers/), assembled here.

The fakes hold the contracts the real platforms publish (signatures, tokens, timestamps, paging,
envelopes, error codes, limits), so every test, benchmark and demo runs the real client code over HTTP.
Adding a platform: a module with its fake and one line in FAKES.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import threading
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .admin import AdminApi
from .common import SESSION_KEY, STATE_KEY, Fake, count_requests
from .config import ConfigError, SandboxConfig, Webhook, load_config
from .erp import ErpFake
from .lazada import LazadaFake
from .shopee import ShopeeFake
from .shopify import ShopifyFake
from .state import SandboxState
from .tiktok import TikTokFake

__all__ = ["FAKES", "Sandbox", "SandboxThread", "build_app", "main", "run_sandbox"]

FAKES: tuple[type[Fake], ...] = (TikTokFake, ShopeeFake, LazadaFake, ShopifyFake, ErpFake, AdminApi)


def build_app(state: SandboxState) -> web.Application:
    app = web.Application(middlewares=[count_requests], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state
    for fake in FAKES:
        app.router.add_routes(fake(state).routes())

    async def session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            app[SESSION_KEY] = client
            yield

    app.cleanup_ctx.append(session)
    return app


@dataclass(frozen=True, slots=True)
class Sandbox:
    url: str  # http://host:port, no trailing slash
    state: SandboxState


@asynccontextmanager
async def run_sandbox(
    config: SandboxConfig | dict[str, Any] | str | Path, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[Sandbox]:
    """Serve the sandbox in the running event loop for the duration of the block."""
    cfg = config if isinstance(config, SandboxConfig) else load_config(config)
    state = SandboxState(cfg)
    runner = web.AppRunner(build_app(state), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(512)
        sock.setblocking(False)
        await web.SockSite(runner, sock).start()
        bound = sock.getsockname()[1]
        yield Sandbox(f"http://{f'[{host}]' if ':' in host else host}:{bound}", state)
    finally:
        await runner.cleanup()
        sock.close()


class SandboxThread:
    """The sandbox on its own event loop in a background thread, for synchronous callers."""

    def __init__(
        self, config: SandboxConfig | dict[str, Any] | str | Path, host: str = "127.0.0.1", port: int = 0
    ):
        # validated here, so a bad config raises ConfigError in the caller's thread
        self._args = (config if isinstance(config, SandboxConfig) else load_config(config), host, port)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="invsync-sandbox", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.sandbox: Sandbox | None = None

    def _run(self) -> None:
        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with run_sandbox(*self._args) as sandbox:
                self.sandbox = sandbox
                self._ready.set()
                await self._stop.wait()

        try:
            asyncio.run(serve())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> Sandbox:
        self._thread.start()
        self._ready.wait()
        if self.sandbox is None:
            raise RuntimeError(f"sandbox failed to start: {self._error}") from self._error
        return self.sandbox

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _serve(config: SandboxConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_sandbox(config, host, port) as sandbox:
        print(f"invsync sandbox listening on {sandbox.url} (admin: {sandbox.url}/_sandbox/state)", flush=True)
        await stop.wait()


def parser(prog: str = "invsync sandbox") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Serve TikTok Shop, Shopee, Shopify and ERP fakes on loopback."
    )
    p.add_argument("--config", required=True, help="sandbox YAML (docs/platforms.md)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    p.add_argument(
        "--deliver-webhooks-to",
        metavar="ORIGIN",
        help="send every webhook to this scheme://host:port, keeping the config's paths (a sandbox in a "
        "cluster reaches the operator through its Service, not the loopback)",
    )
    return p


def redirect_webhooks(config: SandboxConfig, origin: str) -> SandboxConfig:
    """``config`` with the scheme and host of every webhook URL replaced by ``origin``."""
    target = urllib.parse.urlsplit(origin)
    if target.scheme not in ("http", "https") or not target.netloc:
        raise ConfigError(f"--deliver-webhooks-to: {origin!r} is not an http(s)://host:port origin")

    def moved(hook: Webhook | None) -> Webhook | None:
        if hook is None:
            return None
        url = urllib.parse.urlsplit(hook.url)._replace(scheme=target.scheme, netloc=target.netloc)
        return hook.model_copy(update={"url": urllib.parse.urlunsplit(url)})

    return config.model_copy(
        update={
            "webhooks": moved(config.webhooks),
            "shopify": [shop.model_copy(update={"webhook": moved(shop.webhook)}) for shop in config.shopify],
            "erp": [source.model_copy(update={"webhook": moved(source.webhook)}) for source in config.erp],
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``invsync sandbox``: serve until interrupted; bad config exits 2 with one line on stderr."""
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config)
        if args.deliver_webhooks_to:
            config = redirect_webhooks(config, args.deliver_webhooks_to)
    except ConfigError as exc:
        print(f"invsync sandbox: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(_serve(config, args.host, args.port))
    except OSError as exc:
        print(f"invsync sandbox: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0
