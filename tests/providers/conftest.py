"""The sandbox every contract test here runs against (config in platform_env.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from platform_env import config

from invsync.sandbox.server import Sandbox, run_sandbox


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with run_sandbox(config()) as sb:
        yield sb
