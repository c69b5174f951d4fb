"""No credential reaches a log line or an exception message, whatever happens."""

from __future__ import annotations

import logging
import socket

import httpx
import pytest
from platform_env import ERP_TOKEN, FAST, LOC1, SECRETS, SHOPIFY_TOKEN, source, store, tiktok_secret

from invsync.engine.records import SlotUpdate
from invsync.providers import ProviderError, build_channel, build_source
from invsync.sandbox.server import Sandbox
from invsync.sandbox.state import Fault


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_credential_in_logs_or_errors(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []

    async def expect_failure(call: object) -> None:
        try:
            await call  # type: ignore[misc]
        except ProviderError as exc:
            errors.append(f"{exc!s} {exc!r} {exc.__cause__!s}")
        else:
            pytest.fail("the call was expected to fail")

    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    sandbox.state.tiktok["ROW_main"].expired = True  # forces a token refresh: secrets in the query
    await channel.list_listings()
    await channel.push("p1", [SlotUpdate("p1", "s1-0", "7000", 1), SlotUpdate("p1", "bad", "7000", 1)])
    sandbox.state.faults.append(Fault(platform="tiktok", operation="warehouses", status=500))
    await expect_failure(channel.list_warehouses())
    await channel.aclose()
    refreshed = sandbox.state.tiktok["ROW_main"].access_token
    await expect_failure(
        build_channel(store(sandbox), tiktok_secret(app_secret=SHOPIFY_TOKEN), retry=FAST).list_warehouses()
    )

    shopify = build_source(source(sandbox, "shopify", "main"), {"access_token": SHOPIFY_TOKEN}, retry=FAST)
    await shopify.read_stock([LOC1])
    await shopify.aclose()
    await expect_failure(
        build_source(
            source(sandbox, "shopify", "main"), {"access_token": ERP_TOKEN}, retry=FAST
        ).list_locations()
    )
    wms = build_source(source(sandbox, "http", "wms"), {"token": ERP_TOKEN}, retry=FAST)
    await wms.read_stock(["jkt"])
    await wms.aclose()

    down = store(sandbox).model_copy(
        update={
            "spec": store(sandbox).spec.model_copy(update={"endpoint": f"http://127.0.0.1:{_closed_port()}"})
        }
    )
    await expect_failure(build_channel(down, tiktok_secret(), retry=FAST).list_warehouses())

    text = caplog.text + "\n".join(errors)
    assert "token/refresh" in text and "***" in text, "the refresh URL was logged; the scan must see it"
    assert len(errors) == 4
    for value in (*SECRETS, refreshed):
        assert value not in text, f"a credential ({len(value)} chars) leaked into logs or errors"


def test_redaction_also_covers_third_party_loggers(caplog: pytest.LogCaptureFixture) -> None:
    from invsync.providers.transport import SECRETS as REGISTRY

    REGISTRY.add(["3rd-party-secret-value"])
    caplog.set_level(logging.DEBUG)
    logging.getLogger("httpcore.http11").debug("sending %s", "token=3rd-party-secret-value")
    httpx.Request("GET", "http://x/?a=1")  # httpx itself stays usable with the factory installed
    assert "3rd-party-secret-value" not in caplog.text and "token=***" in caplog.text
