"""Shopee Open Platform API v2 as a sales channel.

Every limit and error name below is Shopee's published one; docs/platforms.md ("Shopee") names the doc
page of each and marks the choices made where no page says.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..engine.records import ChannelWarehouse, Listing, SlotUpdate
from .base import AuthError, PartialReadError, ProviderError, PushOutcome
from .client import Connections, Request, Response
from .tokens import SharedTokens, TokenPair, TokenSink
from .transport import RetryPolicy, Transport, shared_bucket

log = logging.getLogger("invsync.providers.shopee")

PLATFORM = "shopee"
WAREHOUSES_PATH = "/api/v2/shop/get_warehouse_detail"
ITEM_LIST_PATH = "/api/v2/product/get_item_list"
ITEM_BASE_INFO_PATH = "/api/v2/product/get_item_base_info"
MODEL_LIST_PATH = "/api/v2/product/get_model_list"
UPDATE_STOCK_PATH = "/api/v2/product/update_stock"
REFRESH_PATH = "/api/v2/auth/access_token/get"
PAGE_SIZE = 100  # get_item_list: page_size, Max=100
BASE_INFO_ITEMS_MAX = 50  # get_item_base_info: item_id_list [0,50]
MODELS_PER_UPDATE = 50  # update_stock: stock_list length 1 to 50
# Statuses a full read lists: every item that still exists (deleted items take no stock update).
READ_STATUSES = ("NORMAL", "UNLIST", "BANNED", "REVIEWING")
WRITABLE_STATUS = "NORMAL"
# The channel warehouse of a shop without warehouse locations (its seller_stock names no location_id).
NO_LOCATION = "default"
REFRESH_BEFORE = 1800  # refresh an access token (4-hour lifetime) once less than 30 minutes are left
READ_CONCURRENCY = 8  # get_model_list calls in flight during a read (one item per call)

ERROR_SIGN = "error_sign"
ERROR_AUTH = "error_auth"
ERROR_PARAM = "error_param"
ERROR_NOT_IN_WHITELIST = "warehouse.error_not_in_whitelist"
ERROR_UPDATE_STOCK_FAILED = "error_busi_update_stock_failed"
ERROR_SYSTEM_BUSY = "error_system_busy"
RATE_LIMIT_MARK = "rate_limit"  # the documented family: <module>.rate_limit.exceed_shop_api, ...
MESSAGE_INVALID_TOKEN = "Invalid access_token."
# Parts of an error_auth / error_param message that mean the credentials themselves were refused (the
# same names also carry business refusals such as "Lack of location_id").
_CREDENTIAL_WORDS = ("access_token", "No permission", "partner_id", "shopid", "timestamp")


def sign_base(partner_id: int, path: str, timestamp: int, access_token: str = "", shop_id: int = 0) -> str:
    """What Shopee signs: partner_id + api path + timestamp, then access_token + shop_id for shop APIs
    (public APIs such as the token refresh stop after the timestamp)."""
    return f"{partner_id}{path}{timestamp}" + (f"{access_token}{shop_id}" if access_token else "")


def sign(
    partner_key: str, partner_id: int, path: str, timestamp: int, access_token: str = "", shop_id: int = 0
) -> str:
    """Shopee's sign: lower-case hex HMAC-SHA256 of sign_base(...) keyed with the partner key."""
    base = sign_base(partner_id, path, timestamp, access_token, shop_id)
    return hmac.new(partner_key.encode(), base.encode(), hashlib.sha256).hexdigest()


def is_error(error: str, name: str) -> bool:
    """Shopee may prefix an error with its module (``product.error_param``)."""
    return error == name or error.endswith("." + name)


def credentials_refused(error: str, message: str) -> bool:
    if is_error(error, ERROR_SIGN):
        return True
    return (is_error(error, ERROR_AUTH) or is_error(error, ERROR_PARAM)) and any(
        w in message for w in _CREDENTIAL_WORDS
    )


