"""The Shopee Open Platform v2 fake under /shopee: sign, timestamp and token checks, Shopee's envelope,
and the shop and product endpoints the client calls, refusing what Shopee's docs say Shopee refuses, with
the documented error names (docs/platforms.md, "Shopee", names each page; choices where no page exists
are marked there)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from ..providers import shopee as sp
from .common import json_response, label
from .state import SHOPEE_TOKEN_LIFETIME, SandboxState, ShpItem, ShpShop

PREFIX = "/shopee"
TIMESTAMP_WINDOW = 300  # api-calls.md: "within 5 minutes of a timestamp"
STALE_TOKEN_GRACE = 300  # authorization-and-authentication.md: the old access_token stays valid 5 minutes
MAX_STOCK = 10_000_000  # get_item_limit sample stock_limit.max_limit (the real one is per shop/category)
ERROR_SHOP = "error_shop"
ERROR_ITEM_NOT_FOUND = "error_item_not_found"
ERROR_ITEM_UNEDITABLE = "error_item_uneditable"
ERROR_BUSI = "error_busi"
ERROR_DATA = "error_data"
ERROR_REFRESH_USED = "error_auth"  # refresh_access_token error_example: error_auth "Invalid refresh_token."
# No public source for the product APIs: the Ads module's documented name, under the called module.
RATE_LIMITED = "rate_limit.exceed_shop_api"
MESSAGE_STRUCTURE = (
    "Can not update item with different stock structure. Can only update seller stock with location id when "
    "existing seller stock have location id. Can only update seller stock without location id when existing "
    "seller stock without location id."
)
MESSAGE_LOCATION_MISMATCH = (
    "The location_id input is not matched the shop's location_id(more/wrong). Please double check."
)


class ShopeeFake:
    """Shopee Open Platform v2 (Shop APIs and the token refresh)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + sp.WAREHOUSES_PATH, self.warehouses),
            web.get(PREFIX + sp.ITEM_LIST_PATH, self.item_list),
            web.get(PREFIX + sp.ITEM_BASE_INFO_PATH, self.item_base_info),
            web.get(PREFIX + sp.MODEL_LIST_PATH, self.model_list),
            web.post(PREFIX + sp.UPDATE_STOCK_PATH, self.update_stock),
            web.post(PREFIX + sp.REFRESH_PATH, self.token_refresh),
        ]

    def envelope(
        self, response: Any = None, error: str = "", message: str = "", status: int = 200, **extra: Any
    ) -> web.Response:
        body = {"request_id": self.state.request_id(), "error": error, "message": message, **extra}
        if response is not None:
            body["response"] = response
        return json_response(body, status)

    def _signed(self, request: web.Request, shop_level: bool) -> web.Response | None:
        """partner_id, timestamp and sign (shop APIs also access_token and shop_id) as api-calls.md says."""
        cfg = self.state.config.shopee
        q = request.query
        if cfg is None:
            return self.envelope(None, sp.ERROR_PARAM, "Invalid partner_id.", 403)
        if q.get("partner_id") != str(cfg.partner_id):
            return self.envelope(None, sp.ERROR_PARAM, "Invalid partner_id.", 403)
        try:
            stamp = int(q.get("timestamp", ""))
        except ValueError:
            return self.envelope(None, sp.ERROR_PARAM, "no timestamp", 403)
        if abs(stamp - time.time()) > TIMESTAMP_WINDOW:
            return self.envelope(None, sp.ERROR_PARAM, "Invalid timestamp", 403)
        path = request.path.removeprefix(PREFIX)
        try:
            shop_id = int(q.get("shop_id", "0")) if shop_level else 0
        except ValueError:
            return self.envelope(None, ERROR_SHOP, "shopid is invalid", 403)
        expected = sp.sign(cfg.partner_key, cfg.partner_id, path, stamp, q.get("access_token", ""), shop_id)
        if shop_level and not q.get("access_token"):
            return self.envelope(None, sp.ERROR_PARAM, "There is no access_token in query.", 403)
        if q.get("sign", "") != expected:
            return self.envelope(None, sp.ERROR_SIGN, "Wrong sign.", 403)
        return None

    async def guard(
        self, request: web.Request, operation: str, continuation: bool = False
    ) -> ShpShop | web.Response:
        """Verify the common parameters and the token, then rate limit and faults."""
        label(request, "shopee", operation)
        refused = self._signed(request, shop_level=True)
        if refused is not None:
            return refused
        shop = self.state.shopee.get(int(request.query["shop_id"]))
        if shop is None:
            return self.envelope(None, ERROR_SHOP, "shopid is invalid", 403)
        token = request.query["access_token"]
        now = time.time()
        live = token == shop.access_token and now < shop.expire_in
        if not live and not now < shop.stale_tokens.get(token, 0):
            return self.envelope(None, sp.ERROR_AUTH, sp.MESSAGE_INVALID_TOKEN, 403)
        module = request.path.removeprefix(PREFIX).split("/")[3]
        if not shop.limiter.take():
            return self.envelope(
                None,
                f"{module}.{RATE_LIMITED}",
                "Too many requests for the shop at the moment, please try again later.",
                429,
            )
        effect = self.state.effect("shopee", operation, str(shop.shop_id), continuation)
        if effect is not None:
            if effect.latency:
                await asyncio.sleep(effect.latency)
            if effect.status:
                error = effect.error or (
                    f"{module}.{RATE_LIMITED}" if effect.status == 429 else "error_server"
                )
                response = self.envelope(None, error, f"injected fault (HTTP {effect.status})", effect.status)
                if effect.retry_after is not None:
                    response.headers["Retry-After"] = f"{effect.retry_after:g}"
                return response
        return shop

    async def warehouses(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "warehouses")
        if isinstance(shop, web.Response):
            return shop
        if not shop.locations:
            return self.envelope(
                None, sp.ERROR_NOT_IN_WHITELIST, "Your shop is not in multi-warehouse whitelist."
            )
        return self.envelope(list(shop.locations.values()))

    async def item_list(self, request: web.Request) -> web.Response:
        q = request.query
        shop = await self.guard(request, "item_list", continuation=q.get("offset", "0") != "0")
        if isinstance(shop, web.Response):
            return shop
        try:
            offset, size = int(q.get("offset", "")), int(q.get("page_size", ""))
        except ValueError:
            return self.envelope(
                None, sp.ERROR_PARAM, "Wrong parameters, detail: offset and page_size are required."
            )
        if not 1 <= size <= sp.PAGE_SIZE or offset < 0:
            return self.envelope(
                None,
                sp.ERROR_PARAM,
                f"Parameter is not match the constraints, page_size must be in [1, {sp.PAGE_SIZE}].",
            )
        statuses = set(q.getall("item_status", []))
        if not statuses:
            return self.envelope(None, "error_param_item_status", "Item status error.")
        matched = [i for i in shop.order if shop.items[i].status in statuses]
        if offset > len(matched):
            return self.envelope(
                None, sp.ERROR_PARAM, "get items offset over limit, please use the next field"
            )
        page = matched[offset : offset + size]
        end = offset + len(page)
        self.state.read_pages["shopee"] += 1
        return self.envelope(
            {
                "item": [
                    {
                        "item_id": i,
                        "item_status": shop.items[i].status,
                        "update_time": shop.items[i].update_time,
                    }
                    for i in page
                ],
                "total_count": len(matched),
                "has_next_page": end < len(matched),
                "next_offset": end,
            }
        )

    @staticmethod
    def _ids(raw: str) -> list[int] | None:
        try:
            return [int(x) for x in raw.strip("[]").replace(" ", ",").split(",") if x]
        except ValueError:
            return None

    async def item_base_info(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "item_base_info")
        if isinstance(shop, web.Response):
            return shop
        ids = self._ids(request.query.get("item_id_list", ""))
        if ids is None:
            return self.envelope(
                None, sp.ERROR_PARAM, "Wrong parameters, detail: item_id_list is a list of ids."
            )
        if len(ids) > sp.BASE_INFO_ITEMS_MAX:
            return self.envelope(
                None,
                sp.ERROR_PARAM,
                f"Parameter is not match the constraints, item_id_list in [0, {sp.BASE_INFO_ITEMS_MAX}].",
            )
        found = [shop.items[i] for i in ids if i in shop.items]
        return self.envelope({"item_list": [self._base(i) for i in found]})

    @staticmethod
    def _base(item: ShpItem) -> dict[str, Any]:
        base: dict[str, Any] = {
            "item_id": item.item_id,
            "item_status": item.status,
            "item_sku": item.item_sku,
            "has_model": item.has_model,
            "update_time": item.update_time,
        }
        if not item.has_model:
            base["stock_info_v2"] = item.models[0].stock_info()
        return base

    async def model_list(self, request: web.Request) -> web.Response:
        shop = await self.guard(request, "model_list")
        if isinstance(shop, web.Response):
            return shop
        try:
            item = shop.items.get(int(request.query.get("item_id", "")))
        except ValueError:
            item = None
        if item is None:
            return self.envelope(None, ERROR_ITEM_NOT_FOUND, "Item_id is not found.")
        models = [
            {
                "model_id": m.model_id,
                "model_sku": m.model_sku,
                "model_status": m.status,
                "stock_info_v2": m.stock_info(),
            }
            for m in item.models.values()
            if item.has_model
        ]
        return self.envelope({"tier_variation": [], "model": models})

    async def update_stock(self, request: web.Request) -> web.Response:
        """Whole-call refusals change nothing; a model in failure_list is not changed, the others are."""
        shop = await self.guard(request, "update_stock")
        if isinstance(shop, web.Response):
            return shop
        try:
            body = json.loads(await request.read())
            item_id = body["item_id"]
            requested = [
                (m.get("model_id", 0), [(s.get("location_id", ""), s["stock"]) for s in m["seller_stock"]])
                for m in body["stock_list"]
            ]
        except (ValueError, KeyError, TypeError, AttributeError):
            return self.envelope(
                None,
                sp.ERROR_PARAM,
                "Wrong parameters, detail: {item_id, stock_list: [{model_id, seller_stock}]}.",
            )
        item = shop.items.get(item_id) if isinstance(item_id, int) else None
        if item is None:
            return self.envelope(None, ERROR_ITEM_NOT_FOUND, "Item_id is not found.")
        if not 1 <= len(requested) <= sp.MODELS_PER_UPDATE:
            return self.envelope(
                None,
                sp.ERROR_PARAM,
                f"Parameter is not match the constraints, stock_list length in [1, {sp.MODELS_PER_UPDATE}].",
            )
        if item.status != sp.WRITABLE_STATUS:
            return self.envelope(
                None, ERROR_ITEM_UNEDITABLE, "Can't edit this item. item status can not support editing."
            )
        ids = [model_id for model_id, _ in requested]
        if len(set(ids)) != len(ids):
            return self.envelope(None, sp.ERROR_PARAM, "Repeat model_id.")
        if item.has_model and 0 in ids:
            return self.envelope(
                None,
                "error_edit_item_stock_for_item_has_model",
                "Can't to edit item stock directly while item has models.",
            )
        named = {w for _, stock in requested for w, _ in stock}
        if shop.locations and "" in named:
            return self.envelope(
                None, ERROR_BUSI, "The merchant/shop has multi warehouse, please input location id"
            )
        if not shop.locations and named != {""}:
            return self.envelope(
                None,
                sp.ERROR_PARAM,
                MESSAGE_STRUCTURE,
            )
        if shop.locations and not named <= shop.locations.keys():
            return self.envelope(
                None,
                sp.ERROR_AUTH,
                MESSAGE_LOCATION_MISMATCH,
            )
        failures, successes, applied, changed = [], [], 0, 0
        for model_id, stock in requested:
            reason = self._check(item, model_id, stock)
            if reason:
                failures.append({"model_id": model_id, "failed_reason": reason})
                continue
            held = item.models[model_id].seller_stock
            for location, quantity in stock:
                changed += held.get(location) != quantity
                held[location] = quantity
                applied += 1
                successes.append(
                    {"model_id": model_id, "stock": quantity}
                    | ({"location_id": location} if location else {})
                )
        if applied:
            item.update_time = int(time.time())
            self.state.writes["requests"] += 1
            self.state.writes["slots"] += applied
            self.state.writes["changed"] += changed
        result = {"failure_list": failures, "success_list": successes}
        if failures and not successes:  # choice: every model failed is the documented failure error
            return self.envelope(
                result,
                sp.ERROR_UPDATE_STOCK_FAILED,
                "Update stock failed, please check failure_list for detailed reason",
            )
        return self.envelope(result, warning="some models failed, see failure_list" if failures else "")

    @staticmethod
    def _check(item: ShpItem, model_id: Any, stock: list[tuple[Any, Any]]) -> str:
        """The failed_reason of one model of an update (no public source for these texts), or ''."""
        model = item.models.get(model_id) if isinstance(model_id, int) else None
        if model is None or (model_id == 0) == item.has_model:
            return "Wrong model_id."
        for _, quantity in stock:
            if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity <= MAX_STOCK:
                return f"stock must be between 0 and {MAX_STOCK}"
        total = (
            sum(q for _, q in stock)
            + sum(q for w, q in model.seller_stock.items() if w not in {w for w, _ in stock})
            + sum(model.shopee_stock.values())
        )
        if total < model.reserved:
            return "Total stock must be more than reserved stock."
        return ""

    async def token_refresh(self, request: web.Request) -> web.Response:
        """A refresh token works once; the answer rotates both tokens, the old access token lives 5 more
        minutes."""
        label(request, "shopee", "token_refresh")
        refused = self._signed(request, shop_level=False)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.read())
            refresh, shop_id = str(body["refresh_token"]), int(body["shop_id"])
            partner_id = int(body["partner_id"])
        except (ValueError, KeyError, TypeError):
            return self.envelope(
                None, sp.ERROR_PARAM, "Wrong parameters, detail: refresh_token, partner_id, shop_id."
            )
        cfg = self.state.config.shopee
        shop = self.state.shopee.get(shop_id)
        if cfg is None or partner_id != cfg.partner_id:
            return self.envelope(None, sp.ERROR_PARAM, "Invalid partner_id.", 403)
        if shop is None or not refresh or refresh != shop.refresh_token:
            return self.envelope(None, ERROR_REFRESH_USED, "Invalid refresh_token.", 403)
        now = time.time()
        shop.stale_tokens[shop.access_token] = now + STALE_TOKEN_GRACE
        shop.access_token = f"{self.state.random.getrandbits(128):032x}"
        shop.refresh_token = f"{self.state.random.getrandbits(128):032x}"
        shop.expire_in = int(now) + SHOPEE_TOKEN_LIFETIME
        return json_response(
            {
                "partner_id": cfg.partner_id,
                "shop_id": shop.shop_id,
                "access_token": shop.access_token,
                "refresh_token": shop.refresh_token,
                "expire_in": SHOPEE_TOKEN_LIFETIME,
                "request_id": self.state.request_id(),
                "error": "",
                "message": "",
            }
        )
