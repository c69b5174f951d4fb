"""providers/client.py over real sockets: a request arrives as build_request made it, bodies stream,
and each failure is a NoAnswer of its cause (the metric's code tells a refused connection from a
timeout)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from invsync.providers.client import Connections, HttpClient, NoAnswer, build_request

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    return head, await reader.readexactly(length)


def keep_alive(answer: bytes, heads: list[bytes], connections: list[int]) -> Handler:
    """A server handler answering every request of a connection with `answer`, noting each
    connection and each request's head."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while not reader.at_eof():
            try:
                head, _ = await read_request(reader)
            except asyncio.IncompleteReadError:
                break
            heads.append(head)
            writer.write(answer)
            await writer.drain()
        writer.close()

    return handler


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    client = HttpClient(timeout=1.0)
    yield client
    await client.aclose()


async def get(client: HttpClient, url: str) -> None:
    response = await client.send(build_request("GET", url))
    await response.aclose()


async def test_the_request_arrives_as_it_was_built_and_the_body_streams(client: HttpClient) -> None:
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        body = b"x" * 200_000
        writer.write(
            b"HTTP/1.1 201 Created\r\nX-Answer: 42\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server, url = await serve(handler)
    async with server:
        request = build_request(
            "POST",
            f"{url}/path",
            params={"a": "1 2", "sign": "a/b+c="},
            content=b'{"k":1}',
            headers={"x-tts-access-token": "t"},
        )
        response = await client.send(request, stream=True)
        chunks = [chunk async for chunk in response.aiter_bytes()]
        await response.aclose()
    (head, body) = seen[0]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /path?a=1+2&sign=a%2Fb%2Bc%3D HTTP/1.1"  # the query as encoded, once
    headers = [line.split(":", 1)[0].lower() for line in lines[1:] if line]
    assert sorted(headers) == sorted(set(headers))  # nothing sent twice
    assert {"host", "x-tts-access-token", "content-length"} <= set(headers) and "user-agent" in headers
    assert body == b'{"k":1}'
    assert (response.status_code, response.headers["x-answer"]) == (201, "42")
    assert b"".join(chunks) == b"x" * 200_000 and len(chunks) > 1


async def test_a_refused_connection_is_a_connection_error_not_a_timeout(client: HttpClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(NoAnswer) as caught:
        await get(client, f"http://127.0.0.1:{port}/")
    assert caught.value.code == "connection_error"


async def test_a_server_that_never_answers_is_a_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    server, url = await serve(handler)
    client = HttpClient(timeout=0.3)
    async with server:
        with pytest.raises(NoAnswer) as caught:
            await get(client, url)
    await client.aclose()
    assert caught.value.code == "timeout"


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly this", b""],
    ids=["body cut short", "closed before an answer"],
)
async def test_a_connection_lost_mid_exchange_is_a_connection_error_not_a_timeout(
    client: HttpClient, answer: bytes
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server, url = await serve(handler)
    async with server:
        with pytest.raises(NoAnswer) as caught:
            await get(client, url)
    assert caught.value.code == "connection_error"


async def test_clients_on_shared_connections_reuse_one_connection_and_leave_it_open() -> None:
    """The operator builds its providers for each sync: on its Connections, the second sync's client
    sends on the connection the first opened, and closing a client does not close the pool."""
    connections: list[int] = []
    server, url = await serve(keep_alive(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", [], connections))
    shared = Connections()
    async with server:
        for _sync in range(3):
            client = HttpClient(timeout=1.0, connections=shared)
            response = await client.send(build_request("GET", f"{url}/page"))
            assert response.content == b"ok"
            await client.aclose()
        await shared.aclose()
        own = HttpClient(timeout=1.0)  # without shared connections: a pool of its own, closed with it
        await get(own, url)
        await own.aclose()
    assert len(connections) == 2


async def test_a_proxy_in_the_environment_carries_the_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY / HTTPS_PROXY / NO_PROXY are honoured, as by kubectl: behind an egress proxy, the
    platform calls go through it."""
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await read_request(reader)
        seen.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server, proxy_url = await serve(proxy)
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    client = HttpClient(timeout=1.0)
    async with server:
        response = await client.send(build_request("GET", "http://platform.invalid/api", {"a": "1"}))
    await client.aclose()
    assert seen == [b"GET http://platform.invalid/api?a=1 HTTP/1.1"] and response.content == b"ok"


async def test_a_cookie_one_answer_sets_is_never_sent_again() -> None:
    """Every tenant's stores share the operator's connections: a cookie set in one shop's answer must
    not ride on the next request, whichever store sends it."""
    heads: list[bytes] = []
    answer = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=shop-a; Path=/\r\nContent-Length: 2\r\n\r\nok"
    server, url = await serve(keep_alive(answer, heads, []))
    shared = Connections()
    async with server:
        for _store in ("shop-a", "shop-b"):
            client = HttpClient(timeout=1.0, connections=shared)
            # by name: a cookie jar keeps no cookie of a bare IP address
            await client.send(build_request("GET", f"{url.replace('127.0.0.1', 'localhost')}/api"))
            await client.aclose()
        await shared.aclose()
    assert len(heads) == 2 and all(b"cookie:" not in head.lower() for head in heads)


async def test_no_proxy_exempts_its_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_PROXY lists the hosts reached directly, as for kubectl (here a name that resolves nowhere,
    so the call fails as a direct one)."""
    for name in ("no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: used, it would refuse
    monkeypatch.setenv("NO_PROXY", "platform.invalid")
    client = HttpClient(timeout=1.0)
    with pytest.raises(NoAnswer, match=r"platform\.invalid"):
        await get(client, "http://platform.invalid/api")
    await client.aclose()
