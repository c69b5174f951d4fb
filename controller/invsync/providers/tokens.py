"""Refreshed token pairs, shared by every client of one account (shop or seller) in the process and
handed to the token sink, which writes them to the Store's Secret so they outlive the process
(docs/security.md, "TikTok tokens", "Shopee tokens", "Lazada tokens")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

log = logging.getLogger("invsync.providers.tokens")


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A refreshed access token, its refresh token and when the access token expires (unix time)."""

    access_token: str
    refresh_token: str
    access_token_expire_in: int


# Called with every refreshed pair (the operator writes it to the Store's Secret); a failure is
# logged and retried before the account's next call, and the pair is used in this process anyway.
TokenSink = Callable[[TokenPair], Awaitable[None]]

# The newest refreshed pair of an account, by (platform, endpoint, account, the Secret's access token).
# A refresh retires the account's previous token, so clients of one account (two rules on a Store)
# that each refreshed on their own would keep expiring each other's token, and where refresh tokens
# are single-use the second refresh would lock the account out.
_NEWEST: dict[Hashable, TokenPair] = {}
_UNSAVED: set[Hashable] = set()  # accounts whose newest pair the sink has not taken yet
_LOCKS: dict[tuple[int, Hashable], asyncio.Lock] = {}  # by event loop, then account


class SharedTokens:
    """One client's handle on its account's tokens: `use` puts a pair into the client's credentials."""

    def __init__(
        self,
        account: Hashable,
        *,
        platform: str,
        store: str,
        use: Callable[[TokenPair], None],
        sink: TokenSink | None,
        redact: Callable[[str], str],
        single_use: bool,
    ) -> None:
        self.account = account
        self.platform = platform
        self.store = store
        self._use = use
        self._sink = sink
        self._redact = redact
        self._single_use = single_use
        if account in _NEWEST:  # another client of the account refreshed already
            use(_NEWEST[account])

    def _lock(self) -> asyncio.Lock:
        return _LOCKS.setdefault((id(asyncio.get_running_loop()), self.account), asyncio.Lock())

    async def refresh(self, expired: str, exchange: Callable[[], Awaitable[TokenPair]]) -> None:
        """A new pair from `exchange`, one refresh at a time per account and none when another client
        already replaced the `expired` token. The sink gets the pair before this client uses it: a
        single-use refresh token is spent the moment the answer arrives."""
        async with self._lock():
            newest = _NEWEST.get(self.account)
            if newest is not None and newest.access_token != expired:
                self._use(newest)
                return
            pair = await exchange()
            _NEWEST[self.account] = pair
            _UNSAVED.add(self.account)
            await self._save()
            self._use(pair)

    async def save_pending(self) -> None:
        """Hand the newest pair to the sink if an earlier attempt failed (checked before each call)."""
        if self.account in _UNSAVED and self._sink is not None:
            async with self._lock():
                if self.account in _UNSAVED:
                    await self._save()

    async def _save(self) -> None:
        if self._sink is None:
            _UNSAVED.discard(self.account)
            return
        try:
            await self._sink(_NEWEST[self.account])
        except Exception as exc:  # the pair works in this process either way
            cause = f"{type(exc).__name__}: {self._redact(str(exc))}"
            if self._single_use:
                log.error(
                    "%s store %s: refreshed token not saved (%s); its refresh token is single-use: until "
                    "it is saved, a restart means the seller must authorize the app again; retried "
                    "before the next call",
                    self.platform,
                    self.store,
                    cause,
                )
            else:
                log.warning(
                    "%s store %s: refreshed token not saved (%s); retried before the next call, and a "
                    "restart before then refreshes again",
                    self.platform,
                    self.store,
                    cause,
                )
            return
        _UNSAVED.discard(self.account)
