"""Platform clients behind small interfaces (see base.py), built from the API resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api import InventorySource, Store
from .base import (
    AuthError,
    CredentialsError,
    InventorySourceProvider,
    MultiWarehouseRefusedError,
    PartialReadError,
    ProviderError,
    PushOutcome,
    RateLimitedError,
    SalesChannel,
    UnavailableError,
    WebhookRejectedError,
)
from .client import Connections
from .http_source import HttpSource
from .lazada import Credentials as LazadaCredentials
from .lazada import LazadaChannel
from .shopee import Credentials as ShopeeCredentials
from .shopee import ShopeeChannel
from .shopify import ShopifySource
from .tiktok import Credentials, TikTokChannel
from .tokens import TokenPair, TokenSink
from .transport import RetryPolicy

__all__ = [
    "ACCESS_TOKEN_EXPIRE_IN",
    "AuthError",
    "Connections",
    "CredentialsError",
    "InventorySourceProvider",
    "MultiWarehouseRefusedError",
    "PartialReadError",
    "ProviderError",
    "PushOutcome",
    "RateLimitedError",
    "RetryPolicy",
    "SalesChannel",
    "TokenPair",
    "TokenSink",
    "UnavailableError",
    "WebhookRejectedError",
    "build_channel",
    "build_source",
]


def _require(secret: Mapping[str, str] | None, key: str, what: str) -> str:
    value = (secret or {}).get(key, "")
    if not value:
        raise CredentialsError(f"{what}: credentials Secret has no key {key!r}", code="MissingCredential")
    return value


# Secret keys of a Store's credentials (docs/security.md, "TikTok tokens")
ACCESS_TOKEN_EXPIRE_IN = "access_token_expire_in"


def build_channel(
    store: Store,
    secret: Mapping[str, str],
    *,
    retry: RetryPolicy | None = None,
    on_refresh: TokenSink | None = None,
    connections: Connections | None = None,
) -> SalesChannel:
    """The sales channel of a Store; the Secret holds app_key, app_secret (tiktok, lazada) or partner_id,
    partner_key (shopee), access_token, refresh_token and, once invsync refreshed the token,
    access_token_expire_in (unix time). ``on_refresh`` gets every refreshed pair (the operator writes it
    back to the Secret; Shopee's and Lazada's refresh tokens are single-use, so it gets the pair before
    the pair is used)."""
    what = f"Store {store.namespace}/{store.name}"
    spec = store.spec
    expires = secret.get(ACCESS_TOKEN_EXPIRE_IN, "")
    if expires and not expires.isdigit():
        raise CredentialsError(
            f"{what}: credentials Secret key {ACCESS_TOKEN_EXPIRE_IN!r} is not a unix time",
            code="InvalidCredential",
        )
    tokens: dict[str, Any] = {
        "access_token": _require(secret, "access_token", what),
        "refresh_token": secret.get("refresh_token", ""),
        "access_token_expire_in": int(expires or 0),
    }
    client_options: dict[str, Any] = {
        "store": store.name,
        "endpoint": spec.endpoint,
        "rate": spec.rate_limit.requests_per_second,
        "burst": spec.rate_limit.burst,
        "retry": retry,
        "on_refresh": on_refresh,
        "connections": connections,
    }
    if spec.platform == "shopee":
        partner_id = _require(secret, "partner_id", what)
        if not partner_id.isdigit():
            raise CredentialsError(
                f"{what}: credentials Secret key 'partner_id' is not a number", code="InvalidCredential"
            )
        assert spec.shop_id is not None  # the CRD (and the offline loader) require it for shopee
        shopee = ShopeeCredentials(
            partner_id=int(partner_id), partner_key=_require(secret, "partner_key", what), **tokens
        )
        return ShopeeChannel(shop_id=spec.shop_id, credentials=shopee, **client_options)
    app: dict[str, Any] = {
        "app_key": _require(secret, "app_key", what),
        "app_secret": _require(secret, "app_secret", what),
    }
    if spec.platform == "lazada":
        return LazadaChannel(credentials=LazadaCredentials(**app, **tokens), **client_options)
    assert spec.shop_cipher is not None  # the CRD (and the offline loader) require it for tiktok
    return TikTokChannel(
        shop_cipher=spec.shop_cipher, credentials=Credentials(**app, **tokens), **client_options
    )


def build_source(
    source: InventorySource,
    secret: Mapping[str, str] | None,
    *,
    retry: RetryPolicy | None = None,
    connections: Connections | None = None,
) -> InventorySourceProvider:
    """The provider of an InventorySource; shopify needs key access_token, http takes key token."""
    spec = source.spec
    if spec.provider == "shopify":
        token = _require(secret, "access_token", f"InventorySource {source.namespace}/{source.name}")
        return ShopifySource(
            name=source.name,
            endpoint=spec.endpoint,
            access_token=token,
            retry=retry,
            connections=connections,
            api_version=spec.shopify_api_version,
        )
    return HttpSource(
        name=source.name,
        endpoint=spec.endpoint,
        token=(secret or {}).get("token"),
        retry=retry,
        connections=connections,
    )
