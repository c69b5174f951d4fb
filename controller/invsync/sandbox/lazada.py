"""The Lazada Open Platform fake under /lazada/rest: signature, timestamp and token checks, LazOP's
envelope, GetMultiWarehouseBySeller, GetProducts, UpdateSellableQuantity and RefreshAccessToken,
refusing what Lazada's docs say Lazada refuses, with the documented codes (docs/platforms.md names
each page; the choices where no page says are marked there and below). /_sandbox/lazada/* steers it.
"""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..providers import lazada as lz
from .common import json_response, label
from .lazada_state import LazadaWorld, LzSeller, LzSku
from .state import SandboxState

PREFIX = "/lazada/rest"
TIMESTAMP_WINDOW = 7200  # calling-parameters.md: at most 7200 s from UTC time
FILTERS = frozenset({"all", "live", "inactive", "deleted", "pending", "rejected", "sold-out"})
STATUS_OF_FILTER = {"live": "Active", "inactive": "InActive", "deleted": "Deleted", "pending": "Pending",
                    "rejected": "Rejected"}  # fmt: skip
# Documented codes (GetProducts and UpdateSellableQuantity error codes; docs/platforms.md).
CODE_INVALID_FORMAT = "5"
CODE_EMPTY_REQUEST = "30"
CODE_INVALID_OFFSET = "14"
CODE_INVALID_DATE = "17"
CODE_INVALID_LIMIT = "19"
CODE_INVALID_FILTER = "36"
CODE_SKU_LIST = "70"
CODE_TOO_MANY_SKUS = "204"
DEFAULT_LIMIT = 10  # no public source: the limit when none is given (a choice)


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    seller: str
    seller_sku: str = Field(alias="SellerSku")
    warehouse_code: str = Field(alias="warehouseCode")
    sellable_quantity: int = Field(ge=0, alias="sellableQuantity")


