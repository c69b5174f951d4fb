"""The TikTok Shop Open API 202309 fake: signature, timestamp and token checks, envelopes, and the
product and inventory endpoints the client calls, refusing what TikTok's docs say TikTok refuses, with
the documented codes (docs/platforms.md names each page; choices where no page exists are marked there).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from ..providers import tiktok as tt
from .common import cursor, json_response, label, offset_of
from .state import TOKEN_LIFETIME, SandboxState, TtProduct, TtShop

# common-errors.md: a timestamp from 5 minutes before to 30 seconds after now
TIMESTAMP_BEFORE, TIMESTAMP_AFTER = 300, 30
MAX_QUANTITY = 99999  # update-inventory: quantity ceiling
SEARCH_PAGE_MAX = 100  # search-products: page_size [1-100]
INVENTORY_SEARCH_PRODUCTS_MAX, INVENTORY_SEARCH_SKUS_MAX = 100, 600  # inventory-search
# Documented codes (the page that lists each is in docs/platforms.md).
CODE_BODY_INVALID = 36009022  # common-errors.md: the body must be application/json
CODE_PAGE_SIZE_INVALID = 12019109  # search-products
CODE_CREATE_TIME_INVALID = 12019118  # search-products
CODE_PRODUCT_NOT_FOUND = 12052032  # update-inventory, get-product
CODE_PRODUCT_STATUS = 12052901  # update-inventory: not available in the product's current status
CODE_SKU_NOT_FOUND = 12052556  # update-inventory
CODE_SKU_DUPLICATE = 12052553  # update-inventory
CODE_CHECK_FAILED = 12052990  # update-inventory: the main code of a per-SKU error with extra_errors
CODE_WAREHOUSE_NOT_FOUND = 12052097  # update-inventory
CODE_WAREHOUSE_DISABLED = 12052531  # update-inventory
CODE_QUANTITY_INVALID = 12052055  # update-inventory
CODE_INVENTORY_PRODUCTS_MAX = 12019120  # inventory-search
CODE_INVENTORY_SKUS_MAX = 12019015  # inventory-search
# No public source: the sandbox's choices (docs/platforms.md marks them).
CODE_PAGE_TOKEN_INVALID = 12019108  # "page number is invalid" is the nearest documented code
CODE_SHOP_CIPHER_INVALID = tt.CODE_CREDENTIALS_INVALID  # common-errors.md lists 36009004 for identifiers
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
            return self.envelope(
                None,
                tt.CODE_CREDENTIALS_INVALID,
                "Invalid credentials. Invalid app_key query parameter.",
                401,
            )
        try:
            skew = int(q.get("timestamp", "")) - time.time()
        except ValueError:
            skew = float("-inf")
        if not -TIMESTAMP_BEFORE <= skew <= TIMESTAMP_AFTER:
            return self.envelope(
                None,
                tt.CODE_CREDENTIALS_INVALID,
                "Invalid timestamp. It must lie from 5 minutes before to 30 seconds beyond the current time.",
                401,
            )
        body = await request.read()
        expected = tt.sign(cfg.app_secret, request.path, dict(q), body)
        if q.get("sign", "") != expected:
            return self.envelope(
                None, tt.CODE_SIGN_INVALID, "Invalid credentials. The 'sign' query parameter is invalid.", 401
            )
        if shop is None:
            return self.envelope(
                None, CODE_SHOP_CIPHER_INVALID, "Invalid identifier. The 'shop_cipher' is invalid.", 400
            )
        token = request.headers.get("x-tts-access-token", "")
        if token != shop.access_token and token not in shop.stale_tokens:
            return self.envelope(
                None,
                tt.CODE_CREDENTIALS_INVALID,
                "Invalid credentials. The x-tts-access-token header is invalid.",
                401,
            )
        if shop.expired or token in shop.stale_tokens or time.time() >= shop.expire_in:
            return self.envelope(
                None, tt.CODE_TOKEN_EXPIRED, "Expired credentials. The x-tts-access-token has expired.", 401
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

    def _body(self, raw: bytes) -> dict[str, Any] | web.Response:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return self.envelope(None, CODE_BODY_INVALID, "Invalid request format: a JSON object body.", 400)
        return body

    async def products_search(self, request: web.Request) -> web.Response:
        token = request.query.get("page_token", "")
        shop = await self.guard(request, "products_search", continuation=bool(token))
        if isinstance(shop, web.Response):
            return shop
        try:
            size = int(request.query.get("page_size", ""))
        except ValueError:
            size = 0
        if not 1 <= size <= SEARCH_PAGE_MAX:
            return self.envelope(None, CODE_PAGE_SIZE_INVALID, "page size is invalid", 400)
        offset = offset_of(token)
        if offset is None:
            return self.envelope(None, CODE_PAGE_TOKEN_INVALID, "The 'page_token' is invalid.", 400)
        body = self._body(await request.read())
        if isinstance(body, web.Response):
            return body
        order = self._search(shop, body)
        if isinstance(order, web.Response):
            return order
        if offset > len(order):
            return self.envelope(None, CODE_PAGE_TOKEN_INVALID, "The 'page_token' is invalid.", 400)
        ids = order[offset : offset + size]
        end = offset + len(ids)
        if end > tt.SEARCH_RESULTS_MAX:
            return self.envelope(
                None,
                tt.CODE_SEARCH_RESULTS_MAX,
                f"The total number of search results can not exceed {tt.SEARCH_RESULTS_MAX}.",
            )
        self.state.read_pages["tiktok"] += 1
        return self.envelope(
            {
                "products": [shop.products[pid].json() for pid in ids],
                "next_page_token": cursor(end) if end < len(order) else "",
                "total_count": len(order),
            }
        )

    def _search(self, shop: TtShop, body: dict[str, Any]) -> Sequence[str] | web.Response:
        """The product ids a search body matches, in search order (create_time, then configured)."""
        lo = body.get("create_time_ge", 0)
        hi = body.get("create_time_le", int(time.time()))
        if not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in (lo, hi)) or lo > hi:
            return self.envelope(None, CODE_CREATE_TIME_INVALID, "search create time invalid", 400)
        first, last = bisect.bisect_left(shop.times, lo), bisect.bisect_right(shop.times, hi)
        wanted = body.get("seller_skus")
        if wanted is None:
            order: Sequence[str] = shop.order[first:last]
        elif isinstance(wanted, list) and all(isinstance(w, str) for w in wanted):
            if len(wanted) > tt.SELLER_SKUS_MAX:
                return self.envelope(
                    None,
                    tt.CODE_SELLER_SKUS_MAX,
                    f"The maximum count of seller_skus in the search filter is {tt.SELLER_SKUS_MAX}.",
                )
            # through the seller-SKU index: a filtered search costs what it returns, not the catalogue
            matched = {sku.product_id for w in wanted for sku in shop.by_seller_sku.get(w, [])}
            order = [
                p
                for p in sorted(matched, key=shop.position.__getitem__)
                if lo <= shop.products[p].create_time <= hi
            ]
        else:
            return self.envelope(None, CODE_BODY_INVALID, "seller_skus must be a list of strings.", 400)
        status = body.get("status", "ALL")
        if status != "ALL":
            order = [p for p in order if shop.products[p].status == status]
        return order

    async def product_detail(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "product_detail")
        if isinstance(shop, web.Response):
            return shop
        product = shop.products.get(request.match_info["product_id"])
        if product is None:
            return self.envelope(None, CODE_PRODUCT_NOT_FOUND, "The product does not exist")
        return self.envelope(product.json())

    async def inventory_search(self, request: web.Request) -> web.Response:
        """Per-warehouse inventory by SKU ids (they win over product ids) or product ids."""
        shop = await self.guard(request, "inventory_search")
        if isinstance(shop, web.Response):
            return shop
        body = self._body(await request.read())
        if isinstance(body, web.Response):
            return body
        sku_ids, product_ids = body.get("sku_ids") or [], body.get("product_ids") or []
        if not isinstance(sku_ids, list) or not isinstance(product_ids, list) or not (sku_ids or product_ids):
            return self.envelope(None, CODE_BODY_INVALID, "Give product_ids or sku_ids.", 400)
        if len(sku_ids) > INVENTORY_SEARCH_SKUS_MAX:
            return self.envelope(None, CODE_INVENTORY_SKUS_MAX, "The number of SKU exceed the limit")
        if not sku_ids and len(product_ids) > INVENTORY_SEARCH_PRODUCTS_MAX:
            return self.envelope(
                None, CODE_INVENTORY_PRODUCTS_MAX, "The number of provided product IDs exceeds the limit."
            )
        if sku_ids:
            skus = [shop.skus[s] for s in sku_ids if isinstance(s, str) and s in shop.skus]
        else:
            skus = [s for p in product_ids if p in shop.products for s in shop.products[p].skus.values()]
        inventory: dict[str, list[dict[str, Any]]] = {}
        for sku in skus:
            inventory.setdefault(sku.product_id, []).append(
                {
                    "id": sku.id,
                    "seller_sku": sku.seller_sku,
                    "total_available_quantity": sum(sku.inventory.values()),
                    "total_committed_quantity": 0,
                    "warehouse_inventory": [
                        {"warehouse_id": w, "available_quantity": q, "committed_quantity": 0}
                        for w, q in sku.inventory.items()
                    ],
                }
            )
        return self.envelope({"inventory": [{"product_id": p, "skus": s} for p, s in inventory.items()]})

    async def inventory_update(self, request: web.Request) -> web.Response:
        """Whole-request refusals change nothing; a SKU with an error in ``data.errors`` is not
        changed, the others are."""
        shop = await self.guard(request, "inventory_update")
        if isinstance(shop, web.Response):
            return shop
        product = shop.products.get(request.match_info["product_id"])
        if product is None:
            return self.envelope(None, CODE_PRODUCT_NOT_FOUND, "The product does not exist")
        body = self._body(await request.read())
        if isinstance(body, web.Response):
            return body
        try:
            requested = [
                (str(s["id"]), [(str(i["warehouse_id"]), i["quantity"]) for i in s["inventory"]])
                for s in body["skus"]
            ]
        except (KeyError, TypeError):
            return self.envelope(
                None,
                CODE_BODY_INVALID,
                "Body must be {skus: [{id, inventory: [{warehouse_id, quantity}]}]}.",
                400,
            )
        if product.status != "ACTIVATE":
            return self.envelope(
                None,
                CODE_PRODUCT_STATUS,
                "The product in its current status is not available for this operation. "
                "Change the product status and try again.",
            )
        if len({sku_id for sku_id, _ in requested}) != len(requested):
            return self.envelope(None, CODE_SKU_DUPLICATE, "Sku id duplicate")
        default = shop.default_warehouse
        if not shop.multi_warehouse and any(w != default for _, inv in requested for w, _ in inv):
            return self.envelope(None, tt.CODE_MULTI_WAREHOUSE_REFUSED, "No multiple warehouse permission")
        for sku_id, inventory in requested:
            sku = product.skus.get(sku_id)
            named = [w for w, _ in inventory]
            if sku is not None and (len(set(named)) != len(named) or set(named) != set(sku.inventory)):
                return self.envelope(
                    None,
                    tt.CODE_WAREHOUSES_INCOMPLETE,
                    "Multiple warehouses detected. Include all warehouse IDs and the corresponding "
                    "details and try again.",
                )
        errors = [e for e in (self._check(shop, product, sku_id, inv) for sku_id, inv in requested) if e]
        failed = {e["detail"]["sku_id"] for e in errors}
        applied = changed = 0
        for sku_id, inventory in requested:
            if sku_id not in failed:
                held = product.skus[sku_id].inventory
                changed += sum(held[w] != q for w, q in inventory)
                held.update(inventory)
                applied += len(inventory)
        self.state.writes["requests"] += 1
        self.state.writes["slots"] += applied
        self.state.writes["changed"] += changed  # slots sent at the value held (carried) change nothing
        return self.envelope({"errors": errors} if errors else {})

    @staticmethod
    def _check(
        shop: TtShop, product: TtProduct, sku_id: str, inventory: list[tuple[str, Any]]
    ) -> dict[str, Any] | None:
        """The ``data.errors[]`` entry for one SKU of an update, or None when it can be applied."""
        sku = product.skus.get(sku_id)
        if sku is None:
            return {
                "code": CODE_SKU_NOT_FOUND,
                "message": "The SKU id not exist.",
                "detail": {"sku_id": sku_id},
            }
        extra = []
        for warehouse, quantity in inventory:
            if (
                not isinstance(quantity, int)
                or isinstance(quantity, bool)
                or not 0 <= quantity <= MAX_QUANTITY
            ):
                code, message = (
                    CODE_QUANTITY_INVALID,
                    "The SKU inventory quantity for the warehouse must be within allowed limits.",
                )
            elif warehouse not in shop.warehouses:
                code, message = CODE_WAREHOUSE_NOT_FOUND, "The warehouse does not exist"
            elif (
                shop.warehouses[warehouse].effect_status != "ENABLED" and quantity != sku.inventory[warehouse]
            ):
                # choice: an assigned disabled warehouse may be named at its current value, not changed
                code, message = CODE_WAREHOUSE_DISABLED, "The warehouse is disabled."
            else:
                continue
            extra.append({"warehouse_id": warehouse, "code": code, "message": message})
        if not extra:
            return None
        return {
            "code": CODE_CHECK_FAILED,
            "message": "Check failed",
            "detail": {"sku_id": sku_id, "extra_errors": extra},
        }

    async def token_refresh(self, request: web.Request) -> web.Response:
        label(request, "tiktok", "token_refresh")
        cfg = self.state.config.tiktok
        q = request.query
        if cfg is None or q.get("app_key") != cfg.app_key or q.get("app_secret") != cfg.app_secret:
            return self.envelope(
                None, tt.CODE_CREDENTIALS_INVALID, "Invalid credentials. Invalid app_key or app_secret.", 401
            )
        if q.get("grant_type") != "refresh_token":
            return self.envelope(None, CODE_BODY_INVALID, "grant_type must be refresh_token.", 400)
        refresh = q.get("refresh_token", "")
        shop = next((s for s in self.state.tiktok.values() if refresh and s.refresh_token == refresh), None)
        if shop is None:
            return self.envelope(None, CODE_REFRESH_INVALID, "The refresh token is invalid.", 401)
        shop.stale_tokens.add(shop.access_token)
        shop.access_token = f"TTP_{self.state.random.getrandbits(96):024x}"
        shop.expired = False
        now = int(time.time())
        shop.expire_in = now + TOKEN_LIFETIME
        return self.envelope(
            {
                "access_token": shop.access_token,
                "access_token_expire_in": shop.expire_in,
                "refresh_token": shop.refresh_token,
                "refresh_token_expire_in": now + 60 * 86400,
                "open_id": shop.cipher,
                "seller_name": shop.cipher,
                "granted_scopes": ["seller.product.basic", "seller.product.write", "seller.logistics"],
            }
        )
