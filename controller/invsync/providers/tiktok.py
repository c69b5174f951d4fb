"""TikTok Shop Open API 202309 as a sales channel.

Codes used here (the sandbox answers with the same ones):
- 36009002 rate limited (HTTP 429), 105002 access token expired (refreshable), 105001 access token
  invalid, 106001 sign invalid (both HTTP 401) are TikTok's published codes.
- 106002 timestamp outside the 5-minute window and 12052900 "multi-warehouse inventory is not
  enabled for this shop" are our choice: TikTok documents the behaviour but we found no public code.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..engine.records import ChannelWarehouse, Listing, SlotUpdate
from .base import AuthError, MultiWarehouseRefusedError, PartialReadError, ProviderError, PushOutcome
from .transport import SECRETS, RetryPolicy, Transport, redact, shared_bucket

log = logging.getLogger("invsync.providers.tiktok")

PLATFORM = "tiktok"
VERSION = "202309"
WAREHOUSES_PATH = f"/logistics/{VERSION}/warehouses"
SEARCH_PATH = f"/product/{VERSION}/products/search"
UPDATE_PATH = f"/product/{VERSION}/products/{{product_id}}/inventory/update"
REFRESH_PATH = "/api/v2/token/refresh"
PAGE_SIZE = 100
SKU_FILTER_MAX = 100  # seller_skus per products search

CODE_OK = 0
CODE_RATE_LIMITED = 36009002
CODE_TOKEN_EXPIRED = 105002
CODE_TOKEN_INVALID = 105001
CODE_SIGN_INVALID = 106001
CODE_TIMESTAMP_INVALID = 106002
CODE_MULTI_WAREHOUSE_REFUSED = 12052900
AUTH_CODES = frozenset({CODE_TOKEN_EXPIRED, CODE_TOKEN_INVALID, CODE_SIGN_INVALID, CODE_TIMESTAMP_INVALID})

# The production auth host differs from the API host; any other endpoint (the sandbox) serves both.
AUTH_HOSTS = {"open-api.tiktokglobalshop.com": "https://auth.tiktok-shops.com"}
SIGN_EXCLUDED = frozenset({"sign", "access_token"})


def sign(app_secret: str, path: str, params: Mapping[str, str], body: bytes = b"") -> str:
    """TikTok's request signature: HMAC-SHA256(app_secret, secret + path + sorted k+v + body + secret)."""
    pairs = "".join(f"{k}{params[k]}" for k in sorted(params) if k not in SIGN_EXCLUDED)
    message = app_secret.encode() + path.encode() + pairs.encode() + body + app_secret.encode()
    return hmac.new(app_secret.encode(), message, hashlib.sha256).hexdigest()


# The newest refreshed (access, refresh) token pair of a shop, by (endpoint, shop cipher, the Secret's
# access token). A refresh replaces the shop's previous token, so clients of one shop (two rules on a
# Store) that each refreshed on their own would keep expiring each other's token.
_REFRESHED: dict[tuple[str, str, str], tuple[str, str]] = {}
_REFRESH_LOCKS: dict[tuple[int, tuple[str, str, str]], asyncio.Lock] = {}  # by event loop, then key


@dataclass(slots=True)
class Credentials:
    app_key: str
    app_secret: str
    access_token: str
    refresh_token: str = ""


