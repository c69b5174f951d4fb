"""TikTok Shop Open API 202309 as a sales channel.

Every limit and code below is TikTok's published one; docs/platforms.md names the doc page of each
and marks the few choices made where no page says.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from sys import intern
from typing import Any
from urllib.parse import urlsplit

import msgspec
import orjson

from ..engine.records import ChannelWarehouse, Listing, SlotUpdate
from .base import AuthError, MultiWarehouseRefusedError, PartialReadError, ProviderError, PushOutcome
from .client import Connections, Request, Response
from .tokens import SharedTokens, TokenPair, TokenSink
from .transport import RetryPolicy, Transport, shared_bucket

log = logging.getLogger("invsync.providers.tiktok")

PLATFORM = "tiktok"
VERSION = "202309"
WAREHOUSES_PATH = f"/logistics/{VERSION}/warehouses"
SEARCH_PATH = f"/product/{VERSION}/products/search"
INVENTORY_SEARCH_PATH = f"/product/{VERSION}/inventory/search"
UPDATE_PATH = f"/product/{VERSION}/products/{{product_id}}/inventory/update"
REFRESH_PATH = "/api/v2/token/refresh"
PAGE_SIZE = 100  # search-products: page_size [1-100]
SELLER_SKUS_MAX = 10  # search-products: seller_skus per search (12019027)
SEARCH_RESULTS_MAX = 10_000  # search-products: results of one search (12052180)
INVENTORY_SKUS_MAX = 600  # inventory-search: sku_ids per request
WRITABLE_STATUS = "ACTIVATE"  # update-inventory: only products in this status take updates
REFRESH_BEFORE = 86_400  # refresh an access token (7-day lifetime) once less than a day is left

CODE_OK = 0
CODE_RATE_LIMITED = 36009002
CODE_TOKEN_EXPIRED = 105002
CODE_SIGN_INVALID = 106001
CODE_CREDENTIALS_INVALID = 36009004  # app_key, token or timestamp invalid, signature missing
CODE_SCOPE_DENIED = 105005
CODE_MULTI_WAREHOUSE_REFUSED = 12052094
CODE_WAREHOUSES_INCOMPLETE = 12019028
CODE_SELLER_SKUS_MAX = 12019027
CODE_SEARCH_RESULTS_MAX = 12052180
AUTH_CODES = frozenset({CODE_TOKEN_EXPIRED, CODE_SIGN_INVALID, CODE_CREDENTIALS_INVALID, CODE_SCOPE_DENIED})

# The production auth host differs from the API host; any other endpoint (the sandbox) serves both.
AUTH_HOSTS = {"open-api.tiktokglobalshop.com": "https://auth.tiktok-shops.com"}
SIGN_EXCLUDED = frozenset({"sign", "access_token"})


def sign(app_secret: str, path: str, params: Mapping[str, str], body: bytes = b"") -> str:
    """TikTok's request signature: HMAC-SHA256(app_secret, secret + path + sorted k+v + body + secret)."""
    pairs = "".join(f"{k}{params[k]}" for k in sorted(params) if k not in SIGN_EXCLUDED)
    message = app_secret.encode() + path.encode() + pairs.encode() + body + app_secret.encode()
    return hmac.new(app_secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass(slots=True)
class Credentials:
    app_key: str
    app_secret: str
    access_token: str
    refresh_token: str = ""
    access_token_expire_in: int = 0  # unix time; 0: unknown (refreshed only once TikTok says expired)


class _Envelope(msgspec.Struct, gc=False):
    """Every answer's envelope; `data` is decoded by the operation that knows its shape."""

    code: int
    message: str = ""
    data: msgspec.Raw = msgspec.Raw(b"null")


# search-products' data, decoded straight into structs: no dict per product, nothing for the cyclic
# collector to scan (a page is a tree), a third less CPU than orjson's dicts plus reading them
# (bench/bench_read.py). Fields the operator does not read are skipped.
class _Slot(msgspec.Struct, gc=False):
    warehouse_id: str
    quantity: int = 0


class _Sku(msgspec.Struct, gc=False):
    id: str
    seller_sku: str | None = None
    inventory: list[_Slot] = []


class _Product(msgspec.Struct, gc=False):
    id: str
    status: str | None = None
    skus: list[_Sku] = []


class _SearchPage(msgspec.Struct, gc=False):
    products: list[_Product] = []
    next_page_token: str | None = None
    total_count: int | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_SEARCH_PAGE = msgspec.json.Decoder(_SearchPage | None)


def _envelope(response: Response) -> _Envelope | None:
    """The answer's envelope, decoded once (the rate-limit hint reads it first); None when the answer
    is not one (not JSON, or no integer code)."""
    try:
        return response.decoded(_ENVELOPE)
    except msgspec.DecodeError:
        return None


def _plain_data(envelope: _Envelope) -> dict[str, Any]:
    """`data` of an answer read field by field (few per sync): a dict, {} when null or not an object."""
    data = orjson.loads(memoryview(envelope.data))
    return data if isinstance(data, dict) else {}


def _rate_limit_hint(response: Response) -> float | None:
    """TikTok may report its rate limit in the envelope of a non-429 answer; retry it like a 429."""
    if response.status_code == 429 or response.status_code >= 500:
        return None
    envelope = _envelope(response)
    return 0.0 if envelope is not None and envelope.code == CODE_RATE_LIMITED else None


class TikTokChannel:
    """One TikTok shop, identified by its shop_cipher."""

    def __init__(
        self,
        *,
        store: str,
        endpoint: str,
        shop_cipher: str,
        credentials: Credentials,
        rate: float,
        burst: int,
        retry: RetryPolicy | None = None,
        connections: Connections | None = None,
        on_refresh: TokenSink | None = None,
    ) -> None:
        self.store = store
        self.endpoint = endpoint.rstrip("/")
        self.shop_cipher = shop_cipher
        self.creds = replace(credentials)
        host = urlsplit(self.endpoint).hostname or ""
        self.auth_endpoint = AUTH_HOSTS.get(host, self.endpoint)
        self.transport = Transport(
            PLATFORM,
            secrets=(
                credentials.app_key,
                credentials.app_secret,
                credentials.access_token,
                credentials.refresh_token,
            ),
            limit=shared_bucket(f"{self.endpoint}|{shop_cipher}", rate, burst),
            retry=retry,
            connections=connections,
        )
        self.tokens = SharedTokens(
            (PLATFORM, self.endpoint, shop_cipher, credentials.access_token),
            platform=PLATFORM,
            store=store,
            use=self._use,
            sink=on_refresh,
            redact=self.transport.redactor.redact,
            single_use=False,
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _use(self, pair: TokenPair) -> None:
        """Take a refreshed pair (this client's or another client's of the shop); its errors hide it."""
        self.transport.remember((pair.access_token, pair.refresh_token))
        self.creds.access_token, self.creds.refresh_token = pair.access_token, pair.refresh_token
        self.creds.access_token_expire_in = pair.access_token_expire_in

    def _build(self, method: str, path: str, query: Mapping[str, str], payload: Any) -> Request:
        params = {
            **query,
            "app_key": self.creds.app_key,
            "shop_cipher": self.shop_cipher,
            "timestamp": str(int(time.time())),
        }
        body = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else b""
        params["sign"] = sign(self.creds.app_secret, path, params, body)
        return self.transport.build(
            method,
            self.endpoint + path,
            params=params,
            content=body or None,
            headers={"x-tts-access-token": self.creds.access_token, "content-type": "application/json"},
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
        payload: Any = None,
    ) -> _Envelope:
        """One API call; returns the envelope (code 0 or a refusal the caller judges) after auth and
        token refresh are dealt with: before expiry when the expiry is known, else on 105002."""
        await self.tokens.save_pending()
        refreshed = False
        if self._expiring():
            await self.tokens.refresh(self.creds.access_token, self._exchange)
            refreshed = True
        while True:
            response = await self.transport.send(
                operation, lambda: self._build(method, path, query or {}, payload), hint=_rate_limit_hint
            )
            envelope = _envelope(response)
            if envelope is None:
                raise self.transport.error(
                    ProviderError,
                    operation,
                    f"HTTP {response.status_code}: not a TikTok answer (a JSON object with an integer code)",
                )
            code = envelope.code
            if code == CODE_TOKEN_EXPIRED and self.creds.refresh_token and not refreshed:
                await self.tokens.refresh(self.creds.access_token, self._exchange)
                refreshed = True
                continue
            if code in AUTH_CODES or response.status_code in (401, 403):
                raise self.transport.error(
                    AuthError,
                    operation,
                    f"refused credentials: {envelope.message} (code {code})",
                    str(code),
                )
            return envelope

    async def _exchange(self) -> TokenPair:
        params = {
            "app_key": self.creds.app_key,
            "app_secret": self.creds.app_secret,
            "refresh_token": self.creds.refresh_token,
            "grant_type": "refresh_token",
        }
        url = self.auth_endpoint + REFRESH_PATH
        response = await self.transport.send(
            "token_refresh", lambda: self.transport.build("GET", url, params=params)
        )
        try:
            envelope = response.json()
            data = envelope["data"] if envelope.get("code") == CODE_OK else None
            token = data["access_token"] if isinstance(data, dict) else None
        except (ValueError, KeyError, TypeError, AttributeError):
            token = None
        if not isinstance(data, dict) or not isinstance(token, str) or not token:
            raise self.transport.error(
                AuthError, "token_refresh", f"the refresh token was refused (HTTP {response.status_code})"
            )
        new_refresh = data.get("refresh_token")
        new_refresh = (
            new_refresh if isinstance(new_refresh, str) and new_refresh else self.creds.refresh_token
        )
        expires = data.get("access_token_expire_in")
        self.transport.remember((token, new_refresh))  # before either can reach a log line
        log.info("tiktok store %s: access token refreshed", self.store)
        return TokenPair(token, new_refresh, expires if isinstance(expires, int) else 0)

    async def list_warehouses(self) -> list[ChannelWarehouse]:
        envelope = await self._call("warehouses", "GET", WAREHOUSES_PATH)
        self._expect_ok("warehouses", envelope)
        data = _plain_data(envelope)
        return [
            ChannelWarehouse(
                id=str(w["id"]),
                name=str(w.get("name", "")),
                type=str(w.get("type", "")),
                effect_status=str(w.get("effect_status", "ENABLED")),
                is_default=bool(w.get("is_default", False)),
            )
            for w in data.get("warehouses") or []
        ]

    def _expect_ok(self, operation: str, envelope: _Envelope) -> None:
        code = envelope.code
        if code != CODE_OK:
            raise self.transport.error(
                ProviderError, operation, f"{envelope.message} (code {code})", str(code)
            )

    async def list_listings(self, seller_skus: Collection[str] | None = None) -> list[Listing]:
        """Every slot of the shop, or of these seller SKUs only (searched 10 at a time).

        A shop with more products than one search returns is read in create_time windows, halved
        until each fits. All or nothing: a page failing after the first raises PartialReadError,
        as does a window whose product count differs from its total_count.
        """
        read = _Read()
        if seller_skus is not None:
            wanted = sorted(set(seller_skus))
            for i in range(0, len(wanted), SELLER_SKUS_MAX):
                if not await self._search(read, {"seller_skus": wanted[i : i + SELLER_SKUS_MAX]}):
                    raise self.transport.error(
                        PartialReadError,
                        "products_search",
                        "a search by seller SKUs matched too many products",
                    )
            keep = set(wanted)
            return [x for x in read.listings if x.sku in keep]  # a product's other SKUs were not asked for
        windows: list[dict[str, int]] = [{}]  # the whole shop first: most shops fit in one search
        now = int(time.time())
        while windows:
            window = windows.pop()
            if await self._search(read, window):
                continue
            lo, hi = window.get("create_time_ge", 0), window.get("create_time_le", now)
            if lo >= hi:
                raise self.transport.error(
                    PartialReadError,
                    "products_search",
                    f"more than {SEARCH_RESULTS_MAX} products created at {lo}: the search cannot list them",
                )
            mid = (lo + hi) // 2
            windows += [
                {"create_time_ge": mid + 1, "create_time_le": hi},
                {"create_time_ge": lo, "create_time_le": mid},
            ]
        return read.listings

    async def _search(self, read: _Read, body: dict[str, Any]) -> bool:
        """Read every page of one search into `read`; False (nothing kept) when the search matches
        more products than one search returns."""
        token = ""
        listings: list[Listing] = []
        products = 0
        total: int | None = None
        while True:
            query = {"page_size": str(PAGE_SIZE)} | ({"page_token": token} if token else {})
            try:
                envelope = await self._call("products_search", "POST", SEARCH_PATH, query, body)
                if envelope.code == CODE_SEARCH_RESULTS_MAX and not token:
                    return False
                self._expect_ok("products_search", envelope)
                page = _SEARCH_PAGE.decode(envelope.data) or _SearchPage()
            except msgspec.ValidationError as exc:
                raise self.transport.error(
                    PartialReadError if read.pages else ProviderError,
                    "products_search",
                    f"page {read.pages + 1} is malformed ({exc}), nothing read",
                ) from None
            except ProviderError as exc:
                if read.pages == 0:
                    raise
                raise self.transport.error(
                    PartialReadError, "products_search", f"page {read.pages + 1} failed, nothing read: {exc}"
                ) from exc
            read.pages += 1
            if total is None and page.total_count is not None:
                total = page.total_count
                if total > SEARCH_RESULTS_MAX:
                    return False
            for product in page.products:
                products += 1
                listings += self._slots(product)
            token = page.next_page_token or ""
            if not token:
                break
        if total is not None and products != total:
            raise self.transport.error(
                PartialReadError, "products_search", f"read {products} products but the shop reports {total}"
            )
        read.listings += listings
        return True

    def _slots(self, product: _Product) -> list[Listing]:
        """A product's slots. Warehouse ids and statuses repeat on every slot, seller SKUs on every
        shop and in the sources: interned, each is held once (the read is kept between syncs)."""
        status = intern(product.status or "")
        writable = status == WRITABLE_STATUS
        product_id = product.id
        store = self.store
        found: list[Listing] = []
        for sku in product.skus:
            seller_sku, sku_id = intern(sku.seller_sku or ""), sku.id
            for slot in sku.inventory:
                found.append(
                    Listing(
                        store,
                        seller_sku,
                        product_id,
                        sku_id,
                        intern(slot.warehouse_id),
                        slot.quantity,
                        status,
                        writable,
                    )
                )
        return found

    async def _live_inventory(self, sku_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """sku id -> warehouse id -> available quantity, as TikTok holds it now."""
        live: dict[str, dict[str, int]] = {}
        for i in range(0, len(sku_ids), INVENTORY_SKUS_MAX):
            body = {"sku_ids": list(sku_ids[i : i + INVENTORY_SKUS_MAX])}
            envelope = await self._call("inventory_search", "POST", INVENTORY_SEARCH_PATH, None, body)
            self._expect_ok("inventory_search", envelope)
            for product in _plain_data(envelope).get("inventory") or []:
                for sku in product.get("skus", []) or []:
                    live[str(sku["id"])] = {
                        str(w["warehouse_id"]): int(w.get("available_quantity", 0))
                        for w in sku.get("warehouse_inventory", []) or []
                    }
        return live

    async def push(self, product_id: str, updates: Sequence[SlotUpdate]) -> list[PushOutcome]:
        """One inventory update for the product, each SKU with every warehouse TikTok assigns it.

        Carried slots (sent only because TikTok takes a SKU's warehouses together) are re-read just
        before the write and sent at the value TikTok holds now, so a value read minutes ago cannot
        undo a sale made since (docs/platforms.md, "Every warehouse of a SKU"). ``data.errors[]``
        fail only the SKUs they name; a refusal of the whole request fails every slot; auth,
        rate-limit and availability problems raise (nothing is known about the slots then).
        """
        if not updates:
            return []
        by_sku: dict[str, list[SlotUpdate]] = {}
        for u in updates:
            by_sku.setdefault(u.sku_id, []).append(u)
        outcomes: list[PushOutcome] = []
        carried = [sku_id for sku_id, group in by_sku.items() if any(u.carried for u in group)]
        if carried:
            try:
                live = await self._live_inventory(carried)
            except ProviderError as exc:
                if type(exc) is not ProviderError:  # auth, rate limit, availability: raise as documented
                    raise
                return [PushOutcome(u, False, f"re-read before the write failed: {exc}") for u in updates]
            for sku_id in carried:
                group, now = by_sku[sku_id], live.get(sku_id, {})
                if set(now) != {u.channel_warehouse_id for u in group}:
                    del by_sku[sku_id]
                    message = (
                        f"the SKU's warehouses changed since the read (now {sorted(now) or 'none'}); "
                        "not written, the next sync reads it again"
                    )
                    outcomes += [PushOutcome(u, False, message) for u in group]
                    continue
                by_sku[sku_id] = [
                    msgspec.structs.replace(u, quantity=now[u.channel_warehouse_id]) if u.carried else u
                    for u in group
                ]
        if not by_sku:
            return outcomes
        return outcomes + await self._update(product_id, by_sku)

    async def _update(self, product_id: str, by_sku: dict[str, list[SlotUpdate]]) -> list[PushOutcome]:
        sent = [u for group in by_sku.values() for u in group]
        payload = {
            "skus": [
                {
                    "id": sku_id,
                    "inventory": [
                        {"warehouse_id": u.channel_warehouse_id, "quantity": u.quantity} for u in group
                    ],
                }
                for sku_id, group in by_sku.items()
            ]
        }
        path = UPDATE_PATH.format(product_id=product_id)
        envelope = await self._call("inventory_update", "POST", path, None, payload)
        code = envelope.code
        message = self.transport.redactor.redact(envelope.message)
        if code == CODE_MULTI_WAREHOUSE_REFUSED:
            raise MultiWarehouseRefusedError(
                f"tiktok store {self.store}: the shop has no multi-warehouse permission (code {code}), so "
                "TikTok takes stock for its default warehouse only; ask TikTok Shop to enable multiple "
                "warehouses for the shop, or map only the default warehouse in the Store",
                platform=PLATFORM,
                operation="inventory_update",
                code=str(code),
            )
        if code != CODE_OK:
            return [PushOutcome(u, False, f"{message} (code {code})") for u in sent]
        errors = _plain_data(envelope).get("errors") or []
        failed = {sku_id: self.transport.redactor.redact(text) for sku_id, text in _sku_errors(errors)}
        if "" in failed:  # an error naming no SKU cannot be attributed: every slot is in doubt
            return [PushOutcome(u, False, failed[""]) for u in sent]
        return [PushOutcome(u, u.sku_id not in failed, failed.get(u.sku_id, "")) for u in sent]


@dataclass(slots=True)
class _Read:
    """What one all-or-nothing listing read has gathered so far."""

    listings: list[Listing] = field(default_factory=list)
    pages: int = 0


def _sku_errors(errors: Sequence[Any]) -> Iterator[tuple[str, str]]:
    """(sku id, message) per ``data.errors[]`` entry, its per-warehouse ``extra_errors`` included."""
    for err in errors:
        if not isinstance(err, dict):
            yield "", str(err)
            continue
        detail = err.get("detail") or {}
        parts = [f"{err.get('message', '')} (code {err.get('code')})"]
        parts += [
            f"warehouse {x.get('warehouse_id', '?')}: {x.get('message', '')} (code {x.get('code')})"
            for x in detail.get("extra_errors") or []
            if isinstance(x, dict)
        ]
        yield str(detail.get("sku_id", "")), "; ".join(parts)
