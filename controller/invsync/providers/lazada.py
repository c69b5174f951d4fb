"""Lazada Open Platform (LazOP) as a sales channel: one seller of one venture.

Every limit and code below is Lazada's published one; docs/platforms.md ("Lazada") names the doc page
of each and marks the choices made where no page says.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from ..engine.records import ChannelWarehouse, Listing, SlotUpdate
from .base import AuthError, PartialReadError, ProviderError, PushOutcome
from .client import Connections, Request, Response
from .tokens import SharedTokens, TokenPair, TokenSink
from .transport import RetryPolicy, Transport, shared_bucket

log = logging.getLogger("invsync.providers.lazada")

PLATFORM = "lazada"
WAREHOUSES_PATH = "/seller/warehouse/get"  # GetMultiWarehouseBySeller
PRODUCTS_PATH = "/products/get"  # GetProducts
UPDATE_PATH = "/product/stock/sellable/update"  # UpdateSellableQuantity
REFRESH_PATH = "/auth/token/refresh"  # RefreshAccessToken
SIGN_METHOD = "sha256"
PAGE_SIZE = 50  # GetProducts: limit, "The maximum is 50" (E019)
OFFSET_MAX = 10_000  # GetProducts: offset is deprecated, "The maximum offset is 10000" (E014)
SELLER_SKUS_MAX = 100  # GetProducts: sku_seller_list, "A maximum of 100 SKUs"
UPDATE_SKUS_MAX = 50  # UpdateSellableQuantity: at most 50 SKUs per request (E204)
UPDATE_SKUS = 20  # ... "but 20 is recommended" (513 advice: 20 or fewer)
REFRESH_BEFORE = 1800  # seller-authorization-introduction: refresh 30 minutes before expiry
RATE_LIMIT_RETRY = 1.0  # 901 / ApiCallLimit: "retry in the next second"
DROPSHIPPING = "dropshipping"  # the warehouse every seller has
FBL_STATUS = "FBL"  # Listing.status of stock held in Lazada's own warehouse: never written

CODE_OK = "0"
CODE_RATE_LIMITED = "901"
CODE_API_CALL_LIMIT = "ApiCallLimit"
CODE_ACCESS_TOKEN = "IllegalAccessToken"  # "The specified access token is invalid or expired"
CODE_REFRESH_TOKEN = "IllegalRefreshToken"
CODE_SIGNATURE = "IncompleteSignature"
CODE_MISSING_PARAMETER = "MissingParameter"
CODE_UPDATE_FAILED = "501"  # an overview code: the detail field names each failed SKU
CODE_CAMPAIGN = "4170"  # Mega campaign: stock may be increased, not decreased
# No public source names these two: the sandbox's choices, recognised here (docs/platforms.md).
CODE_APP_KEY = "InvalidAppKey"
CODE_TIMESTAMP = "InvalidTimestamp"
RATE_CODES = frozenset({CODE_RATE_LIMITED, CODE_API_CALL_LIMIT})
AUTH_CODES = frozenset({CODE_ACCESS_TOKEN, CODE_SIGNATURE, CODE_APP_KEY, CODE_TIMESTAMP})
DETAIL_CODES = frozenset({CODE_UPDATE_FAILED, CODE_CAMPAIGN})

# Production API hosts (api-endpoint-urls.md) refresh tokens at the auth host (RefreshAccessToken);
# any other endpoint (the sandbox) serves both.
AUTH_ENDPOINT = "https://auth.lazada.com/rest"
API_HOSTS = frozenset(
    {
        "api.lazada.sg",
        "api.lazada.co.th",
        "api.lazada.com.my",
        "api.lazada.vn",
        "api.lazada.com.ph",
        "api.lazada.co.id",
    }
)


def sign(app_secret: str, api_path: str, params: Mapping[str, str]) -> str:
    """LazOP's signature: upper-case hex HMAC-SHA256(app_secret, api_path + sorted key+value of every
    parameter but sign); parameters with an empty value are left out, as the official SDKs do."""
    pairs = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")
    message = (api_path + pairs).encode()
    return hmac.new(app_secret.encode(), message, hashlib.sha256).hexdigest().upper()


def iso_time(seconds: int) -> str:
    """GetProducts takes dates in ISO 8601."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))


