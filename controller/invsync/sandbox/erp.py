"""The generic HTTP inventory source fake (docs/platforms.md, "Generic HTTP source")."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .common import cursor, json_response, label, offset_of
from .state import ErpSrc, SandboxState

ERP_MAX_LIMIT = 1000


class ErpFake:
    """The generic source's inventory endpoint, plus the optional locations listing."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/erp/{name}/v1/inventory", self.inventory),
            web.get("/erp/{name}/v1/locations", self.locations),
        ]

    def _source(self, request: web.Request, operation: str) -> ErpSrc | web.Response:
        name = request.match_info["name"]
        label(request, "http", operation)
        src = self.state.erp.get(name)
        if src is None:
            return json_response({"error": f"no source {name}"}, 404)
        if src.token and request.headers.get("Authorization") != f"Bearer {src.token}":
            return json_response({"error": "missing or wrong bearer token"}, 401)
        return src

    async def _fault(self, src: ErpSrc, operation: str, continuation: bool) -> web.Response | None:
        effect = self.state.effect("http", operation, src.name, continuation)
        if effect is None:
            return None
        await asyncio.sleep(effect.latency)
        if effect.empty and operation == "inventory":
            return json_response({"items": [], "nextCursor": None})
        if not effect.status:
            return None
        headers = {"Retry-After": f"{effect.retry_after:g}"} if effect.retry_after is not None else None
        return json_response({"error": "injected fault"}, effect.status, headers)

    async def locations(self, request: web.Request) -> web.Response:
        src = self._source(request, "locations")
        if isinstance(src, web.Response):
            return src
        return await self._fault(src, "locations", False) or json_response(
            {"locations": [{"id": loc, "name": loc, "active": True} for loc in src.by_location]}
        )

    async def inventory(self, request: web.Request) -> web.Response:
        src = self._source(request, "inventory")
        if isinstance(src, web.Response):
            return src
        q = request.query
        token = q.get("cursor", "")
        fault = await self._fault(src, "inventory", bool(token))
        if fault is not None:
            return fault
        location = q.get("location", "")
        offset = offset_of(token)
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = 0
        if not location or offset is None or not 1 <= limit <= ERP_MAX_LIMIT:
            return json_response(
                {"error": f"need location, a cursor we issued and 1 <= limit <= {ERP_MAX_LIMIT}"}, 400
            )
        keys = src.by_location.get(location, [])
        chunk = keys[offset : offset + limit]
        end = offset + len(chunk)
        self.state.read_pages["http"] += 1
        return json_response(
            {
                "items": [src.rows[k].model_dump(by_alias=True) for k in chunk],
                "nextCursor": cursor(end) if end < len(keys) else None,
            }
        )
