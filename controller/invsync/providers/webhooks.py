"""Webhook verification: invsync's generic signed format (docs/interfaces.md) and Shopify's own.

The sandbox signs its deliveries with ``sign_generic`` / ``sign_shopify``, so the sender and the
verifier share one definition of each format.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engine.records import StockRecord
from .base import WebhookRejectedError

MAX_BODY = 4 * 1024 * 1024
MAX_AGE_SECONDS = 300
SIGNATURE_HEADER = "X-Invsync-Signature"
TIMESTAMP_HEADER = "X-Invsync-Timestamp"
SHOPIFY_HMAC_HEADER = "X-Shopify-Hmac-Sha256"
SHOPIFY_TOPIC_HEADER = "X-Shopify-Topic"
SHOPIFY_INVENTORY_TOPIC = "inventory_levels/update"
# The header that signs a delivery, per InventorySource provider: a request without it is refused
# before the source's Secret is read (an unsigned flood must cost the API server nothing).
SIGNATURE_HEADERS = {"http": SIGNATURE_HEADER, "shopify": SHOPIFY_HMAC_HEADER}


def check_signature_header(provider: str, headers: Mapping[str, str]) -> None:
    """Refuse (401) a delivery whose signature header is missing or not ASCII, before any Secret is read:
    a valid signature is hex or base64, and hmac.compare_digest raises on a non-ASCII str."""
    name = SIGNATURE_HEADERS[provider]
    value = _lower(headers).get(name.lower(), "")
    if not value.strip():
        raise WebhookRejectedError(f"missing {name} header", status=401)
    if not value.isascii():
        raise WebhookRejectedError(f"{name} is not ASCII (a signature is hex or base64)", status=401)


class StockItem(BaseModel):
    """One row of the generic HTTP contract, as read from ``/v1/inventory`` and sent in webhooks."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    sku: str = Field(min_length=1)
    location: str = Field(min_length=1)
    available: int
    continue_selling: bool = Field(default=False, alias="continueSelling")
    enabled: bool = True

    def record(self, source: str) -> StockRecord:
        return StockRecord(
            source, self.location, self.sku, self.available, self.continue_selling, self.enabled
        )


class StockItems(BaseModel):
    model_config = ConfigDict(extra="ignore")

    items: list[StockItem]


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _check_size(body: bytes) -> None:
    if len(body) > MAX_BODY:
        raise WebhookRejectedError(f"webhook body of {len(body)} bytes exceeds {MAX_BODY}", status=413)


def sign_generic(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_shopify(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def generic_headers(body: bytes, secret: str, now: float | None = None) -> dict[str, str]:
    """Headers of a generic delivery of ``body``, signed now."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_generic(body, secret),
        TIMESTAMP_HEADER: str(int(time.time() if now is None else now)),
    }


def parse_generic(
    source: str, headers: Mapping[str, str], body: bytes, secret: str, *, now: float | None = None
) -> list[StockRecord]:
    """Verify and parse a generic delivery; the signature is checked before anything is parsed."""
    _check_size(body)
    check_signature_header("http", headers)
    h = _lower(headers)
    signature = h[SIGNATURE_HEADER.lower()]
    if not hmac.compare_digest(signature.strip(), sign_generic(body, secret)):
        raise WebhookRejectedError(f"{SIGNATURE_HEADER} does not match the body (wrong secret?)", status=401)
    stamp = h.get(TIMESTAMP_HEADER.lower(), "")
    try:
        sent = float(stamp) if stamp.isascii() else math.nan  # float() also reads Arabic-Indic digits
    except ValueError:
        sent = math.nan
    if not math.isfinite(sent):  # "nan" would pass any age check, "inf" overflows int()
        raise WebhookRejectedError(f"missing or malformed {TIMESTAMP_HEADER} header", status=400)
    age = (time.time() if now is None else now) - sent
    if abs(age) > MAX_AGE_SECONDS:
        raise WebhookRejectedError(
            f"{TIMESTAMP_HEADER} is {int(age)}s off (deliveries older than {MAX_AGE_SECONDS}s are refused)",
            status=401,
        )
    try:
        items = StockItems.model_validate_json(body).items
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WebhookRejectedError(f"webhook body: {where}: {first['msg']}", status=400) from None
    return [item.record(source) for item in items]


def verify_shopify(headers: Mapping[str, str], body: bytes, secret: str) -> dict[str, Any]:
    """Verify a Shopify ``inventory_levels/update`` delivery and return its JSON payload."""
    _check_size(body)
    check_signature_header("shopify", headers)
    h = _lower(headers)
    signature = h[SHOPIFY_HMAC_HEADER.lower()]
    if not hmac.compare_digest(signature.strip(), sign_shopify(body, secret)):
        raise WebhookRejectedError(
            f"{SHOPIFY_HMAC_HEADER} does not match the body (wrong secret?)", status=401
        )
    topic = h.get(SHOPIFY_TOPIC_HEADER.lower(), SHOPIFY_INVENTORY_TOPIC)
    if topic != SHOPIFY_INVENTORY_TOPIC:
        raise WebhookRejectedError(f"unsupported Shopify webhook topic {topic!r}", status=400)
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookRejectedError("Shopify webhook body is not JSON", status=400) from None
    if not isinstance(payload, dict):
        raise WebhookRejectedError("Shopify webhook body is not a JSON object", status=400)
    for key in ("inventory_item_id", "location_id"):
        if not isinstance(payload.get(key), int):
            raise WebhookRejectedError(f"Shopify webhook body: {key} must be an integer", status=400)
    if payload.get("available") is None:
        payload["available"] = 0  # Shopify sends null for untracked items (which continue selling)
    elif not isinstance(payload["available"], int):
        raise WebhookRejectedError("Shopify webhook body: available must be an integer or null", status=400)
    return payload