@dataclass(slots=True)
class Credentials:
    partner_id: int
    partner_key: str
    access_token: str
    refresh_token: str = ""
    access_token_expire_in: int = 0  # unix time; 0: unknown (refreshed once Shopee refuses the token)


# Item ids of each seller SKU, from the last full read of a shop (any client's), by (endpoint, shop id):
# Shopee has no search by model SKU, so a read of a few SKUs reads the items they were last seen in.
_ITEMS_OF_SKU: dict[tuple[str, int], dict[str, set[int]]] = {}


def _envelope_hint(response: Response) -> float | None:
    """Retry a rate-limit or system-busy answer that did not come as a 429 or 5xx."""
    if response.status_code == 429 or response.status_code >= 500:
        return None
    try:  # decoded once: the client reads the same envelope
        error = str(response.json().get("error") or "")
    except (ValueError, AttributeError):
        return None
    return 0.0 if RATE_LIMIT_MARK in error or is_error(error, ERROR_SYSTEM_BUSY) else None


class ShopeeChannel:
    """One Shopee shop, identified by its shop_id."""

    def __init__(
        self,
        *,
        store: str,
        endpoint: str,
        shop_id: int,
        credentials: Credentials,
        rate: float,
        burst: int,
        retry: RetryPolicy | None = None,
        connections: Connections | None = None,
        on_refresh: TokenSink | None = None,
    ) -> None:
        self.store = store
        self.endpoint = endpoint.rstrip("/")
        self.shop_id = shop_id
        self.creds = replace(credentials)
        self.transport = Transport(
            PLATFORM,
            secrets=(credentials.partner_key, credentials.access_token, credentials.refresh_token),
            limit=shared_bucket(f"{self.endpoint}|shopee|{shop_id}", rate, burst),
            retry=retry,
            connections=connections,
        )
        # a refresh spends the refresh token: every client of the shop must take the new pair
        self.tokens = SharedTokens(
            (PLATFORM, self.endpoint, shop_id, credentials.access_token),
            platform=PLATFORM,
            store=store,
            use=self._use,
            sink=on_refresh,
            redact=self.transport.redactor.redact,
            single_use=True,
        )

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _use(self, pair: TokenPair) -> None:
        self.transport.remember((pair.access_token, pair.refresh_token))
        self.creds.access_token, self.creds.refresh_token = pair.access_token, pair.refresh_token
        self.creds.access_token_expire_in = pair.access_token_expire_in

    def _build(self, method: str, path: str, query: Mapping[str, Any], payload: Any) -> Request:
        now = int(time.time())
        params: dict[str, Any] = {
            **query,
            "partner_id": str(self.creds.partner_id),
            "timestamp": str(now),
            "access_token": self.creds.access_token,
            "shop_id": str(self.shop_id),
            "sign": sign(
                self.creds.partner_key,
                self.creds.partner_id,
                path,
                now,
                self.creds.access_token,
                self.shop_id,
            ),
        }
        body = json.dumps(payload, separators=(",", ":")).encode() if payload is not None else None
        return self.transport.build(
            method,
            self.endpoint + path,
            params=params,
            content=body,
            headers={"content-type": "application/json"},
        )

    def _expiring(self) -> bool:
        expires = self.creds.access_token_expire_in
        return bool(self.creds.refresh_token and expires and time.time() >= expires - REFRESH_BEFORE)

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        query: Mapping[str, Any] | None = None,
        payload: Any = None,
    ) -> dict[str, Any]:
        """One API call; returns the envelope (empty ``error`` or a refusal the caller judges) once the
        credentials are dealt with: refreshed before expiry when it is known, else when Shopee refuses
        the access token."""
        await self.tokens.save_pending()
        refreshed = False
        if self._expiring():
            await self.tokens.refresh(self.creds.access_token, self._exchange)
            refreshed = True
        while True:
            response = await self.transport.send(
                operation, lambda: self._build(method, path, query or {}, payload), hint=_envelope_hint
            )
            try:
                envelope = response.json()
            except ValueError:
                raise self.transport.error(
                    ProviderError, operation, f"HTTP {response.status_code}: response is not JSON"
                ) from None
            if not isinstance(envelope, dict) or "error" not in envelope:
                raise self.transport.error(
                    ProviderError, operation, f"HTTP {response.status_code}: answer without an error field"
                )
            error, message = str(envelope.get("error") or ""), str(envelope.get("message") or "")
            if (
                is_error(error, ERROR_AUTH)
                and "access_token" in message
                and self.creds.refresh_token
                and not refreshed
            ):
                await self.tokens.refresh(self.creds.access_token, self._exchange)
                refreshed = True
                continue
            if credentials_refused(error, message) or response.status_code == 401:
                raise self.transport.error(
                    AuthError, operation, f"refused credentials: {message} ({error})", error
                )
            return envelope

    async def _exchange(self) -> TokenPair:
        body = {
            "refresh_token": self.creds.refresh_token,
            "partner_id": self.creds.partner_id,
            "shop_id": self.shop_id,
        }

        def build() -> Request:
            now = int(time.time())
            params = {
                "partner_id": str(self.creds.partner_id),
                "timestamp": str(now),
                "sign": sign(self.creds.partner_key, self.creds.partner_id, REFRESH_PATH, now),
            }
            return self.transport.build("POST", self.endpoint + REFRESH_PATH, params=params, json=body)

        response = await self.transport.send("token_refresh", build)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        answer = answer if isinstance(answer, dict) else {}
        token, new_refresh, expire_in = (
            answer.get(k) for k in ("access_token", "refresh_token", "expire_in")
        )
        if answer.get("error") or not all(isinstance(v, str) and v for v in (token, new_refresh)):
            raise self.transport.error(
                AuthError,
                "token_refresh",
                f"the refresh token was refused: {answer.get('message', '')} ({answer.get('error', '')}, "
                f"HTTP {response.status_code}); the shop must authorize the app again",
                str(answer.get("error", "")),
            )
        assert isinstance(token, str) and isinstance(new_refresh, str)
        self.transport.remember((token, new_refresh))  # before either can reach a log line
        log.info("shopee store %s: access token refreshed (the refresh token rotated)", self.store)
        lifetime = expire_in if isinstance(expire_in, int) and expire_in > 0 else 0
        return TokenPair(token, new_refresh, int(time.time()) + lifetime if lifetime else 0)

    def _expect_ok(self, operation: str, envelope: dict[str, Any]) -> None:
        error = str(envelope.get("error") or "")
        if error:
            message = self.transport.redactor.redact(str(envelope.get("message") or ""))
            raise self.transport.error(ProviderError, operation, f"{message} ({error})", error)

    async def list_warehouses(self) -> list[ChannelWarehouse]:
        """The shop's pickup locations; a shop outside the multi-warehouse whitelist has one, NO_LOCATION."""
        envelope = await self._call("warehouses", "GET", WAREHOUSES_PATH)
        if is_error(str(envelope.get("error") or ""), ERROR_NOT_IN_WHITELIST):
            return [
                ChannelWarehouse(id=NO_LOCATION, name="shop stock (no warehouse locations)", is_default=True)
            ]
        self._expect_ok("warehouses", envelope)
        return [
            ChannelWarehouse(
                id=str(w["location_id"]),
                name=str(w.get("warehouse_name", "")),
                type="PICKUP_WAREHOUSE",
                # holiday mode (any state but 0) refuses stock changes (error_holiday_mode_change_stock)
                effect_status="ENABLED" if not w.get("holiday_mode_state") else "RESTRICTED",
                is_default=n == 0,
            )
            for n, w in enumerate(envelope.get("response") or [])
            if w.get("location_id")
        ]

    async def list_listings(self, seller_skus: Collection[str] | None = None) -> list[Listing]:
        """Every slot of the shop's items in READ_STATUSES, or of these seller SKUs only.

        All or nothing: any call failing after the first raises PartialReadError, as does an item list
        whose item count differs from its total_count. A SKU read reads the items the SKU was last seen
        in (Shopee cannot search by model SKU); a SKU never seen, or not found there any more, makes it
        a full read.
        """
        shop_key = (self.endpoint, self.shop_id)
        if seller_skus is not None:
            wanted = set(seller_skus)
            known = _ITEMS_OF_SKU.get(shop_key)
            if known is not None and wanted <= known.keys():
                items = sorted({i for sku in wanted for i in known[sku]})
                subset = [
                    x for x in await self._read_items(items, first=True, gone_ok=True) if x.sku in wanted
                ]
                if {x.sku for x in subset} == wanted:
                    return subset
        listings = await self._read_items(await self._item_ids(), first=False)
        index: dict[str, set[int]] = {}
        for x in listings:
            index.setdefault(x.sku, set()).add(int(x.product_id))
        _ITEMS_OF_SKU[shop_key] = index
        if seller_skus is not None:
            return [x for x in listings if x.sku in seller_skus]
        return listings

    def _partial(self, operation: str, exc: ProviderError) -> ProviderError:
        return self.transport.error(PartialReadError, operation, f"a later call failed, nothing read: {exc}")

    async def _item_ids(self) -> list[int]:
        ids: list[int] = []
        offset, total = 0, None
        while True:
            query: dict[str, Any] = {
                "offset": str(offset),
                "page_size": str(PAGE_SIZE),
                "item_status": list(READ_STATUSES),
            }
            try:
                envelope = await self._call("item_list", "GET", ITEM_LIST_PATH, query)
                self._expect_ok("item_list", envelope)
            except ProviderError as exc:
                if offset == 0:
                    raise
                raise self._partial("item_list", exc) from exc
            page = envelope.get("response") or {}
            if total is None and isinstance(page.get("total_count"), int):
                total = page["total_count"]
            ids += [int(i["item_id"]) for i in page.get("item") or []]
            if not page.get("has_next_page"):
                break
            offset = int(page.get("next_offset") or 0)
        if total is not None and len(ids) != total:
            raise self.transport.error(
                PartialReadError, "item_list", f"read {len(ids)} items but the shop reports {total}"
            )
        return ids

    async def _read_items(
        self, item_ids: Sequence[int], *, first: bool, gone_ok: bool = False
    ) -> list[Listing]:
        """The slots of these items: their base info 50 at a time, then the models of those with models.
        `first`: no call of this read has succeeded yet (a failure then is not a partial read);
        `gone_ok`: an item Shopee no longer knows is skipped (else the read is partial)."""
        bases: list[dict[str, Any]] = []
        done = not first
        for i in range(0, len(item_ids), BASE_INFO_ITEMS_MAX):
            chunk = item_ids[i : i + BASE_INFO_ITEMS_MAX]
            query = {"item_id_list": ",".join(map(str, chunk))}
            try:
                envelope = await self._call("item_base_info", "GET", ITEM_BASE_INFO_PATH, query)
                self._expect_ok("item_base_info", envelope)
            except ProviderError as exc:
                if not done:
                    raise
                raise self._partial("item_base_info", exc) from exc
            done = True
            found = (envelope.get("response") or {}).get("item_list") or []
            if len(found) != len(chunk) and not gone_ok:
                raise self.transport.error(
                    PartialReadError, "item_base_info", f"asked for {len(chunk)} items, got {len(found)}"
                )
            bases += found
        gate = asyncio.Semaphore(READ_CONCURRENCY)

        async def models(item_id: int) -> list[dict[str, Any]]:
            async with gate:
                try:
                    envelope = await self._call(
                        "model_list", "GET", MODEL_LIST_PATH, {"item_id": str(item_id)}
                    )
                    self._expect_ok("model_list", envelope)
                except ProviderError as exc:
                    raise self._partial("model_list", exc) from exc
            found = (envelope.get("response") or {}).get("model") or []
            return [m for m in found if isinstance(m, dict)]

        with_models = [int(b["item_id"]) for b in bases if b.get("has_model")]
        try:
            async with asyncio.TaskGroup() as group:  # the first failure cancels the other calls
                tasks = {item_id: group.create_task(models(item_id)) for item_id in with_models}
        except* ProviderError as failed:
            raise failed.exceptions[0] from None
        of_item = {item_id: task.result() for item_id, task in tasks.items()}
        listings: list[Listing] = []
        for base in bases:
            item_id = int(base["item_id"])
            status = str(base.get("item_status", ""))
            if base.get("has_model"):
                units = [
                    (str(m["model_id"]), str(m.get("model_sku", "")), m.get("stock_info_v2"))
                    for m in of_item[item_id]
                ]
            else:
                units = [("0", str(base.get("item_sku", "")), base.get("stock_info_v2"))]
            listings += self._slots(item_id, status, units)
        return listings

    def _slots(self, item_id: int, status: str, units: Iterable[tuple[str, str, Any]]) -> list[Listing]:
        """One listing per seller_stock entry; shopee_stock (Shopee's own warehouses) is never ours."""
        return [
            Listing(
                store=self.store,
                sku=sku,
                product_id=str(item_id),
                sku_id=model_id,
                channel_warehouse_id=str(slot.get("location_id") or NO_LOCATION),
                quantity=int(slot.get("stock", 0)),
                status=status,
                writable=status == WRITABLE_STATUS,
            )
            for model_id, sku, info in units
            for slot in ((info or {}).get("seller_stock") or [])
            if isinstance(slot, dict)
        ]

    async def push(self, product_id: str, updates: Sequence[SlotUpdate]) -> list[PushOutcome]:
        """Absolute seller_stock for the item's models, at most 50 models per call.

        Carried slots are not sent: Shopee updates the locations a call names and keeps the others
        (docs/platforms.md, "Shopee: locations of a model"), so a value read minutes ago is never written
        back. ``failure_list`` fails only the models it names; a refusal of the whole call fails every
        slot of it; auth, rate-limit and availability problems raise.
        """
        outcomes = [
            PushOutcome(u, True, "not sent: Shopee keeps a location a write does not name")
            for u in updates
            if u.carried
        ]
        by_model: dict[str, list[SlotUpdate]] = {}
        for u in updates:
            if not u.carried:
                by_model.setdefault(u.sku_id, []).append(u)
        models = list(by_model)
        for i in range(0, len(models), MODELS_PER_UPDATE):
            chunk = {m: by_model[m] for m in models[i : i + MODELS_PER_UPDATE]}
            outcomes += await self._update(product_id, chunk)
        return outcomes

    async def _update(self, product_id: str, by_model: dict[str, list[SlotUpdate]]) -> list[PushOutcome]:
        sent = [u for group in by_model.values() for u in group]
        payload = {
            "item_id": int(product_id),
            "stock_list": [
                {
                    "model_id": int(model_id),
                    "seller_stock": [
                        {"stock": u.quantity}
                        | (
                            {}
                            if u.channel_warehouse_id == NO_LOCATION
                            else {"location_id": u.channel_warehouse_id}
                        )
                        for u in group
                    ],
                }
                for model_id, group in by_model.items()
            ],
        }
        envelope = await self._call("update_stock", "POST", UPDATE_STOCK_PATH, None, payload)
        error = str(envelope.get("error") or "")
        message = self.transport.redactor.redact(str(envelope.get("message") or ""))
        response = envelope.get("response") or {}
        failures = response.get("failure_list") if isinstance(response, dict) else None
        if error and not (is_error(error, ERROR_UPDATE_STOCK_FAILED) and failures):
            return [PushOutcome(u, False, f"{message} ({error})") for u in sent]
        failed = {
            str(f.get("model_id")): self.transport.redactor.redact(str(f.get("failed_reason", "")))
            for f in failures or []
            if isinstance(f, dict)
        }
        return [
            PushOutcome(
                u,
                u.sku_id not in failed,
                f"{failed[u.sku_id]} (model {u.sku_id})" if u.sku_id in failed else "",
            )
            for u in sent
        ]
