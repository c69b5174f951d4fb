"""No credential reaches a log line or an exception message, whatever happens."""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from platform_env import ERP_TOKEN, FAST, LOC1, SECRETS, SHOPIFY_TOKEN, source, store, tiktok_secret

from invsync.engine.records import SlotUpdate
from invsync.providers import ProviderError, build_channel, build_source
from invsync.providers.base import PartialReadError
from invsync.sandbox.server import Sandbox
from invsync.sandbox.state import Fault


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_no_credential_in_logs_or_errors(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []

    async def expect_failure(provider: Any, method: str) -> None:
        try:
            await getattr(provider, method)()
        except ProviderError as exc:
            errors.append(f"{exc!s} {exc!r} {exc.__cause__!s}")
        else:
            pytest.fail("the call was expected to fail")
        finally:
            await provider.aclose()

    channel = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    sandbox.state.tiktok["ROW_main"].expired = True  # forces a token refresh: secrets in the query
    await channel.list_listings()
    await channel.push("p1", [SlotUpdate("p1", "s1-0", "7000", 1), SlotUpdate("p1", "bad", "7000", 1)])
    sandbox.state.faults.append(Fault(platform="tiktok", operation="warehouses", status=500))
    await expect_failure(channel, "list_warehouses")
    refreshed = sandbox.state.tiktok["ROW_main"].access_token
    await expect_failure(
        build_channel(store(sandbox), tiktok_secret(app_secret=SHOPIFY_TOKEN), retry=FAST), "list_warehouses"
    )

    shopify = build_source(source(sandbox, "shopify", "main"), {"access_token": SHOPIFY_TOKEN}, retry=FAST)
    await shopify.read_stock([LOC1])
    await shopify.aclose()
    await expect_failure(
        build_source(source(sandbox, "shopify", "main"), {"access_token": ERP_TOKEN}, retry=FAST),
        "list_locations",
    )
    wms = build_source(source(sandbox, "http", "wms"), {"token": ERP_TOKEN}, retry=FAST)
    await wms.read_stock(["jkt"])
    await wms.aclose()

    down = store(sandbox).model_copy(
        update={
            "spec": store(sandbox).spec.model_copy(update={"endpoint": f"http://127.0.0.1:{_closed_port()}"})
        }
    )
    await expect_failure(build_channel(down, tiktok_secret(), retry=FAST), "list_warehouses")

    text = caplog.text + "\n".join(errors)
    assert "token/refresh" in text and "***" in text, "the refresh URL was logged; the scan must see it"
    assert len(errors) == 4
    for value in (*SECRETS, refreshed):
        assert value not in text, f"a credential ({len(value)} chars) leaked into logs or errors"


async def test_ordinary_words_in_a_secret_are_not_scrubbed_from_other_lines(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """A tenant whose Secret holds "SyncRule" or "failed" blanked those words in every tenant's log
    lines (issue 14): credentials are scrubbed where they can appear, by exact value, nothing else."""
    caplog.set_level(logging.DEBUG)
    other = build_channel(store(sandbox), tiktok_secret(), retry=FAST)
    await other.list_warehouses()  # in the same task as the careless tenant's calls below
    careless = build_channel(
        store(sandbox), tiktok_secret(app_key="SyncRule", access_token="failed"), retry=FAST
    )
    with pytest.raises(ProviderError) as refused:
        await careless.list_warehouses()
    await careless.aclose()
    logging.getLogger("invsync.operator").warning("SyncRule shop/rule: push failed for 2 listings")
    assert "SyncRule shop/rule: push failed for 2 listings" in caplog.text
    # another store's provider error keeps its words; its own credentials are still hidden
    sandbox.state.faults.append(
        Fault(platform="tiktok", operation="products_search", status=500, partial_pages=True)
    )
    with pytest.raises(PartialReadError, match="page 2 failed") as partial:
        await other.list_listings()
    await other.aclose()
    assert not any(value in str(partial.value) for value in SECRETS)
    assert "SyncRule" not in str(refused.value)  # its own error still hides its own credential
    # the request lines logged, the careless tenant's too, still hide each tenant's credentials
    request_lines = [
        r.getMessage() for r in caplog.records if r.name == "invsync.providers" and "?" in r.getMessage()
    ]
    assert request_lines and all("app_key=***" in line for line in request_lines), request_lines


def test_request_urls_lose_credentials_by_parameter_name_and_exact_value() -> None:
    from invsync.providers.transport import SECRETS as REGISTRY
    from invsync.providers.transport import redact_url

    REGISTRY.add(["exact-secret-value"])
    url = "https://h/api/v2/token/refresh?app_key=k&app_secret=s3&refresh_token=r&grant_type=refresh_token"
    assert redact_url(url) == (
        "https://h/api/v2/token/refresh?app_key=k&app_secret=***&refresh_token=***&grant_type=refresh_token"
    )
    assert redact_url("http://h/p?q=exact-secret-value&r=exact-secret-values#f") == (
        "http://h/p?q=***&r=exact-secret-values#f"
    )
    assert (
        redact_url("http://h/exact-secret-value-is-not-a-query")
        == "http://h/exact-secret-value-is-not-a-query"
    )
