"""The transport's waits are bounded whatever a Store says, and a changed rate applies without a restart."""

from __future__ import annotations

import pytest
from platform_env import FAST, store, tiktok_secret

from invsync.providers import build_channel
from invsync.providers.transport import MIN_RATE, TokenBucket, shared_bucket
from invsync.sandbox.server import Sandbox


def test_a_rate_below_the_bound_waits_at_most_one_tenth_of_a_second_per_request_queued() -> None:
    """requestsPerSecond 1e-300 (admitted before the bounds) made the bucket sleep 1e300 s, silently."""
    bucket = shared_bucket("test|tiny", 1e-300, 1)
    assert bucket.rate == MIN_RATE
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(1 / MIN_RATE, rel=0.01)
    assert shared_bucket("test|nan", float("nan"), 0).rate == MIN_RATE


def test_a_changed_rate_takes_effect_on_the_next_client() -> None:
    """Restoring the rate did nothing until the operator restarted: the old bucket was kept."""
    slow = shared_bucket("test|changed", 0.1, 1)
    slow.reserve()
    assert slow.reserve() > 5  # queued behind the first request at 0.1/s
    fast = shared_bucket("test|changed", 1000, 10)
    assert fast is slow, "one bucket per store: clients built meanwhile share it"
    assert (fast.rate, fast.capacity) == (1000, 10)
    assert fast.reserve() < 0.01, "the backlog booked at the old rate is not inherited"


def test_token_bucket_refuses_a_rate_it_cannot_wait_on() -> None:
    for rate, capacity in ((0, 1), (float("inf"), 1), (float("nan"), 1), (1, 0)):
        with pytest.raises(ValueError, match="rate"):
            TokenBucket(rate, capacity)


async def test_a_store_rate_change_reaches_the_bucket_of_the_next_channel(sandbox: Sandbox) -> None:
    """Against the sandbox: the channel built after the Store's rate changed uses the new rate."""
    first = build_channel(store(sandbox, rps=0.1, burst=1), tiktok_secret(), retry=FAST)
    await first.list_warehouses()
    await first.aclose()
    second = build_channel(store(sandbox, rps=1000, burst=100), tiktok_secret(), retry=FAST)
    bucket = second.transport._bucket  # type: ignore[attr-defined]
    assert bucket is not None and bucket.rate == 1000 and bucket.reserve() < 0.01
    await second.list_warehouses()
    await second.aclose()