def _code(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def _rate_limit_hint(response: httpx.Response) -> float | None:
    """TikTok may report its rate limit in the envelope of a non-429 answer; retry it like a 429."""
    if response.status_code == 429 or response.status_code >= 500:
        return None
    # Every answer passes here: parse only a body that can hold the code (parsing every page twice was
    # ~15% of the operator's CPU in a full read, bench/bench_steady.py).
    if str(CODE_RATE_LIMITED).encode() not in response.content:
        return None
    return 0.0 if _code(response) == CODE_RATE_LIMITED else None


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
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self.endpoint = endpoint.rstrip("/")
        self.shop_cipher = shop_cipher
        self._token_key = (self.endpoint, shop_cipher, credentials.access_token)
        self.creds = replace(credentials)
        if self._token_key in _REFRESHED:
            self.creds.access_token, self.creds.refresh_token = _REFRESHED[self._token_key]
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
            client=client,
            limit=shared_bucket(f"{self.endpoint}|{shop_cipher}", rate, burst),
            retry=retry,
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _build(self, method: str, path: str, query: Mapping[str, str], payload: Any) -> httpx.Request:
        params = {
            **query,
            "app_key": self.creds.app_key,
            "shop_cipher": self.shop_cipher,
            "timestamp": str(int(time.time())),
        }
        body = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else b""
        params["sign"] = sign(self.creds.app_secret, path, params, body)
        return self.transport.client.build_request(
            method,
            self.endpoint + path,
            params=params,
            content=body or None,
            headers={"x-tts-access-token": self.creds.access_token, "content-type": "application/json"},
        )

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        query: Mapping[str, str] | None = None,
        payload: Any = None,
    ) -> dict[str, Any]:
        """One API call; returns the envelope (code 0 or a refusal the caller judges) after auth and
        token refresh are dealt with."""
        refreshed = False
        while True:
            response = await self.transport.send(
                operation, lambda: self._build(method, path, query or {}, payload), hint=_rate_limit_hint
            )
            try:
                envelope = response.json()
            except ValueError:
                raise self.transport.error(
                    ProviderError, operation, f"HTTP {response.status_code}: response is not JSON"
                ) from None
            if not isinstance(envelope, dict):
                raise self.transport.error(ProviderError, operation, "response is not a JSON object")
            code = envelope.get("code")
            if code == CODE_TOKEN_EXPIRED and self.creds.refresh_token and not refreshed:
                await self._refresh(expired=self.creds.access_token)
                refreshed = True
                continue
            if code in AUTH_CODES or response.status_code in (401, 403):
                raise self.transport.error(
                    AuthError,
                    operation,
                    f"refused credentials: {envelope.get('message', '')} (code {code})",
                    str(code),
                )
            if not isinstance(code, int):
                raise self.transport.error(
                    ProviderError, operation, f"HTTP {response.status_code}: answer without an envelope code"
                )
            return envelope

    async def _refresh(self, expired: str) -> None:
        """Exchange the refresh token for a new access token, shared with every client of the shop in
        this process (the Secret keeps the expired one); one refresh at a time per shop, and none
        when another client already replaced the `expired` token."""
        key = (id(asyncio.get_running_loop()), self._token_key)
        async with _REFRESH_LOCKS.setdefault(key, asyncio.Lock()):
            newest = _REFRESHED.get(self._token_key)
            if newest is not None and newest[0] != expired:
                self.creds.access_token, self.creds.refresh_token = newest
                return
            await self._exchange()
            _REFRESHED[self._token_key] = (self.creds.access_token, self.creds.refresh_token)

    async def _exchange(self) -> None:
        params = {
            "app_key": self.creds.app_key,
            "app_secret": self.creds.app_secret,
            "refresh_token": self.creds.refresh_token,
            "grant_type": "refresh_token",
        }
        url = self.auth_endpoint + REFRESH_PATH
        response = await self.transport.send(
            "token_refresh", lambda: self.transport.client.build_request("GET", url, params=params)
        )
        try:
            envelope = response.json()
            data = envelope["data"] if envelope.get("code") == CODE_OK else None
            token = data["access_token"] if isinstance(data, dict) else None
        except (ValueError, KeyError, TypeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise self.transport.error(
                AuthError, "token_refresh", f"the refresh token was refused (HTTP {response.status_code})"
            )
        new_refresh = data.get("refresh_token") if isinstance(data, dict) else None
        new_refresh = (
            new_refresh if isinstance(new_refresh, str) and new_refresh else self.creds.refresh_token
        )
        SECRETS.add([token, new_refresh])  # before either can reach a log line
        self.creds.access_token, self.creds.refresh_token = token, new_refresh
        log.info("tiktok store %s: access token refreshed", self.store)

    async def list_warehouses(self) -> list[ChannelWarehouse]:
        envelope = await self._call("warehouses", "GET", WAREHOUSES_PATH)
        self._expect_ok("warehouses", envelope)
        return [
            ChannelWarehouse(
                id=str(w["id"]),
                name=str(w.get("name", "")),
                type=str(w.get("type", "")),
                effect_status=str(w.get("effect_status", "ENABLED")),
                is_default=bool(w.get("is_default", False)),
            )
            for w in (envelope.get("data") or {}).get("warehouses", [])
        ]

    def _expect_ok(self, operation: str, envelope: dict[str, Any]) -> None:
        code = envelope.get("code")
        if code != CODE_OK:
            raise self.transport.error(
                ProviderError, operation, f"{envelope.get('message', '')} (code {code})", str(code)
            )

    async def list_listings(self, seller_skus: Collection[str] | None = None) -> list[Listing]:
        """Every slot of the shop, or of these seller SKUs only (searched 100 at a time).

        All pages or nothing: a page failing after the first raises PartialReadError.
        """
        wanted = sorted(set(seller_skus)) if seller_skus is not None else None
        filters = (
            [{}]
            if wanted is None
            else [
                {"seller_skus": wanted[i : i + SKU_FILTER_MAX]} for i in range(0, len(wanted), SKU_FILTER_MAX)
            ]
        )
        listings: list[Listing] = []
        pages = 0
        for body in filters:
            token = ""
            products = 0
            total: int | None = None
            while True:
                query = {"page_size": str(PAGE_SIZE)} | ({"page_token": token} if token else {})
                try:
                    envelope = await self._call("products_search", "POST", SEARCH_PATH, query, body)
                    self._expect_ok("products_search", envelope)
                except ProviderError as exc:
                    if pages == 0:
                        raise
                    raise self.transport.error(
                        PartialReadError, "products_search", f"page {pages + 1} failed, nothing read: {exc}"
                    ) from exc
                data = envelope.get("data") or {}
                pages += 1
                if total is None and isinstance(data.get("total_count"), int):
                    total = data["total_count"]
                for product in data.get("products", []):
                    products += 1
                    listings += self._slots(product)
                token = str(data.get("next_page_token") or "")
                if not token:
                    break
            if total is not None and products != total:
                raise self.transport.error(
                    PartialReadError,
                    "products_search",
                    f"read {products} products but the shop reports {total}",
                )
        if wanted is not None:
            keep = set(wanted)
            listings = [x for x in listings if x.sku in keep]  # a product's other SKUs were not asked for
        return listings

    def _slots(self, product: dict[str, Any]) -> list[Listing]:
        return [
            Listing(
                store=self.store,
                sku=str(sku.get("seller_sku", "")),
                product_id=str(product["id"]),
                sku_id=str(sku["id"]),
                channel_warehouse_id=str(slot["warehouse_id"]),
                quantity=int(slot.get("quantity", 0)),
            )
            for sku in product.get("skus", [])
            for slot in sku.get("inventory", [])
        ]

    async def push(self, product_id: str, updates: Sequence[SlotUpdate]) -> list[PushOutcome]:
        """One inventory update for the product; ``data.errors[]`` fail only the SKUs they name.

        A refusal of the whole request fails every slot; auth, rate-limit and availability problems
        raise (nothing is known about the slots then).
        """
        if not updates:
            return []
        by_sku: dict[str, list[dict[str, Any]]] = {}
        for u in updates:
            by_sku.setdefault(u.sku_id, []).append(
                {"warehouse_id": u.channel_warehouse_id, "quantity": u.quantity}
            )
        payload = {"skus": [{"id": sku_id, "inventory": inv} for sku_id, inv in by_sku.items()]}
        path = UPDATE_PATH.format(product_id=product_id)
        envelope = await self._call("inventory_update", "POST", path, None, payload)
        code = envelope.get("code")
        message = redact(str(envelope.get("message", "")))
        if code == CODE_MULTI_WAREHOUSE_REFUSED:
            raise MultiWarehouseRefusedError(
                f"tiktok store {self.store}: {message} (code {code}); the shop is not whitelisted for "
                "multi-warehouse inventory",
                platform=PLATFORM,
                operation="inventory_update",
                code=str(code),
            )
        if code != CODE_OK:
            return [PushOutcome(u, False, f"{message} (code {code})") for u in updates]
        failed: dict[str, str] = {}
        for err in (envelope.get("data") or {}).get("errors", []) or []:
            detail = err.get("detail") or {}
            sku_id = str(detail.get("sku_id", ""))
            failed[sku_id] = redact(f"{err.get('message', '')} (code {err.get('code')})")
        if "" in failed:  # an error naming no SKU cannot be attributed: every slot is in doubt
            return [PushOutcome(u, False, failed[""]) for u in updates]
        return [PushOutcome(u, u.sku_id not in failed, failed.get(u.sku_id, "")) for u in updates]
