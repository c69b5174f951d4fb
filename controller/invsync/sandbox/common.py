"""What every platform fake of the sandbox shares: app keys, the request counter, JSON answers and
opaque offset cursors."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from .state import SandboxState

log = logging.getLogger("invsync.sandbox")

STATE_KEY = web.AppKey("state", SandboxState)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
LABEL_KEY = web.RequestKey("label", tuple[str, str])  # platform, operation: what count_requests counts
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Fake(Protocol):
    """One platform's fake: built from the shared state, it adds its routes to the app."""

    def __init__(self, state: SandboxState) -> None: ...

    def routes(self) -> list[web.RouteDef]: ...


def cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def offset_of(token: str) -> int | None:
    """Offset of an opaque cursor, or None if the cursor is not one the sandbox issued."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    match = re.fullmatch(r"o:([0-9]+)", text)
    return int(match.group(1)) if match else None


def label(request: web.Request, platform: str, operation: str) -> None:
    request[LABEL_KEY] = (platform, operation)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every platform request by platform, operation and the HTTP status it got."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    except ConnectionResetError:
        # the client went away mid-request (e.g. an operator stopped): nothing was answered, nothing counted
        log.debug("%s: client disconnected", request.path)
        raise web.HTTPBadRequest(reason="client disconnected") from None
    label = request.get(LABEL_KEY)
    if label is not None:
        request.app[STATE_KEY].requests[(*label, str(response.status))] += 1
        log.debug("%s %s %s -> %d", *label, request.path, response.status)
    if isinstance(response, web.HTTPException):
        raise response
    return response


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )
