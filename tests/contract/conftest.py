"""The sandbox every contract test here runs against (the world in contract_env.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contract_env import world

from invsync.sandbox.server import Sandbox, SandboxThread


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with SandboxThread(world()) as sb:
        yield sb