@dataclass(slots=True)
class Credentials:
    app_key: str
    app_secret: str
    access_token: str
    refresh_token: str = ""
    access_token_expire_in: int = 0  # unix time; 0: unknown (refreshed when Lazada refuses it)


def _rate_limit_hint(response: Response) -> float | None:
    """Lazada answers its rate limit (901, ApiCallLimit) in the envelope: retry it in the next second."""
    if response.status_code == 429 or response.status_code >= 500:
        return None
    try:  # decoded once: the client reads the same envelope
        code = response.json().get("code")
    except (ValueError, AttributeError):
        return None
    return RATE_LIMIT_RETRY if code in RATE_CODES else None


class LazadaChannel:
    """One Lazada seller, identified by its access token, at its venture's API base (…/rest)."""

    def __init__(
        self,
        *,
        store: str,
        endpoint: str,
        credentials: Credentials,
        rate: float,
        burst: int,
        retry: RetryPolicy | None = None,
        connections: Connections | None = None,
        on_refresh: TokenSink | None = None,
    ) -> None:
        self.store = store
        self.endpoint = endpoint.rstrip("/")
        self.creds = replace(credentials)
        host = urlsplit(self.endpoint).hostname or ""
        self.auth_endpoint = AUTH_ENDPOINT if host in API_HOSTS else self.endpoint
        self.transport = Transport(
            PLATFORM,
            secrets=(
                credentials.app_key,
                credentials.app_secret,
                credentials.access_token,
                credentials.refresh_token,
            ),
            limit=shared_bucket(f"{PLATFORM}|{self.endpoint}|{credentials.app_key}|{store}", rate, burst),
            retry=retry,
            connections=connections,
        )
        self._warehouses: list[ChannelWarehouse] | None = None
        self._writes = _Writes(self._update)
        # the refresh token is single-use: every client of the seller must take the new pair
        self.tokens = SharedTokens(
            (PLATFORM, self.endpoint, credentials.app_key, credentials.access_token),
            platform=PLATFORM,
            store=store,
            use=self._use,
            sink=on_refresh,
            redact=self.transport.redactor.redact,
            single_use=True,
        )

    async def aclose(self) -> None:
        await self._writes.aclose()
        await self.transport.aclose()

    def _use(self, pair: TokenPair) -> None:
        self.transport.remember((pair.access_token, pair.refresh_token))
        self.creds.access_token, self.creds.refresh_token = pair.access_token, pair.refresh_token
        self.creds.access_token_expire_in = pair.access_token_expire_in

    def _signed(self, path: str, params: Mapping[str, str], *, token: bool = True) -> dict[str, str]:
        signed = {
            **params,
            "app_key": self.creds.app_key,
            "timestamp": str(int(time.time() * 1000)),
            "sign_method": SIGN_METHOD,
        }
        if token:
            signed["access_token"] = self.creds.access_token
        signed["sign"] = sign(self.creds.app_secret, path, signed)
        return signed

    def _build(self, method: str, path: str, query: Mapping[str, str], form: Mapping[str, str]) -> Request:
        """System parameters in the query; a POST's business parameters (payload) in a form body.
        Both are signed."""
        params = self._signed(path, {**query, **form})
        system = {k: v for k, v in params.items() if k not in form}
        return self.transport.build(
            method, self.endpoint + path, params=system, form=dict(form) if form else None
        )

    def _expiring(self) -> bool:
        expires = self.creds.access_token_expire_in
        return bool(self.creds.refresh_token and expires and time.time() >= expires - REFRESH_BEFORE)

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One API call; returns the envelope (code "0" or a refusal the caller judges) once auth and
        token refresh are dealt with: before expiry when the expiry is known, else on IllegalAccessToken
        (Lazada's code for an expired token too)."""
        await self.tokens.save_pending()
        refreshed = False
        if self._expiring():
            await self.tokens.refresh(self.creds.access_token, self._exchange)
            refreshed = True
        while True:
            response = await self.transport.send(
                operation,
                lambda: self._build(method, path, query or {}, form or {}),
                hint=_rate_limit_hint,
            )
            envelope = self._envelope(operation, response)
            code = envelope["code"]
            if code == CODE_ACCESS_TOKEN and self.creds.refresh_token and not refreshed:
                await self.tokens.refresh(self.creds.access_token, self._exchange)
                refreshed = True
                continue
            if code in AUTH_CODES or response.status_code in (401, 403):
                raise self.transport.error(
                    AuthError,
                    operation,
                    f"refused credentials: {envelope.get('message', '')} (code {code})",
                    code,
                )
            return envelope

    def _envelope(self, operation: str, response: Response) -> dict[str, Any]:
        try:
            envelope = response.json()
        except ValueError:
            raise self.transport.error(
                ProviderError, operation, f"HTTP {response.status_code}: response is not JSON"
            ) from None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("code"), str):
            raise self.transport.error(
                ProviderError, operation, f"HTTP {response.status_code}: answer without an envelope code"
            )
        return envelope

    def _refusal(self, operation: str, envelope: Mapping[str, Any]) -> ProviderError:
        code = str(envelope.get("code"))
        message = f"{envelope.get('message', '')} (code {code}, {envelope.get('type', 'ISV')})"
        return self.transport.error(ProviderError, operation, message, code)

    async def _exchange(self) -> TokenPair:
        url = self.auth_endpoint + REFRESH_PATH
        form = {"refresh_token": self.creds.refresh_token}

        def build() -> Request:
            params = self._signed(REFRESH_PATH, form, token=False)
            return self.transport.build("POST", url, form=params)

        response = await self.transport.send("token_refresh", build, hint=_rate_limit_hint)
        envelope = self._envelope("token_refresh", response)
        token, new_refresh = envelope.get("access_token"), envelope.get("refresh_token")
        if envelope["code"] != CODE_OK or not isinstance(token, str) or not token:
            raise self.transport.error(
                AuthError,
                "token_refresh",
                f"the refresh token was refused: {envelope.get('message', '')} (code {envelope['code']})",
                envelope["code"],
            )
        new_refresh = (
            new_refresh if isinstance(new_refresh, str) and new_refresh else self.creds.refresh_token
        )
        self.transport.remember((token, new_refresh))  # before either can reach a log line
        expires_in = envelope.get("expires_in")
        expires = int(time.time()) + expires_in if isinstance(expires_in, int) and expires_in > 0 else 0
        log.info("lazada store %s: access token refreshed", self.store)
        return TokenPair(token, new_refresh, expires)

    async def list_warehouses(self) -> list[ChannelWarehouse]:
        """GetMultiWarehouseBySeller with addressTypes ["warehouse"] (the docs' way to tell a
        multi-warehouse seller: more than one module)."""
        envelope = await self._call(
            "warehouses", "GET", WAREHOUSES_PATH, {"addressTypes": json.dumps(["warehouse"])}
        )
        result = envelope.get("result")
        if envelope["code"] != CODE_OK or not isinstance(result, dict) or not result.get("success", True):
            raise self._refusal("warehouses", envelope)
        self._warehouses = [
            ChannelWarehouse(
                id=str(w["code"]),
                name=str(w.get("name", "")),
                effect_status="ENABLED" if w.get("status", "ACTIVE") == "ACTIVE" else "DISABLED",
                is_default=bool(w.get("defaultAddress", False)),
            )
            for w in result.get("module") or []
            if isinstance(w, dict) and w.get("code")
        ]
        return list(self._warehouses)

    async def _warehouse_codes(self) -> list[str]:
        if self._warehouses is None:
            await self.list_warehouses()
        assert self._warehouses is not None
        return [w.id for w in self._warehouses]

    async def list_listings(self, seller_skus: Collection[str] | None = None) -> list[Listing]:
        """Every slot of the seller (a slot per SKU and warehouse: a warehouse that
        multiWarehouseInventories leaves out holds 0), or of these seller SKUs (sku_seller_list, 100
        per read).

        A full read goes by created-time windows, halved until each holds at most OFFSET_MAX products
        (paging deeper is refused). Created time, unlike updated time, does not move when stock
        changes mid-read, so no product slips out of its window. All or nothing: a failed page after
        the first, or a window whose count differs from its total_products, raises PartialReadError.
        """
        codes = await self._warehouse_codes()
        read = _Read()
        if seller_skus is not None:
            wanted = sorted(set(seller_skus))
            for i in range(0, len(wanted), SELLER_SKUS_MAX):
                chunk = {"sku_seller_list": json.dumps(wanted[i : i + SELLER_SKUS_MAX])}
                if not await self._read(read, chunk, codes):
                    raise self.transport.error(
                        PartialReadError, "products_get", "a read by seller SKUs matched too many products"
                    )
            keep = set(wanted)
            return [x for x in read.listings if x.sku in keep]  # a product's other SKUs were not asked for
        now = int(time.time())
        windows: list[tuple[int, int] | None] = [None]  # the whole seller first: most fit in one read
        while windows:
            window = windows.pop()
            query = (
                {}
                if window is None
                else {"create_after": iso_time(window[0]), "create_before": iso_time(window[1])}
            )
            if await self._read(read, query, codes):
                continue
            lo, hi = window or (0, now)
            if lo >= hi:
                raise self.transport.error(
                    PartialReadError,
                    "products_get",
                    f"more than {OFFSET_MAX} products created at {iso_time(lo)}: GetProducts pages no deeper",
                )
            mid = (lo + hi) // 2
            windows += [(mid + 1, hi), (lo, mid)]
        return read.listings

    async def _read(self, read: _Read, query: Mapping[str, str], codes: Sequence[str]) -> bool:
        """Every page of one GetProducts query into `read`; False (nothing kept) when it matches more
        products than offset paging reaches."""
        offset = 0
        listings: list[Listing] = []
        seen: set[str] = set()
        total: int | None = None
        while True:
            params = {"filter": "all", "limit": str(PAGE_SIZE), "offset": str(offset), **query}
            try:
                envelope = await self._call("products_get", "GET", PRODUCTS_PATH, params)
                if envelope["code"] != CODE_OK:
                    raise self._refusal("products_get", envelope)
            except ProviderError as exc:
                if read.pages == 0:
                    raise
                raise self.transport.error(
                    PartialReadError, "products_get", f"page {read.pages + 1} failed, nothing read: {exc}"
                ) from exc
            data = envelope.get("data") or {}
            read.pages += 1
            if total is None:
                total = data.get("total_products") if isinstance(data.get("total_products"), int) else None
                if total is not None and total > OFFSET_MAX:
                    return False
            products = data.get("products") or []
            for product in products:
                seen.add(str(product.get("item_id")))
                listings += self._slots(product, codes)
            offset += len(products)
            if len(products) < PAGE_SIZE or (total is not None and offset >= total):
                break
        if total is not None and len(seen) != total:
            raise self.transport.error(
                PartialReadError, "products_get", f"read {len(seen)} products but Lazada reports {total}"
            )
        read.listings += listings
        return True

    def _slots(self, product: Mapping[str, Any], codes: Sequence[str]) -> list[Listing]:
        status = str(product.get("status", ""))
        slots = []
        for sku in product.get("skus") or []:
            held = {
                str(w["warehouseCode"]): int(w.get("sellableQuantity", 0))
                for w in sku.get("multiWarehouseInventories") or []
                if isinstance(w, dict) and w.get("warehouseCode")
            }
            fbl = bool(sku.get("fblWarehouseInventories"))
            for code in [*codes, *(c for c in held if c not in codes)]:
                slots.append(
                    Listing(
                        store=self.store,
                        sku=str(sku.get("SellerSku", "")),
                        product_id=str(product["item_id"]),
                        sku_id=str(sku["SkuId"]),
                        channel_warehouse_id=code,
                        quantity=held.get(code, 0),
                        status=FBL_STATUS if fbl else status,
                        writable=not fbl,
                    )
                )
        return slots

    async def push(self, product_id: str, updates: Sequence[SlotUpdate]) -> list[PushOutcome]:
        """Absolute sellable quantities, UPDATE_SKUS SKUs per UpdateSellableQuantity request.

        Lazada takes SKUs of different products in one request, and the operator pushes product by
        product, several at once: the SKUs of pushes waiting together share requests (_Writes), so a
        seller of one-SKU products is not written one request per SKU. Lazada takes each warehouse of
        a SKU on its own, so slots carried at a value read earlier are
        not sent (a stale value would undo a sale made since). A single-warehouse seller gets the
        single-warehouse form (the multi-warehouse one is refused). A 501 fails the SKUs its detail
        names; whether Lazada applied the others is not documented, so they are sent once more
        without the named ones (an absolute write repeated changes nothing). Auth, rate-limit and
        availability problems raise.
        """
        sent = [u for u in updates if not u.carried]
        outcomes = [
            PushOutcome(u, True, "not sent: Lazada updates each warehouse on its own")
            for u in updates
            if u.carried
        ]
        if not sent:
            return outcomes
        codes = await self._warehouse_codes()
        single = len(codes) <= 1
        by_sku: dict[str, list[SlotUpdate]] = {}
        for u in sent:
            if single and u.channel_warehouse_id not in codes:
                message = (
                    f"the seller has one warehouse ({', '.join(codes) or 'none'}); Lazada takes no stock for "
                    f"warehouse {u.channel_warehouse_id}"
                )
                outcomes.append(PushOutcome(u, False, message))
                continue
            by_sku.setdefault(u.sku_id, []).append(u)
        for answered in await asyncio.gather(
            *(self._writes.submit(group, single) for group in by_sku.values())
        ):
            outcomes += answered
        return outcomes

    async def _update(self, groups: list[Group], single: bool) -> list[PushOutcome]:
        outcomes: list[PushOutcome] = []
        for attempt in range(2):
            envelope = await self._call(
                "stock_update", "POST", UPDATE_PATH, form={"payload": _payload(groups, single)}
            )
            code = envelope["code"]
            if code == CODE_OK:
                return outcomes + [PushOutcome(u, True) for g in groups for u in g]
            message = self.transport.redactor.redact(f"{envelope.get('message', '')} (code {code})")
            failed = _failed_skus(envelope) if code in DETAIL_CODES else None
            if failed is None:  # a refusal of the whole request, or a detail naming no SKU
                return outcomes + [PushOutcome(u, False, message) for g in groups for u in g]
            for g in groups:
                why = failed.get(g[0].sku)
                if why is not None:
                    text = self.transport.redactor.redact(f"{why} ({message})")
                    outcomes += [PushOutcome(u, False, text) for u in g]
            groups = [g for g in groups if g[0].sku not in failed]
            if not groups:
                return outcomes
            if attempt == 1:
                unconfirmed = (
                    f"Lazada answered {code} without naming this SKU twice; the next sync sends it again"
                )
                outcomes += [PushOutcome(u, False, unconfirmed) for g in groups for u in g]
        return outcomes


