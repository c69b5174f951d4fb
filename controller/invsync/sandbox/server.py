"""The sandbox HTTP server: TikTok Shop, Shopify Admin GraphQL and the generic HTTP source on loopback.

It holds the same contracts the real clients speak (signatures, tokens, timestamps, paging, envelopes,
error codes, rate limits), so every test, benchmark and demo runs the real client code over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import logging
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..providers import shopify as sh
from ..providers import tiktok as tt
from ..providers.webhooks import (
    SHOPIFY_HMAC_HEADER,
    SHOPIFY_INVENTORY_TOPIC,
    SHOPIFY_TOPIC_HEADER,
    generic_headers,
    sign_shopify,
)
from .config import ConfigError, ErpItem, SandboxConfig, Webhook, load_config
from .state import ErpSrc, Fault, SandboxState, ShShop, TtShop

log = logging.getLogger("invsync.sandbox")

TIMESTAMP_WINDOW = 300
MAX_QUANTITY = 99999
ERP_MAX_LIMIT = 1000
# Sandbox-chosen TikTok codes for request problems (TikTok's real ones are not all public).
CODE_BAD_PARAM = 36009004
CODE_PRODUCT_NOT_FOUND = 12052013
CODE_SKU_NOT_FOUND = 12052217
CODE_QUANTITY_INVALID = 12052048
CODE_WAREHOUSE_INVALID = 12052230
CODE_REFRESH_INVALID = 36004013

STATE_KEY = web.AppKey("state", SandboxState)
SESSION_KEY = web.AppKey("session", aiohttp.ClientSession)
LABEL_KEY = web.RequestKey("label", tuple[str, str])  # platform, operation: what _count counts
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _offset(cursor: str) -> int | None:
    """Offset of an opaque cursor, or None if the cursor is not one the sandbox issued."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    match = re.fullmatch(r"o:([0-9]+)", text)
    return int(match.group(1)) if match else None


def _label(request: web.Request, platform: str, operation: str) -> None:
    request[LABEL_KEY] = (platform, operation)


@web.middleware
async def _count(request: web.Request, handler: Handler) -> web.StreamResponse:
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


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(
        data, status=status, headers=headers, dumps=lambda o: json.dumps(o, separators=(",", ":"))
    )


# --------------------------------------------------------------------------- TikTok Shop


