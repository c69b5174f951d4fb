"""The HTTP requests the platform clients send, on aiohttp's connection pool and C parser.

httpx's client in front of aiohttp was most of a TikTok read's own CPU (each URL parsed and checked
character by character, header and cookie models: bench/bench_read.py), and no client needs what it
adds: Request and Response here are what Transport.send and the providers use, nothing more.
"""

from __future__ import annotations

import functools
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import aiohttp
import certifi
import msgspec
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

T = TypeVar("T")
_CHUNK = 1 << 16
_USER_AGENT = "invsync"


class NoAnswer(Exception):
    """A request that got no complete answer. `code` is the metric's label: a refused or broken
    connection (connection_error) is told apart from a platform too slow to answer (timeout)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _no_answer(exc: BaseException) -> NoAnswer:
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
        return NoAnswer("timeout", f"timed out ({type(exc).__name__})")
    return NoAnswer("connection_error", f"connection failed ({str(exc) or type(exc).__name__})")


@dataclass(slots=True)
class Request:
    method: str
    url: str  # percent-encoded, the query included
    headers: dict[str, str]
    content: bytes | None = None

    @property
    def path(self) -> str:
        return urllib.parse.urlsplit(self.url).path


def build_request(
    method: str,
    url: str,
    params: Mapping[str, Any] | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    json: Any = None,
    form: Mapping[str, str] | None = None,
) -> Request:
    """A request with its query encoded into the URL (form encoding, a list value as a repeated
    parameter, as the platforms' SDKs send them) and a body of raw bytes, JSON or a form."""
    if params:
        url = f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params, doseq=True)}"
    sent = dict(headers or {})
    if json is not None:
        content = orjson.dumps(json)
        sent.setdefault("content-type", "application/json")
    elif form is not None:
        content = urllib.parse.urlencode(form).encode()
        sent.setdefault("content-type", "application/x-www-form-urlencoded")
    return Request(method, url, sent, content)


class Response:
    """A platform's answer: its body read whole, or (streamed) read through `aiter_bytes`."""

    __slots__ = ("_decoded", "_raw", "content", "headers", "status_code")

    def __init__(self, raw: aiohttp.ClientResponse, content: bytes) -> None:
        self._raw = raw
        self.status_code: int = raw.status
        self.headers: CIMultiDictProxy[str] = raw.headers
        self.content = content  # b"" for a streamed response
        self._decoded: tuple[object, Any] | None = None  # (decoder, what it made of the body)

    def json(self) -> Any:
        """The body as JSON (orjson's dicts), decoded once: a retry hint looks at it before the client
        does. Raises ValueError like json.loads."""
        return self._once(orjson.loads, orjson.loads)

    def decoded(self, decoder: msgspec.json.Decoder[T]) -> T:
        """The body decoded by `decoder` into its typed structs, once (as `json`); raises
        msgspec.DecodeError (ValidationError: the JSON does not have the decoder's shape)."""
        return cast(T, self._once(decoder, decoder.decode))

    def _once(self, key: object, decode: Callable[[bytes], Any]) -> Any:
        if self._decoded is None or self._decoded[0] is not key:
            self._decoded = (key, decode(self.content))
        return self._decoded[1]

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """A streamed body, chunk by chunk; a connection lost midway raises NoAnswer."""
        try:
            async for chunk in self._raw.content.iter_chunked(_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _no_answer(exc) from exc

    async def aclose(self) -> None:
        self._raw.release()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """A verified context on certifi's CA bundle, built once: building one loads the bundle (~30 ms of
    CPU), and every provider without shared connections opens a pool of its own (once built per
    client, it was 38% of the operator's CPU: bench/bench_steady.py)."""
    return ssl.create_default_context(cafile=certifi.where())


class Connections:
    """One aiohttp session (opened on first use, inside the running loop) whose connection pool every
    client built with it shares: the operator builds its providers for each sync, and with this they
    reuse the connections the syncs before opened (no new TCP and TLS handshakes). Whoever creates
    it closes it."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str | None], str | None] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No connection limit (limit=0): every TikTok shop is on one API host and every store of
            # the shard on this pool, so a cap would queue one store's requests behind another's (and
            # count the wait against the connect timeout); each store's rate limit bounds what it
            # sends at once. An idle connection is closed after 30 s, before common servers'
            # keep-alive ends (60 to 75 s), so a request never meets one they closed.
            connector = aiohttp.TCPConnector(ssl=_tls_context(), limit=0, keepalive_timeout=30.0)
            # No cookie jar: every tenant's stores share the pool, and a cookie one shop's answer set
            # must never ride on another's requests (the platforms authenticate by token, not cookie).
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": _USER_AGENT}, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    def proxy(self, url: URL) -> str | None:
        """The proxy HTTPS_PROXY / HTTP_PROXY name for `url` unless NO_PROXY exempts its host, as for
        kubectl; looked up once per host (aiohttp's trust_env looks in a thread on every request,
        for .netrc: half of a read's CPU)."""
        key = (url.scheme, url.host)
        if key not in self._proxies:
            env = urllib.request.getproxies_environment()
            exempt = url.host is not None and bool(urllib.request.proxy_bypass(url.host))
            self._proxies[key] = None if exempt else env.get(url.scheme)
        return self._proxies[key]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpClient:
    """Sends one provider's requests, on the shared `connections` or on a pool of its own."""

    def __init__(self, timeout: float, connections: Connections | None = None) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout, sock_connect=min(10.0, timeout), sock_read=timeout
        )
        self._shared = connections is not None
        self._connections = connections or Connections()

    async def send(self, request: Request, *, stream: bool = False) -> Response:
        """The platform's answer, or NoAnswer. With `stream`, the body is left for the caller to read
        and the response to close."""
        url = URL(request.url, encoded=True)  # encoded once by build_request: not parsed again
        try:
            raw = await self._connections.session().request(
                request.method,
                url,
                headers=request.headers,
                data=request.content,
                allow_redirects=False,
                timeout=self._timeout,
                proxy=self._connections.proxy(url),
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _no_answer(exc) from exc
        if stream:
            return Response(raw, b"")
        try:
            return Response(raw, await raw.read())
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise _no_answer(exc) from exc
        finally:
            raw.release()

    async def aclose(self) -> None:
        if not self._shared:
            await self._connections.aclose()
