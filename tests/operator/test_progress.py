"""`Reconciling ... pushed N/M` never stands in the way of a push: a hanging API server must not stop
pushes under way (docs/operations.md, "kube-apiserver down"). The fake Kube's status patch hangs."""

from __future__ import annotations

import asyncio
from typing import Any

from invsync.operator.kube import Kube
from invsync.operator.runtime import Operator, Shard
from invsync.operator.worker import ProgressWriter, RuleWorker


class HangingKube(Kube):
    """A status patch that the API server accepts and never answers."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []
        self.cancelled = 0

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Any, timeout: Any = None
    ) -> Any:
        self.started.append(dict(status))
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def test_pushes_go_on_while_the_progress_write_hangs() -> None:
    kube = HangingKube()
    worker = RuleWorker(
        Operator(kube, Shard()), {"metadata": {"name": "r", "namespace": "shop", "generation": 1}}
    )
    progress = ProgressWriter(worker._write_progress)
    pushed = []

    async def push_all() -> None:  # what act.push_rows does: push a product, report progress, go on
        for done in range(1, 101):
            pushed.append(done)
            await progress(done, 100)
            await asyncio.sleep(0)

    await asyncio.wait_for(push_all(), 5)  # with an awaited write, this hung at the first product
    assert pushed == list(range(1, 101))
    # One write in flight, hanging; the values reported meanwhile are not queued behind it.
    assert len(kube.started) == 1
    [cond] = kube.started[0]["conditions"]
    assert (cond["type"], cond["reason"], cond["message"]) == ("Reconciling", "Pushing", "pushed 1/100")
    await asyncio.wait_for(progress.close(), 5)
    assert kube.cancelled == 1 and not progress.failed  # cancelled by close(), not timed out


async def test_the_latest_progress_wins_and_a_failing_write_is_dropped() -> None:
    written: list[tuple[int, int]] = []
    gate = asyncio.Event()

    async def write(done: int, total: int) -> None:
        written.append((done, total))
        if done == 1:
            await gate.wait()
        if done == 3:
            raise ConnectionError("API server gone")

    progress = ProgressWriter(write)
    await progress(1, 9)
    await asyncio.sleep(0)
    await progress(2, 9)
    await progress(3, 9)  # replaces 2/9 while 1/9 is still being written
    gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    await progress(4, 9)  # the failed 3/9 did not stop the writer
    for _ in range(5):
        await asyncio.sleep(0)
    assert written == [(1, 9), (3, 9), (4, 9)]
    assert progress.failed  # the worker retries such a sync: the API server was away mid-push
    await progress.close()