Group = list[SlotUpdate]  # the slots of one SKU: they go in one <Sku>


class _Writes:
    """SKUs waiting to be written, sent UPDATE_SKUS per request by at most SENDERS requests in flight.

    A SKU submitted while every sender is busy (waiting for the rate limit or Lazada) joins the next
    request, whichever product it belongs to; with nothing in flight it goes at once. Each submitter
    gets its SKU's outcomes, or the error that failed its request.
    """

    SENDERS = 4

    def __init__(self, send: Callable[[list[Group], bool], Awaitable[list[PushOutcome]]]) -> None:
        self._send = send
        self._waiting: deque[tuple[Group, bool, asyncio.Future[list[PushOutcome]]]] = deque()
        self._senders: set[asyncio.Task[None]] = set()

    async def submit(self, group: Group, single: bool) -> list[PushOutcome]:
        answer: asyncio.Future[list[PushOutcome]] = asyncio.get_running_loop().create_future()
        self._waiting.append((group, single, answer))
        if len(self._senders) < self.SENDERS:
            task = asyncio.create_task(self._drain())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)
        return await answer

    async def _drain(self) -> None:
        while self._waiting:
            single = self._waiting[0][1]
            batch: list[tuple[Group, bool, asyncio.Future[list[PushOutcome]]]] = []
            while self._waiting and len(batch) < UPDATE_SKUS and self._waiting[0][1] == single:
                batch.append(self._waiting.popleft())
            batch = [b for b in batch if not b[2].done()]  # a submitter cancelled meanwhile
            if not batch:
                continue
            try:
                outcomes = await self._send([group for group, _, _ in batch], single)
            except asyncio.CancelledError:
                for _, _, answer in batch:
                    answer.cancel()
                raise
            except Exception as exc:
                for _, _, answer in batch:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            by_slot = {(o.update.sku_id, o.update.channel_warehouse_id): o for o in outcomes}
            for group, _, answer in batch:
                if not answer.done():
                    answer.set_result([by_slot[(u.sku_id, u.channel_warehouse_id)] for u in group])

    async def aclose(self) -> None:
        for task in list(self._senders):
            task.cancel()
        await asyncio.gather(*self._senders, return_exceptions=True)


