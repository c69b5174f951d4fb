"""The TikTok Shop Open API 202309 fake: signature, timestamp and token checks, envelopes, and the
product and inventory endpoints the client calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from ..providers import tiktok as tt
from .common import cursor, json_response, label, offset_of
from .state import SandboxState, TtShop

TIMESTAMP_WINDOW = 300
MAX_QUANTITY = 99999
# Sandbox-chosen TikTok codes for request problems (TikTok's real ones are not all public).
CODE_BAD_PARAM = 36009004
CODE_PRODUCT_NOT_FOUND = 12052013
CODE_SKU_NOT_FOUND = 12052217
CODE_QUANTITY_INVALID = 12052048
CODE_WAREHOUSE_INVALID = 12052230
CODE_REFRESH_INVALID = 36004013


class TikTokFake:
    """TikTok Shop Open API 202309: verification, envelopes and the inventory endpoints."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        v = tt.VERSION
        return [
            web.get(f"/logistics/{v}/warehouses", self.warehouses),
            web.post(f"/product/{v}/products/search", self.products_search),
            web.get(f"/product/{v}/products/{{product_id}}", self.product_detail),
            web.post(f"/product/{v}/inventory/search", self.inventory_search),
            web.post(f"/product/{v}/products/{{product_id}}/inventory/update", self.inventory_update),
            web.get(tt.REFRESH_PATH, self.token_refresh),
        ]

    def envelope(
        self, data: Any = None, code: int = 0, message: str = "Success", status: int = 200
    ) -> web.Response:
        body = {"code": code, "message": message, "request_id": self.state.request_id(), "data": data}
        return json_response(body, status)

    async def guard(
        self, request: web.Request, operation: str, continuation: bool = False
    ) -> TtShop | web.Response:
        """Verify app_key, timestamp, signature and token, then rate limit and faults."""
        cfg = self.state.config.tiktok
        q = request.query
        shop = self.state.tiktok.get(q.get("shop_cipher", ""))
        label(request, "tiktok", operation)
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
        offset = offset_of(token)
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
                "next_page_token": cursor(end) if end < len(order) else "",
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
        label(request, "tiktok", "token_refresh")
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