class TikTokApi:
    """TikTok Shop Open API 202309: verification, envelopes and the inventory endpoints."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def envelope(
        self, data: Any = None, code: int = 0, message: str = "Success", status: int = 200
    ) -> web.Response:
        body = {"code": code, "message": message, "request_id": self.state.request_id(), "data": data}
        return _json(body, status)

    async def guard(
        self, request: web.Request, operation: str, continuation: bool = False
    ) -> TtShop | web.Response:
        """Verify app_key, timestamp, signature and token, then rate limit and faults."""
        cfg = self.state.config.tiktok
        q = request.query
        shop = self.state.tiktok.get(q.get("shop_cipher", ""))
        _label(request, "tiktok", operation)
        if cfg is None:
            return self.envelope(None, tt.CODE_SIGN_INVALID, "no TikTok app is configured", 401)
        if q.get("app_key") != cfg.app_key:
            return self.envelope(None, tt.CODE_SIGN_INVALID, "Invalid credentials. Unknown app_key.", 401)
        try:
            skew = abs(time.time() - int(q.get("timestamp", "")))
        except ValueError:
            skew = float("inf")
        if skew > TIMESTAMP_WINDOW:
            return self.envelope(
                None, tt.CODE_TIMESTAMP_INVALID, "The 'timestamp' query parameter is missing or expired.", 401
            )
        body = await request.read()
        expected = tt.sign(cfg.app_secret, request.path, dict(q), body)
        if q.get("sign", "") != expected:
            return self.envelope(
                None, tt.CODE_SIGN_INVALID, "Invalid credentials. The 'sign' query parameter is invalid.", 401
            )
        if shop is None:
            return self.envelope(None, CODE_BAD_PARAM, "The 'shop_cipher' query parameter is invalid.", 400)
        token = request.headers.get("x-tts-access-token", "")
        if token != shop.access_token and token not in shop.stale_tokens:
            return self.envelope(
                None, tt.CODE_TOKEN_INVALID, "Invalid credentials. The access token is invalid.", 401
            )
        if shop.expired or token in shop.stale_tokens:
            return self.envelope(
                None, tt.CODE_TOKEN_EXPIRED, "access token is expired, please refresh it", 401
            )
        if not shop.limiter.take():
            return self.envelope(None, tt.CODE_RATE_LIMITED, "Too many requests.", 429)
        effect = self.state.effect("tiktok", operation, shop.cipher, continuation)
        if effect is not None:
            if effect.latency:
                await asyncio.sleep(effect.latency)
            if effect.status:
                code = (
                    effect.code
                    if effect.code is not None
                    else (tt.CODE_RATE_LIMITED if effect.status == 429 else 1)
                )
                response = self.envelope(None, code, f"injected fault (HTTP {effect.status})", effect.status)
                if effect.retry_after is not None:
                    response.headers["Retry-After"] = f"{effect.retry_after:g}"
                return response
        return shop

    async def warehouses(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "warehouses")
        if isinstance(shop, web.Response):
            return shop
        return self.envelope({"warehouses": [w.model_dump() for w in shop.warehouses.values()]})

    async def products_search(self, request: web.Request) -> web.Response:
        token = request.query.get("page_token", "")
        shop = await self.guard(request, "products_search", continuation=bool(token))
        if isinstance(shop, web.Response):
            return shop
        try:
            size = int(request.query.get("page_size", ""))
        except ValueError:
            size = 0
        if not 1 <= size <= 100:
            return self.envelope(None, CODE_BAD_PARAM, "page_size must be between 1 and 100", 400)
        offset = _offset(token)
        if offset is None:
            return self.envelope(None, CODE_BAD_PARAM, "The 'page_token' query parameter is invalid.", 400)
        try:
            body = await request.json() if await request.read() else {}
        except ValueError:
            return self.envelope(None, CODE_BAD_PARAM, "The request body is not JSON.", 400)
        if not isinstance(body, dict):
            return self.envelope(None, CODE_BAD_PARAM, "The request body must be a JSON object.", 400)
        wanted = body.get("seller_skus")
        if wanted is None:
            order: Sequence[str] = shop.order
        elif isinstance(wanted, list) and len(wanted) <= 100 and all(isinstance(w, str) for w in wanted):
            # through the seller-SKU index: a filtered search costs what it returns, not the catalogue
            matched = {sku.product_id for w in wanted for sku in shop.by_seller_sku.get(w, [])}
            order = sorted(matched, key=shop.position.__getitem__)
        else:
            return self.envelope(
                None, CODE_BAD_PARAM, "seller_skus must be a list of at most 100 strings.", 400
            )
        if offset > len(order):
            return self.envelope(None, CODE_BAD_PARAM, "The 'page_token' query parameter is invalid.", 400)
        self.state.read_pages["tiktok"] += 1
        ids = order[offset : offset + size]
        end = offset + len(ids)
        return self.envelope(
            {
                "products": [shop.products[pid].json() for pid in ids],
                "next_page_token": _cursor(end) if end < len(order) else "",
                "total_count": len(order),
            }
        )

    async def product_detail(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "product_detail")
        if isinstance(shop, web.Response):
            return shop
        product = shop.products.get(request.match_info["product_id"])
        if product is None:
            return self.envelope(None, CODE_PRODUCT_NOT_FOUND, "The product does not exist.", 200)
        return self.envelope(product.json())

    async def inventory_search(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "inventory_search")
        if isinstance(shop, web.Response):
            return shop
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not (body.get("product_ids") or body.get("sku_ids")):
            return self.envelope(None, CODE_BAD_PARAM, "Give product_ids or sku_ids.", 400)
        skus = [shop.skus[s] for s in body.get("sku_ids") or [] if s in shop.skus]
        for pid in body.get("product_ids") or []:
            skus += list(shop.products[pid].skus.values()) if pid in shop.products else []
        inventory: dict[str, list[dict[str, Any]]] = {}
        for sku in skus:
            inventory.setdefault(sku.product_id, []).append(
                {
                    "id": sku.id,
                    "seller_sku": sku.seller_sku,
                    "total_available_quantity": sum(sku.inventory.values()),
                    "warehouse_inventory": [
                        {"warehouse_id": w, "available_quantity": q} for w, q in sku.inventory.items()
                    ],
                }
            )
        return self.envelope({"inventory": [{"product_id": p, "skus": s} for p, s in inventory.items()]})

    async def inventory_update(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "inventory_update")
        if isinstance(shop, web.Response):
            return shop
        product = shop.products.get(request.match_info["product_id"])
        if product is None:
            return self.envelope(None, CODE_PRODUCT_NOT_FOUND, "The product does not exist.")
        try:
            skus = (await request.json())["skus"]
            updates = [
                (str(s["id"]), str(i["warehouse_id"]), i["quantity"]) for s in skus for i in s["inventory"]
            ]
        except (ValueError, KeyError, TypeError):
            return self.envelope(
                None,
                CODE_BAD_PARAM,
                "Body must be {skus: [{id, inventory: [{warehouse_id, quantity}]}]}.",
                400,
            )
        default = shop.default_warehouse
        if not shop.multi_warehouse and any(w != default for _, w, _ in updates):
            return self.envelope(
                None,
                tt.CODE_MULTI_WAREHOUSE_REFUSED,
                "Multi-warehouse inventory is not enabled for this shop; "
                "only the default warehouse can be set.",
            )
        errors: dict[str, dict[str, Any]] = {}
        valid: list[tuple[str, str, int]] = []
        for sku_id, warehouse, quantity in updates:
            if sku_id not in product.skus:
                code, message = CODE_SKU_NOT_FOUND, "The SKU does not belong to the product."
            elif not isinstance(quantity, int) or not 0 <= quantity <= MAX_QUANTITY:
                code, message = (
                    CODE_QUANTITY_INVALID,
                    f"quantity must be an integer between 0 and {MAX_QUANTITY}.",
                )
            elif warehouse not in shop.warehouses or shop.warehouses[warehouse].effect_status != "ENABLED":
                code, message = CODE_WAREHOUSE_INVALID, "The warehouse does not exist or is not enabled."
            else:
                valid.append((sku_id, warehouse, quantity))
                continue
            errors.setdefault(sku_id, {"code": code, "message": message, "detail": {"sku_id": sku_id}})
        applied = [(s, w, q) for s, w, q in valid if s not in errors]  # a SKU is updated whole or not at all
        for sku_id, warehouse, quantity in applied:
            product.skus[sku_id].inventory[warehouse] = quantity
        self.state.writes["requests"] += 1
        self.state.writes["slots"] += len(applied)
        return self.envelope({"errors": list(errors.values())} if errors else {})

    async def token_refresh(self, request: web.Request) -> web.Response:
        _label(request, "tiktok", "token_refresh")
        cfg = self.state.config.tiktok
        q = request.query
        if cfg is None or q.get("app_key") != cfg.app_key or q.get("app_secret") != cfg.app_secret:
            return self.envelope(None, tt.CODE_SIGN_INVALID, "Invalid app_key or app_secret.", 401)
        if q.get("grant_type") != "refresh_token":
            return self.envelope(None, CODE_BAD_PARAM, "grant_type must be refresh_token.", 400)
        refresh = q.get("refresh_token", "")
        shop = next((s for s in self.state.tiktok.values() if refresh and s.refresh_token == refresh), None)
        if shop is None:
            return self.envelope(None, CODE_REFRESH_INVALID, "The refresh token is invalid.", 401)
        shop.stale_tokens.add(shop.access_token)
        shop.access_token = f"TTP_{self.state.random.getrandbits(96):024x}"
        shop.expired = False
        now = int(time.time())
        return self.envelope(
            {
                "access_token": shop.access_token,
                "access_token_expire_in": now + 7 * 86400,
                "refresh_token": shop.refresh_token,
                "refresh_token_expire_in": now + 60 * 86400,
                "open_id": shop.cipher,
                "seller_name": shop.cipher,
                "granted_scopes": ["seller.product.basic", "seller.product.write", "seller.logistics"],
            }
        )


# --------------------------------------------------------------------------- Shopify


class _GraphQLBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str
    variables: dict[str, Any] = Field(default_factory=dict)


_ROOT = re.compile(r"^\s*query\s+\w*\s*(?:\([^)]*\))?\s*\{\s*(\w+)\s*\(", re.S)
_AVAILABLE = 'quantities(names: ["available"])'


class ShopifyApi:
    """The two Admin GraphQL queries the client sends, with Shopify's cost-based throttling."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    @staticmethod
    def _error(message: str, code: str, status: int = 200) -> web.Response:
        return _json({"errors": [{"message": message, "extensions": {"code": code}}]}, status)

    async def graphql(self, request: web.Request) -> web.Response:
        shop = self.state.shopify.get(request.match_info["shop"])
        _label(request, "shopify", "graphql")
        if shop is None:
            return _json({"errors": "Not Found"}, 404)
        if request.headers.get("X-Shopify-Access-Token") != shop.access_token:
            return _json(
                {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
                401,
            )
        try:
            body = _GraphQLBody.model_validate_json(await request.read())
        except ValidationError:
            return _json(
                {"errors": [{"message": "Body must be JSON with a query string and variables"}]}, 400
            )
        match = _ROOT.match(body.query)
        root = match.group(1) if match else ""
        if root not in ("locations", "location") or (root == "location" and _AVAILABLE not in body.query):
            return self._error(
                f"Field '{root or '?'}' doesn't exist on type 'QueryRoot' (the sandbox serves the "
                "locations and location.inventoryLevels queries of invsync's client)",
                "undefinedField",
            )
        first = body.variables.get("first")
        after = body.variables.get("after") or ""
        if not isinstance(first, int) or not 1 <= first <= 250:
            return self._error(
                "Variable $first must be an integer between 1 and 250", "argumentLiteralsIncompatible"
            )
        offset = _offset(after) if isinstance(after, str) else None
        if offset is None:
            return self._error(
                f"Invalid cursor for current pagination sort: {after}", "argumentLiteralsIncompatible"
            )
        effect = self.state.effect("shopify", "graphql", shop.shop, bool(after))
        if effect is not None:
            await asyncio.sleep(effect.latency)
            if effect.status:
                headers = (
                    {"Retry-After": f"{effect.retry_after:g}"} if effect.retry_after is not None else None
                )
                return _json(
                    {"errors": [{"message": "Internal error (injected fault)"}]}, effect.status, headers
                )
        # Shopify's cost model: 1 per object, 2 per connection, ``first`` times the cost of a node.
        per_node = 3 if root == "location" else 1
        requested = (3 if root == "location" else 2) + first * per_node
        if not shop.bucket.take(requested):
            return _json(
                {
                    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                    "extensions": {"cost": self._cost(shop, requested, 0)},
                }
            )
        if root == "locations":
            page = self._page(list(shop.locations.values()), offset, first)
            data: dict[str, Any] = {"locations": page}
        else:
            location = body.variables.get("location")
            items = shop.by_location.get(location, []) if isinstance(location, str) else []
            page = self._page(items, offset, first)
            page["nodes"] = [self._level(i, str(location)) for i in page["nodes"]]
            known = isinstance(location, str) and location in shop.locations
            data = {"location": {"inventoryLevels": page} if known else None}
            self.state.read_pages["shopify"] += 1
        actual = requested - first * per_node + len(page["nodes"]) * per_node
        shop.bucket.tokens = min(shop.bucket.capacity, shop.bucket.tokens + requested - actual)
        return _json({"data": data, "extensions": {"cost": self._cost(shop, requested, actual)}})

    @staticmethod
    def _page(nodes: Sequence[Any], offset: int, first: int) -> dict[str, Any]:
        chunk = list(nodes[offset : offset + first])
        return {
            "pageInfo": {
                "hasNextPage": offset + first < len(nodes),
                "endCursor": _cursor(offset + len(chunk)) if chunk else None,
            },
            "nodes": chunk,
        }

    @staticmethod
    def _level(item: Any, location: str) -> dict[str, Any]:
        return {
            "item": {
                "id": item.gid,
                "sku": item.sku,
                "tracked": item.tracked,
                "variant": {"inventoryPolicy": item.policy},
            },
            "quantities": [{"name": "available", "quantity": item.levels[location]}],
        }

    @staticmethod
    def _cost(shop: ShShop, requested: int, actual: int) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": shop.throttle.maximum_available,
                "currentlyAvailable": int(shop.bucket.refill()),
                "restoreRate": shop.throttle.restore_rate,
            },
        }