@dataclass(slots=True)
class _Read:
    """What one all-or-nothing listing read has gathered so far."""

    listings: list[Listing] = field(default_factory=list)
    pages: int = 0


def _payload(groups: Sequence[Sequence[SlotUpdate]], single: bool) -> str:
    """UpdateSellableQuantity's XML: one <Sku> per SKU, in the single-warehouse form or with one
    <MultiWarehouseInventory> per warehouse."""
    root = ET.Element("Request")
    skus = ET.SubElement(ET.SubElement(root, "Product"), "Skus")
    for group in groups:
        first = group[0]
        sku = ET.SubElement(skus, "Sku")
        ET.SubElement(sku, "ItemId").text = first.product_id
        ET.SubElement(sku, "SkuId").text = first.sku_id
        ET.SubElement(sku, "SellerSku").text = first.sku
        if single:
            ET.SubElement(sku, "SellableQuantity").text = str(first.quantity)
            continue
        inventories = ET.SubElement(sku, "MultiWarehouseInventories")
        for u in group:
            inventory = ET.SubElement(inventories, "MultiWarehouseInventory")
            ET.SubElement(inventory, "WarehouseCode").text = u.channel_warehouse_id
            ET.SubElement(inventory, "SellableQuantity").text = str(u.quantity)
    return ET.tostring(root, encoding="unicode")


def _failed_skus(envelope: Mapping[str, Any]) -> dict[str, str] | None:
    """Seller SKU -> message of each ``detail[]`` entry; None when an entry names no SKU (then
    nothing can be attributed)."""
    detail = envelope.get("detail")
    if not isinstance(detail, list) or not detail:
        return None
    failed: dict[str, str] = {}
    for entry in detail:
        sku = entry.get("seller_sku") if isinstance(entry, dict) else None
        if not isinstance(sku, str) or not sku:
            return None
        code = entry.get("code")
        text = str(entry.get("message", ""))
        failed[sku] = f"{text} (code {code})" if code else text
    return failed
