"""/_sandbox/*: inspect and steer the sandbox (docs/platforms.md, "The sandbox")."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..providers import shopify as sh
from ..providers.shopee import NO_LOCATION
from ..providers.webhooks import (
    SHOPIFY_HMAC_HEADER,
    SHOPIFY_INVENTORY_TOPIC,
    SHOPIFY_TOPIC_HEADER,
    generic_headers,
    sign_shopify,
)
from .common import SESSION_KEY, json_response, log
from .config import ErpItem, Webhook
from .state import Fault, SandboxState, ShShop


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
    """/_sandbox/*: inspect and steer the sandbox."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sandbox/state", self.state_),
            web.route("*", "/_sandbox/requests", self.requests),
            web.route("*", "/_sandbox/faults", self.faults),
            web.post("/_sandbox/stock", self.stock),
            web.post("/_sandbox/listing", self.listing),
            web.post("/_sandbox/token", self.token),
        ]

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
        return json_response(self.state.snapshot())

    async def requests(self, request: web.Request) -> web.Response:
        if request.method == "DELETE":
            self.state.reset_counts()
        return json_response(self.state.counts())

    async def faults(self, request: web.Request) -> web.Response:
        """POST one fault, ``{"faults": [...]}``, or ``{"clear": true}``; DELETE clears them all."""
        if request.method == "DELETE":
            self.state.faults.clear()
        elif request.method == "POST":
            batch: _Faults = await self._body(request, _Faults)
            if batch.clear:
                self.state.faults.clear()
            self.state.faults += batch.faults
        return json_response({"faults": [f.model_dump(by_alias=True) for f in self.state.faults]})

    async def stock(self, request: web.Request) -> web.Response:
        change: _Stock = await self._body(request, _Stock)
        if change.source in self.state.shopify:
            shop = self.state.shopify[change.source]
            if change.location not in shop.locations:
                return json_response(
                    {"error": f"shopify shop {shop.shop} has no location {change.location}"}, 404
                )
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
            return json_response(
                {"error": f"no source {change.source} (shopify shops and erp sources are)"}, 404
            )
        return json_response({"ok": True, "webhook": delivery})

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
        if edit.shop.isdigit() and int(edit.shop) in self.state.shopee:
            return self._shopee_listing(edit)
        shop = self.state.tiktok.get(edit.shop)
        if shop is None:
            return json_response({"error": f"no TikTok shop {edit.shop}"}, 404)
        skus = (
            [shop.skus[edit.sku_id]]
            if edit.sku_id in shop.skus
            else shop.by_seller_sku.get(edit.seller_sku or "", [])
        )
        if not skus:
            return json_response({"error": "no such sku_id / seller_sku in the shop"}, 404)
        if edit.warehouse_id not in shop.warehouses:
            return json_response({"error": f"no warehouse {edit.warehouse_id} in the shop"}, 404)
        for sku in skus:
            sku.inventory[edit.warehouse_id] = edit.quantity
        return json_response({"ok": True, "skus": [s.id for s in skus]})

    def _shopee_listing(self, edit: _Listing) -> web.Response:
        """A Shopee model's seller_stock at one location (sku_id: the model id, 0 for an item without)."""
        shop = self.state.shopee[int(edit.shop)]
        models = [
            (item, m)
            for item in shop.items.values()
            for m in item.models.values()
            if str(m.model_id) == edit.sku_id
            or (edit.seller_sku is not None and m.model_sku == edit.seller_sku)
        ]
        if not models:
            return json_response({"error": "no such sku_id / seller_sku in the shop"}, 404)
        if edit.warehouse_id not in (shop.locations.keys() or {NO_LOCATION}):
            return json_response({"error": f"no location {edit.warehouse_id} in the shop"}, 404)
        location = edit.warehouse_id if shop.locations else ""
        for _, m in models:
            m.seller_stock[location] = edit.quantity
        return json_response({"ok": True, "skus": [f"{item.item_id}/{m.model_id}" for item, m in models]})

    async def token(self, request: web.Request) -> web.Response:
        """Expire (or revive) a shop's access token, as time would."""
        change: _Token = await self._body(request, _Token)
        if change.shop.isdigit() and int(change.shop) in self.state.shopee:
            self.state.shopee[int(change.shop)].expire_in = (
                0 if change.expired else int(time.time()) + 4 * 3600
            )
            return json_response({"ok": True})
        shop = self.state.tiktok.get(change.shop)
        if shop is None:
            return json_response({"error": f"no TikTok shop {change.shop}"}, 404)
        shop.expired = change.expired
        return json_response({"ok": True})