# --------------------------------------------------------------------------- generic HTTP source


class ErpApi:
    """SPEC section 7's inventory endpoint, plus the optional locations listing."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _source(self, request: web.Request, operation: str) -> ErpSrc | web.Response:
        name = request.match_info["name"]
        _label(request, "http", operation)
        src = self.state.erp.get(name)
        if src is None:
            return _json({"error": f"no source {name}"}, 404)
        if src.token and request.headers.get("Authorization") != f"Bearer {src.token}":
            return _json({"error": "missing or wrong bearer token"}, 401)
        return src

    async def _fault(self, src: ErpSrc, operation: str, continuation: bool) -> web.Response | None:
        effect = self.state.effect("http", operation, src.name, continuation)
        if effect is None:
            return None
        await asyncio.sleep(effect.latency)
        if effect.empty and operation == "inventory":
            return _json({"items": [], "nextCursor": None})
        if not effect.status:
            return None
        headers = {"Retry-After": f"{effect.retry_after:g}"} if effect.retry_after is not None else None
        return _json({"error": "injected fault"}, effect.status, headers)

    async def locations(self, request: web.Request) -> web.Response:
        src = self._source(request, "locations")
        if isinstance(src, web.Response):
            return src
        return await self._fault(src, "locations", False) or _json(
            {"locations": [{"id": loc, "name": loc, "active": True} for loc in src.by_location]}
        )

    async def inventory(self, request: web.Request) -> web.Response:
        src = self._source(request, "inventory")
        if isinstance(src, web.Response):
            return src
        q = request.query
        cursor = q.get("cursor", "")
        fault = await self._fault(src, "inventory", bool(cursor))
        if fault is not None:
            return fault
        location = q.get("location", "")
        offset = _offset(cursor)
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = 0
        if not location or offset is None or not 1 <= limit <= ERP_MAX_LIMIT:
            return _json(
                {"error": f"need location, a cursor we issued and 1 <= limit <= {ERP_MAX_LIMIT}"}, 400
            )
        keys = src.by_location.get(location, [])
        chunk = keys[offset : offset + limit]
        end = offset + len(chunk)
        self.state.read_pages["http"] += 1
        return _json(
            {
                "items": [src.rows[k].model_dump(by_alias=True) for k in chunk],
                "nextCursor": _cursor(end) if end < len(keys) else None,
            }
        )


# --------------------------------------------------------------------------- admin


class _Stock(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str
    location: str
    sku: str
    available: int
    continue_selling: bool | None = Field(default=None, alias="continueSelling")
    enabled: bool | None = None


class _Listing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shop: str
    warehouse_id: str
    quantity: int = Field(ge=0)
    sku_id: str | None = None
    seller_sku: str | None = None


class _Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    clear: bool = False
    faults: list[Fault] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _single(cls, raw: Any) -> Any:
        """A bare fault object is a batch of one."""
        if isinstance(raw, dict) and not ({"clear", "faults"} & raw.keys()):
            return {"faults": [raw]}
        return raw


class _Token(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shop: str
    expired: bool = True


class AdminApi:
    """/_sandbox/*: inspect and steer the sandbox (SPEC section 8)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    @staticmethod
    async def _body(request: web.Request, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate_json(await request.read())
        except ValidationError as exc:
            first = exc.errors()[0]
            raise web.HTTPBadRequest(
                text=json.dumps({"error": f"{'.'.join(map(str, first['loc']))}: {first['msg']}"}),
                content_type="application/json",
            ) from None

    async def state_(self, request: web.Request) -> web.Response:
        return _json(self.state.snapshot())

    async def requests(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.state.reset_counts()
        return _json(self.state.counts())

    async def faults(self, request: web.Request) -> web.Response:
        """POST one fault, ``{"faults": [...]}``, or ``{"clear": true}``; DELETE clears them all."""
        if request.method == "DELETE":
            self.state.faults.clear()
        elif request.method == "POST":
            batch: _Faults = await self._body(request, _Faults)
            if batch.clear:
                self.state.faults.clear()
            self.state.faults += batch.faults
        return _json({"faults": [f.model_dump(by_alias=True) for f in self.state.faults]})

    async def stock(self, request: web.Request) -> web.Response:
        change: _Stock = await self._body(request, _Stock)
        if change.source in self.state.shopify:
            shop = self.state.shopify[change.source]
            if change.location not in shop.locations:
                return _json({"error": f"shopify shop {shop.shop} has no location {change.location}"}, 404)
            item = shop.by_sku.get(change.sku) or shop.add_item(change.sku)
            if change.continue_selling is not None:
                item.policy = "CONTINUE" if change.continue_selling else "DENY"
            shop.set_level(item, change.location, change.available)
            delivery = await self._deliver_shopify(request, shop, item.gid, change) if shop.webhook else None
        elif change.source in self.state.erp:
            src = self.state.erp[change.source]
            old = src.rows.get((change.location, change.sku))
            row = ErpItem(
                sku=change.sku,
                location=change.location,
                available=change.available,
                continue_selling=change.continue_selling
                if change.continue_selling is not None
                else (old.continue_selling if old else False),
                enabled=change.enabled if change.enabled is not None else (old.enabled if old else True),
            )
            src.put(row)
            body = json.dumps({"items": [row.model_dump(by_alias=True)]}).encode()
            delivery = (
                await self._deliver(
                    request, src.name, src.webhook, body, generic_headers(body, src.webhook.secret)
                )
                if src.webhook
                else None
            )
        else:
            return _json({"error": f"no source {change.source} (shopify shops and erp sources are)"}, 404)
        return _json({"ok": True, "webhook": delivery})

    async def _deliver_shopify(
        self, request: web.Request, shop: ShShop, gid: str, change: _Stock
    ) -> dict[str, Any]:
        assert shop.webhook is not None
        payload = {
            "inventory_item_id": int(gid.rsplit("/", 1)[-1]),
            "location_id": int(change.location.rsplit("/", 1)[-1]),
            "available": change.available,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            SHOPIFY_HMAC_HEADER: sign_shopify(body, shop.webhook.secret),
            SHOPIFY_TOPIC_HEADER: SHOPIFY_INVENTORY_TOPIC,
            "X-Shopify-Shop-Domain": f"{shop.shop}.myshopify.com",
            "X-Shopify-API-Version": sh.API_VERSION,
            "X-Shopify-Webhook-Id": self.state.request_id(),
        }
        return await self._deliver(request, shop.shop, shop.webhook, body, headers)

    async def _deliver(
        self, request: web.Request, source: str, hook: Webhook, body: bytes, headers: dict[str, str]
    ) -> dict[str, Any]:
        """POST one webhook; its outcome is reported to the admin caller, never raised."""
        try:
            async with request.app[SESSION_KEY].post(hook.url, data=body, headers=headers) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.state.webhooks_sent["failed"] += 1
            return {"url": hook.url, "status": 0, "error": type(exc).__name__}
        self.state.webhooks_sent["delivered" if status < 300 else "refused"] += 1
        log.debug("webhook for %s -> %s: %d", source, hook.url, status)
        return {"url": hook.url, "status": status}

    async def listing(self, request: web.Request) -> web.Response:
        """Set a channel quantity by hand, as a seller editing the listing in Seller Center would."""
        edit: _Listing = await self._body(request, _Listing)
        shop = self.state.tiktok.get(edit.shop)
        if shop is None:
            return _json({"error": f"no TikTok shop {edit.shop}"}, 404)
        skus = (
            [shop.skus[edit.sku_id]]
            if edit.sku_id in shop.skus
            else shop.by_seller_sku.get(edit.seller_sku or "", [])
        )
        if not skus:
            return _json({"error": "no such sku_id / seller_sku in the shop"}, 404)
        if edit.warehouse_id not in shop.warehouses:
            return _json({"error": f"no warehouse {edit.warehouse_id} in the shop"}, 404)
        for sku in skus:
            sku.inventory[edit.warehouse_id] = edit.quantity
        return _json({"ok": True, "skus": [s.id for s in skus]})

    async def token(self, request: web.Request) -> web.Response:
        """Expire (or revive) a shop's access token, as time would."""
        change: _Token = await self._body(request, _Token)
        shop = self.state.tiktok.get(change.shop)
        if shop is None:
            return _json({"error": f"no TikTok shop {change.shop}"}, 404)
        shop.expired = change.expired
        return _json({"ok": True})


# --------------------------------------------------------------------------- app and runners


def build_app(state: SandboxState) -> web.Application:
    app = web.Application(middlewares=[_count], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = state
    t, s, e, a = TikTokApi(state), ShopifyApi(state), ErpApi(state), AdminApi(state)
    v = tt.VERSION
    app.router.add_get(f"/logistics/{v}/warehouses", t.warehouses)
    app.router.add_post(f"/product/{v}/products/search", t.products_search)
    app.router.add_get(f"/product/{v}/products/{{product_id}}", t.product_detail)
    app.router.add_post(f"/product/{v}/inventory/search", t.inventory_search)
    app.router.add_post(f"/product/{v}/products/{{product_id}}/inventory/update", t.inventory_update)
    app.router.add_get(tt.REFRESH_PATH, t.token_refresh)
    app.router.add_post("/shopify/{shop}/admin/api/{version}/graphql.json", s.graphql)
    app.router.add_get("/erp/{name}/v1/inventory", e.inventory)
    app.router.add_get("/erp/{name}/v1/locations", e.locations)
    app.router.add_get("/_sandbox/state", a.state_)
    app.router.add_route("*", "/_sandbox/requests", a.requests)
    app.router.add_route("*", "/_sandbox/faults", a.faults)
    app.router.add_post("/_sandbox/stock", a.stock)
    app.router.add_post("/_sandbox/listing", a.listing)
    app.router.add_post("/_sandbox/token", a.token)

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
        prog=prog, description="Serve TikTok Shop, Shopify and ERP fakes on loopback."
    )
    p.add_argument("--config", required=True, help="sandbox YAML (SPEC section 8)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed at start)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``invsync sandbox``: serve until interrupted; bad config exits 2 with one line on stderr."""
    args = parser().parse_args(argv)
    try:
        config = load_config(args.config)
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