class _Seller(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    seller: str
    expired: bool | None = None  # the access token expires now (as time would) or lives again
    increase_only: bool | None = Field(default=None, alias="increaseOnly")  # a Mega campaign starts/ends


@dataclass(frozen=True, slots=True)
class _Call:
    """A verified request: its parameters and, but for the token refresh, its seller."""

    params: dict[str, str]
    seller: LzSeller | None


class LazadaFake:
    """LazOP: verification, envelopes and the stock endpoints a seller's app calls."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.world: LazadaWorld = state.lazada

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + lz.WAREHOUSES_PATH, self.warehouses),
            web.get(PREFIX + lz.PRODUCTS_PATH, self.products_get),
            web.route("*", PREFIX + lz.UPDATE_PATH, self.stock_update),  # GET/POST
            web.route("*", PREFIX + lz.REFRESH_PATH, self.token_refresh),
            web.post("/_sandbox/lazada/listing", self.admin_listing),
            web.post("/_sandbox/lazada/seller", self.admin_seller),
            web.get("/_sandbox/lazada/log", self.admin_log),
        ]

    # ------------------------------------------------------------------ envelope and verification

    def reply(
        self, operation: str, seller: LzSeller | None, body: dict[str, Any], status: int = 200, skus: int = 0
    ) -> web.Response:
        """LazOP's envelope: code "0" with data, or code, type and message (HTTP 200: no source gives
        another status for an error, a choice)."""
        body = body | {"request_id": self.state.request_id()}
        self.world.log.append(
            {
                "operation": operation,
                "seller": seller.seller_id if seller else "",
                "code": body["code"],
                "skus": skus,
            }
        )
        return json_response(body, status)

    def error(
        self,
        operation: str,
        seller: LzSeller | None,
        code: str,
        message: str,
        kind: str = "ISV",
        **extra: Any,
    ) -> web.Response:
        return self.reply(operation, seller, {"code": code, "type": kind, "message": message, **extra})

    async def verify(
        self, request: web.Request, operation: str, *, token: bool = True, continuation: bool = False
    ) -> _Call | web.Response:
        """app_key, sign, timestamp and access token, then the seller's rate limit and faults."""
        label(request, "lazada", operation)
        params = dict(request.query)
        if request.method == "POST":
            params |= {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        cfg = self.world.config
        if cfg is None or params.get("app_key") != cfg.app_key:
            return self.error(operation, None, lz.CODE_APP_KEY, "The specified app key is invalid")  # choice
        if not params.get("sign"):
            return self.error(
                operation,
                None,
                lz.CODE_MISSING_PARAMETER,
                "the input parameter \u201csign\u201d that is mandatory for processing this request is "
                "not supplied",
            )
        if not _fresh(params.get("timestamp", "")):
            return self.error(
                operation, None, lz.CODE_TIMESTAMP, "The timestamp is more than 7200 s from UTC time"
            )
        signed = lz.sign(cfg.app_secret, request.path.removeprefix(PREFIX), params)
        if params.get("sign_method") != lz.SIGN_METHOD or params["sign"] != signed:
            return self.error(
                operation,
                None,
                lz.CODE_SIGNATURE,
                "The request signature does not conform to lazop standards",
            )
        seller = None
        if token:
            seller = self.world.by_access_token(params.get("access_token", ""))
            if seller is None or time.time() >= seller.expire_at:
                return self.error(
                    operation,
                    seller,
                    lz.CODE_ACCESS_TOKEN,
                    "The specified access token is invalid or expired",
                )
            if not seller.limiter.take():
                return self.error(
                    operation,
                    seller,
                    lz.CODE_RATE_LIMITED,
                    "Limit service request speed in server side temporarily.",
                )
        effect = self.state.effect("lazada", operation, seller.seller_id if seller else "*", continuation)
        if effect is not None:
            if effect.latency:
                await asyncio.sleep(effect.latency)
            if effect.status:
                code = (
                    str(effect.code)
                    if effect.code is not None
                    else ("901" if effect.status in (200, 429) else "6")
                )
                response = self.error(
                    operation, seller, code, f"injected fault (HTTP {effect.status})", "ISP"
                )
                response.set_status(effect.status)
                if effect.retry_after is not None:
                    response.headers["Retry-After"] = f"{effect.retry_after:g}"
                return response
        return _Call(params, seller)

    # ------------------------------------------------------------------ seller API

    async def warehouses(self, request: web.Request) -> web.Response:
        """GetMultiWarehouseBySeller: result.module[] holds one entry per warehouse (inventory-calculation-
        logic.md shows the answer; its reference page is not in the mirror)."""
        call = await self.verify(request, "warehouses")
        if isinstance(call, web.Response):
            return call
        assert call.seller is not None
        if call.params.get("addressTypes") != json.dumps(["warehouse"]):
            return self.error(
                "warehouses", call.seller, lz.CODE_MISSING_PARAMETER, "addressTypes is required"
            )
        module = [
            {"code": code, "name": code, "defaultAddress": code == lz.DROPSHIPPING, "status": "ACTIVE",
             "needToUpdate": False, "detailAddress": ""}
            for code in call.seller.warehouses
        ]  # fmt: skip
        return self.reply(
            "warehouses", call.seller, {"code": "0", "result": {"success": True, "module": module}}
        )

    async def products_get(self, request: web.Request) -> web.Response:
        offset_text = request.query.get("offset", "0")
        call = await self.verify(request, "products_get", continuation=offset_text not in ("", "0"))
        if isinstance(call, web.Response):
            return call
        seller, q = call.seller, call.params
        assert seller is not None
        op = "products_get"
        flt = q.get("filter", "")
        if flt not in FILTERS:
            return self.error(op, seller, CODE_INVALID_FILTER, "E036: Invalid status filter")
        limit, offset = _int(q.get("limit", str(DEFAULT_LIMIT))), _int(offset_text or "0")
        if limit is None or not 1 <= limit <= lz.PAGE_SIZE:
            return self.error(op, seller, CODE_INVALID_LIMIT, f'E019: "{q.get("limit")}" Invalid Limit')
        if offset is None or not 0 <= offset <= lz.OFFSET_MAX:
            return self.error(op, seller, CODE_INVALID_OFFSET, f'E014: "{offset_text}" Invalid Offset')
        bounds = {}
        for name in ("create_after", "create_before", "update_after", "update_before"):
            if name in q:
                when = _date_ms(q[name])
                if when is None:
                    return self.error(op, seller, CODE_INVALID_DATE, f'E017: "{q[name]}" Invalid Date Format')
                bounds[name] = when
        lo, hi = bounds.get("create_after", 0), bounds.get("create_before", 2**62)
        # "before or on" a date given to the second: the whole second counts
        ids = seller.created_between(lo, hi + 999 if "create_before" in bounds else hi)
        if "sku_seller_list" in q:
            try:
                wanted = json.loads(q["sku_seller_list"])
            except ValueError:
                wanted = None
            # choice: more than 100 seller SKUs is refused with the list's own code
            if (
                not isinstance(wanted, list)
                or not all(isinstance(w, str) for w in wanted)
                or len(wanted) > lz.SELLER_SKUS_MAX
            ):
                return self.error(
                    op, seller, CODE_SKU_LIST, "E070: You have corrupt data in your sku seller list."
                )
            matched = {seller.by_seller_sku[w].item_id for w in wanted if w in seller.by_seller_sku}
            ids = [i for i in ids if i in matched]
        products = [seller.products[i] for i in ids]
        if flt == "all":  # choice: "all" leaves out deleted products
            products = [p for p in products if p.status != "Deleted"]
        elif flt == "sold-out":
            products = [
                p
                for p in products
                if p.status == "Active" and not any(sum(s.stock.values()) for s in p.skus.values())
            ]
        else:
            products = [p for p in products if p.status == STATUS_OF_FILTER[flt]]
        if "update_after" in bounds or "update_before" in bounds:
            after, before = bounds.get("update_after", 0), bounds.get("update_before", 2**62 - 999) + 999
            products = [p for p in products if after <= p.updated <= before]
        page = products[offset : offset + limit]
        self.state.read_pages["lazada"] += 1
        return self.reply(
            op,
            seller,
            {"code": "0", "data": {"total_products": len(products), "products": [p.json() for p in page]}},
        )

    async def stock_update(self, request: web.Request) -> web.Response:
        """UpdateSellableQuantity: absolute sellable quantity per SKU (and warehouse). A request with a
        failing SKU changes nothing (whether Lazada applies the others is not documented: a choice)
        and answers 501 (4170 when every failure is a campaign decrease) with detail[] per SKU."""
        op = "stock_update"
        call = await self.verify(request, op)
        if isinstance(call, web.Response):
            return call
        seller = call.seller
        assert seller is not None
        payload = call.params.get("payload", "")
        if not payload:
            return self.error(op, seller, CODE_EMPTY_REQUEST, "E030: Empty Request")
        parsed = _parse_payload(payload)
        if isinstance(parsed, str):
            return self.error(op, seller, CODE_INVALID_FORMAT, f"E005: Invalid Request Format: {parsed}")
        if not parsed:
            return self.error(op, seller, CODE_EMPTY_REQUEST, "E030: Empty Request")
        if len(parsed) > lz.UPDATE_SKUS_MAX:
            return self.error(op, seller, CODE_TOO_MANY_SKUS, "E204: Too many SKU in one request")
        changes: list[tuple[LzSku, dict[str, int]]] = []
        detail: list[dict[str, str]] = []
        for entry in parsed:
            sku, wanted, problem = self._check(seller, entry)
            if problem is not None:
                code, message = problem
                named = entry.seller_sku or (sku.seller_sku if sku else "")
                detail.append(
                    {"field": "SellableQuantity", "seller_sku": named, "code": code, "message": message}
                )
            elif sku is not None:
                changes.append((sku, wanted))
        if detail:
            code = (
                lz.CODE_CAMPAIGN
                if all(d["code"] == lz.CODE_CAMPAIGN for d in detail)
                else lz.CODE_UPDATE_FAILED
            )
            return self.error(op, seller, code, "Update product failed", detail=detail)
        changed = slots = 0
        now_ms = int(time.time() * 1000)
        for sku, wanted in changes:
            changed += sum(sku.stock[w] != q for w, q in wanted.items())
            slots += len(wanted)
            sku.stock.update(wanted)
            seller.products[sku.item_id].updated_ms = now_ms
        self.state.writes["requests"] += 1
        self.state.writes["slots"] += slots
        self.state.writes["changed"] += changed
        return self.reply(op, seller, {"code": "0", "data": {}}, skus=len(changes))

    @staticmethod
    def _check(
        seller: LzSeller, entry: _SkuEntry
    ) -> tuple[LzSku | None, dict[str, int], tuple[str, str] | None]:
        """The SKU an entry names, the warehouse quantities it sets, or the detail code and message."""
        sku = (
            seller.skus.get(entry.sku_id)
            if entry.sku_id is not None
            else seller.by_seller_sku.get(entry.seller_sku)
        )
        if sku is None or (entry.seller_sku and sku.seller_sku != entry.seller_sku):
            return None, {}, ("SELLER_SKU_INVALID", "The SKU does not exist for this seller")
        if sku.fbl is not None:  # choice of code: lazop-2-0-overview.md says FBL stock cannot be updated
            return (
                sku,
                {},
                ("FBL_STOCK", "Stock in a Lazada warehouse (FBL) cannot be updated through this API"),
            )
        if entry.warehouses is None:
            wanted = {lz.DROPSHIPPING: entry.quantity}  # the single-warehouse form updates dropshipping only
        elif len(seller.warehouses) <= 1:  # choice of code: "otherwise an error may be reported"
            return (
                sku,
                {},
                ("MULTI_WAREHOUSE_FORMAT", "A single-warehouse seller cannot use the multi-warehouse format"),
            )
        else:
            wanted = dict(entry.warehouses)
        for code, quantity in wanted.items():
            if code not in sku.stock:
                return sku, {}, ("WAREHOUSE_INVALID", f"Warehouse {code} does not exist for this seller")
            if quantity < 0:
                return sku, {}, ("QUANTITY_INVALID", "Quantity cannot be negative")
        if seller.increase_only and any(q < sku.stock[w] for w, q in wanted.items()):
            return (
                sku,
                {},
                (
                    lz.CODE_CAMPAIGN,
                    "During the Mega campaign, there are restrictions for stock adjustments in effect. "
                    "Sellers can increase stocks, but may not decrease stocks.",
                ),
            )
        return sku, wanted, None

    async def token_refresh(self, request: web.Request) -> web.Response:
        """RefreshAccessToken: a new access token and a new refresh token; the old refresh token is
        spent (IllegalRefreshToken when used again) and the old access token stops working (no source
        says how long it lives on: a choice)."""
        op = "token_refresh"
        call = await self.verify(request, op, token=False)
        if isinstance(call, web.Response):
            return call
        refresh = call.params.get("refresh_token", "")
        if not refresh:
            return self.error(op, None, lz.CODE_MISSING_PARAMETER, "refresh_token is mandatory")
        seller, used = self.world.by_refresh_token(refresh)
        if seller is None or used:
            return self.error(
                op, seller, lz.CODE_REFRESH_TOKEN, "The specified refresh token is invalid or expired"
            )
        lifetime = seller.lifetime
        seller.retired_access.add(seller.access_token)
        seller.retired_refresh.add(seller.refresh_token)
        seller.access_token = f"LZA{self.state.random.getrandbits(96):024x}"
        seller.refresh_token = f"LZR{self.state.random.getrandbits(96):024x}"
        seller.expire_at = time.time() + lifetime
        return self.reply(
            op,
            seller,
            {
                "code": "0",
                "access_token": seller.access_token,
                "refresh_token": seller.refresh_token,
                "expires_in": lifetime,
                "refresh_expires_in": 180 * 86400,
                "account_platform": "seller_center",
                "country": "sg",
                "country_user_info": [
                    {"country": "sg", "seller_id": seller.seller_id, "user_id": seller.seller_id}
                ],
            },
        )

    # ------------------------------------------------------------------ /_sandbox/lazada/*

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

    async def admin_listing(self, request: web.Request) -> web.Response:
        """Set a sellable quantity by hand, as the seller editing stock in Seller Center would."""
        edit: _Edit = await self._body(request, _Edit)
        seller = self.world.sellers.get(edit.seller)
        sku = seller.by_seller_sku.get(edit.seller_sku) if seller else None
        if seller is None or sku is None or edit.warehouse_code not in sku.stock:
            return json_response({"error": "no such seller / SellerSku / warehouseCode"}, 404)
        sku.stock[edit.warehouse_code] = edit.sellable_quantity
        seller.products[sku.item_id].updated_ms = int(time.time() * 1000)
        return json_response({"ok": True})

    async def admin_seller(self, request: web.Request) -> web.Response:
        """Expire a seller's access token, or start or end an increase-only campaign."""
        change: _Seller = await self._body(request, _Seller)
        seller = self.world.sellers.get(change.seller)
        if seller is None:
            return json_response({"error": f"no Lazada seller {change.seller}"}, 404)
        if change.expired is not None:
            seller.expire_at = time.time() - 1 if change.expired else time.time() + 30 * 86400
        if change.increase_only is not None:
            seller.increase_only = change.increase_only
        return json_response({"ok": True})

    async def admin_log(self, request: web.Request) -> web.Response:
        return json_response({"requests": self.world.log})


@dataclass(frozen=True, slots=True)
class _SkuEntry:
    """One <Sku> of an update payload."""

    sku_id: int | None
    seller_sku: str
    quantity: int  # the single-warehouse form's SellableQuantity
    warehouses: dict[str, int] | None  # the multi-warehouse form: WarehouseCode -> SellableQuantity


def _parse_payload(payload: str) -> list[_SkuEntry] | str:
    """The <Sku> entries of an UpdateSellableQuantity payload, or what is wrong with it."""
    try:
        root = ET.fromstring(payload)
    except ET.ParseError as exc:
        return f"malformed XML ({exc})"
    if root.tag != "Request" or root.find("Product/Skus") is None:
        return "expected <Request><Product><Skus>"
    entries = []
    for sku in root.iterfind("Product/Skus/Sku"):
        sku_id, seller_sku = _int(sku.findtext("SkuId", "")), (sku.findtext("SellerSku") or "").strip()
        if sku_id is None and not seller_sku:
            return "a <Sku> names neither SkuId nor SellerSku"
        multi = sku.find("MultiWarehouseInventories")
        if multi is None:
            quantity = _int(sku.findtext("SellableQuantity", ""), signed=True)
            if quantity is None:
                return f"SKU {seller_sku or sku_id}: SellableQuantity is not an integer"
            entries.append(_SkuEntry(sku_id, seller_sku, quantity, None))
            continue
        warehouses: dict[str, int] = {}
        for inventory in multi.iterfind("MultiWarehouseInventory"):
            code = (inventory.findtext("WarehouseCode") or "").strip()
            quantity = _int(inventory.findtext("SellableQuantity", ""), signed=True)
            if not code or quantity is None or code in warehouses:
                return (
                    f"SKU {seller_sku or sku_id}: each MultiWarehouseInventory needs its own WarehouseCode "
                    "and an integer SellableQuantity"
                )
            warehouses[code] = quantity
        if not warehouses:
            return f"SKU {seller_sku or sku_id}: MultiWarehouseInventories is empty"
        entries.append(_SkuEntry(sku_id, seller_sku, 0, warehouses))
    return entries


def _int(text: str, signed: bool = False) -> int | None:
    text = text.strip()
    digits = text[1:] if signed and text.startswith("-") else text
    return int(text) if digits.isdigit() else None


def _date_ms(text: str) -> int | None:
    """An ISO 8601 date (GetProducts' date parameters) in unix milliseconds."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp()) * 1000


def _fresh(timestamp: str) -> bool:
    """Unix milliseconds or a UTC date, within TIMESTAMP_WINDOW of now (calling-parameters.md)."""
    if timestamp.isdigit():
        seconds = int(timestamp) / 1000
    else:
        ms = _date_ms(timestamp)
        if ms is None:
            return False
        seconds = ms / 1000
    return abs(time.time() - seconds) <= TIMESTAMP_WINDOW
