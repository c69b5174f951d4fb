"""Shared HTTP behaviour of every platform client: rate limiting, retries, metrics, redaction.

One ``Transport`` per provider instance sends through one HTTP client (client.py), on the operator's
shared connections or on a pool of its own. Requests are rebuilt by a callback on every attempt so
that signed platforms (TikTok) get a fresh timestamp and signature for each retry.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..metrics import PLATFORM_REQUESTS
from .base import ProviderError, RateLimitedError, UnavailableError
from .client import Connections, HttpClient, NoAnswer, Request, Response, build_request

log = logging.getLogger("invsync.providers")

REDACTED = "***"
_MIN_SECRET_LEN = 4  # shorter values would redact ordinary text; credentials are never this short
# Query parameters that carry a credential on the platforms we call (docs/security.md, "Log scrubbing")
_CREDENTIAL_PARAMS = frozenset(
    {"access_token", "app_secret", "auth_code", "client_secret", "refresh_token"}
    # Shopee's partner id: a short number, so hidden where it is named rather than wherever it occurs
    | {"partner_id"}
    # signed download URLs (a Shopify bulk operation's result): whoever has the URL has the file
    | {"signature", "X-Goog-Signature", "X-Goog-Credential"}
)


class Redactor:
    """Credential values, replaced by exact value in a text that may hold one."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        new = {v for v in values if len(v) >= _MIN_SECRET_LEN} - self._values
        if not new:
            return
        with self._lock:
            self._values = self._values | new
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def redact(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(REDACTED, text) if pattern is not None else text


# Every credential value any provider has held. Credentials are scrubbed by exact value where one can
# appear: the query of a request URL (Transport.send logs it at DEBUG, and TikTok's token refresh
# carries app_secret and refresh_token there) and the text of a provider error (a platform may echo
# what it was sent), the latter with the credentials of the store or source it came from only
# (Transport.redactor).
# Nothing else is rewritten: a tenant whose Secret holds an ordinary word ("failed", "SyncRule") must
# not blank that word in other tenants' log lines and errors.
SECRETS = Redactor()


def redact_url(url: str) -> str:
    """`url` with the value of each query parameter that names a credential, or equals one, replaced."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sign, fragment = query.partition("#")
    params = []
    for param in query.split("&"):
        name, eq, value = param.partition("=")
        if eq and (
            urllib.parse.unquote_plus(name) in _CREDENTIAL_PARAMS
            or urllib.parse.unquote_plus(value) in SECRETS
        ):
            param = f"{name}={REDACTED}"
        params.append(param)
    return f"{base}?{'&'.join(params)}{hash_sign}{fragment}"


class TokenBucket:
    """``rate`` units per second on average, ``capacity`` at once.

    Lock-free: ``reserve`` books a unit (the level may go negative: queued reservations) and says
    how long to wait, so one bucket can be shared by every client of a store, on any event loop.
    """

    def __init__(self, rate: float, capacity: float) -> None:
        self._check(rate, capacity)
        self.rate, self.capacity = rate, float(capacity)
        self.tokens, self.stamp = self.capacity, time.monotonic()

    @staticmethod
    def _check(rate: float, capacity: float) -> None:
        if not (math.isfinite(rate) and rate > 0 and math.isfinite(capacity) and capacity >= 1):
            raise ValueError(f"rate {rate!r} must be > 0 and capacity {capacity!r} >= 1")

    def refill(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def configure(self, rate: float, capacity: float) -> None:
        """A new rate and capacity from now on; reservations booked at the old rate are forgotten (their
        waits were bounded by it), so a rate set too low and then raised takes effect at once."""
        self._check(rate, capacity)
        self.refill()
        self.rate, self.capacity = rate, float(capacity)
        self.tokens = min(max(self.tokens, 0.0), self.capacity)

    def take(self, amount: float = 1.0) -> bool:
        """Take ``amount`` now if the bucket holds it (a server refusing rather than queueing)."""
        if self.refill() < amount:
            return False
        self.tokens -= amount
        return True

    def reserve(self) -> float:
        """Book one unit; the seconds to wait before using it."""
        self.refill()
        self.tokens -= 1
        return max(0.0, -self.tokens / self.rate)

    async def acquire(self) -> None:
        wait = self.reserve()
        if wait:
            await asyncio.sleep(wait)


# A Store's rateLimit bounds (api/kinds.py RateLimit): a request waits at most 1/MIN_RATE seconds per
# request queued before it, whatever a manifest admitted before the bounds existed says.
MIN_RATE, MAX_RATE, MAX_BURST = 0.1, 10000.0, 10000

# One bucket per store (key chosen by the provider), whatever number of clients the operator builds.
_BUCKETS: dict[str, TokenBucket] = {}


def shared_bucket(key: str, rate: float, burst: int) -> TokenBucket:
    """The bucket of ``key``, set to this rate and burst (clamped to the Store's bounds): a changed rate
    takes effect on the next client built, with no restart."""
    rate = min(max(rate, MIN_RATE), MAX_RATE) if math.isfinite(rate) else MIN_RATE
    burst = min(max(burst, 1), MAX_BURST)
    bucket = _BUCKETS.get(key)
    if bucket is None:
        bucket = _BUCKETS[key] = TokenBucket(rate, burst)
    elif (bucket.rate, bucket.capacity) != (rate, float(burst)):
        bucket.configure(rate, burst)
    return bucket


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Capped exponential backoff with jitter; Retry-After wins when the platform sends it."""

    attempts: int = 6
    base: float = 0.25
    cap: float = 10.0
    max_retry_after: float = 60.0
    timeout: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (0-based): half fixed, half random (jitter)."""
        ceiling = min(self.cap, self.base * 2.0**attempt)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def retry_after(response: Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds, decimals tolerated, or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        return max(0.0, when - time.time())


# A callback that tells the transport to retry a response the platform answered with 200 (TikTok's
# rate-limit code, Shopify's THROTTLED): it returns the delay (0: the usual backoff), or None when the
# response is final.
RetryHint = Callable[[Response], float | None]


class Transport:
    """Sends one platform's requests for one store or source."""

    def __init__(
        self,
        platform: str,
        *,
        secrets: Iterable[str],
        limit: TokenBucket | None = None,
        retry: RetryPolicy | None = None,
        connections: Connections | None = None,
    ) -> None:
        self.platform = platform
        self.retry = retry or RetryPolicy()
        secrets = list(secrets)
        SECRETS.add(secrets)
        self.redactor = Redactor(secrets)
        self.client = HttpClient(self.retry.timeout, connections)
        self._bucket = limit

    build = staticmethod(build_request)

    def remember(self, values: Iterable[str]) -> None:
        """Credentials this transport's store received (a refreshed token): from now on its errors
        hide them, and so does every request URL logged."""
        values = list(values)
        SECRETS.add(values)
        self.redactor.add(values)

    async def aclose(self) -> None:
        await self.client.aclose()

    def error(self, cls: type[ProviderError], operation: str, message: str, code: str = "") -> ProviderError:
        """A provider error whose message is guaranteed free of credentials."""
        return cls(
            self.redactor.redact(f"{self.platform} {operation}: {message}"),
            platform=self.platform,
            operation=operation,
            code=code,
        )

    async def send(
        self,
        operation: str,
        build: Callable[[], Request],
        *,
        hint: RetryHint | None = None,
        stream: bool = False,
    ) -> Response:
        """Send with rate limiting and retries; returns the first final response (any status). With
        ``stream``, its body is not read yet: the caller iterates it and closes the response."""
        last = ""
        limited = False
        for attempt in range(self.retry.attempts):
            if self._bucket is not None:
                await self._bucket.acquire()
            request = build()
            try:
                response = await self.client.send(request, stream=stream)
            except NoAnswer as exc:
                code, last, limited, delay = exc.code, exc.message, False, None
            else:
                code = str(response.status_code)
                delay = hint(response) if hint is not None else None
                if response.status_code == 429 or delay is not None:
                    limited, last = True, f"rate limited (HTTP {response.status_code})"
                    delay = delay or retry_after(response)
                elif response.status_code >= 500:
                    limited, last, delay = False, f"HTTP {response.status_code}", retry_after(response)
                else:
                    PLATFORM_REQUESTS.labels(self.platform, operation, code).inc()
                    if log.isEnabledFor(logging.DEBUG):  # the redaction costs more than the request
                        log.debug(
                            "%s %s %s %s -> %s",
                            self.platform,
                            operation,
                            request.method,
                            redact_url(request.url),
                            code,
                        )
                    return response
                await response.aclose()
            PLATFORM_REQUESTS.labels(self.platform, operation, code).inc()
            if attempt + 1 == self.retry.attempts:
                break
            wait = min(delay, self.retry.max_retry_after) if delay else self.retry.backoff(attempt)
            log.info(
                "%s %s %s: %s; retry %d/%d in %.2fs",
                self.platform,
                operation,
                request.path,
                self.redactor.redact(last),
                attempt + 1,
                self.retry.attempts - 1,
                wait,
            )
            await asyncio.sleep(wait)
        cls = RateLimitedError if limited else UnavailableError
        raise self.error(cls, operation, f"{last} after {self.retry.attempts} attempts", code="exhausted")
