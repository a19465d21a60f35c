"""The detection child process: rejects come back with their place, and it dies with its parent."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from stream.config import Settings
from stream.detection_process import DetectionProcess

ORPHAN = """
import asyncio, os, signal
from stream.config import Settings
from stream.detection_process import DetectionProcess

async def main():
    child = DetectionProcess(Settings(redis_url="redis://127.0.0.1:1/0"))
    await child.run([b"not json"])
    import multiprocessing
    print(multiprocessing.active_children()[0].pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_rejects_come_back_with_their_index_and_reason() -> None:
    async def scenario() -> list[tuple[int, str, str | None]]:
        # Only bad records: the child never needs Redis (the URL points nowhere).
        child = DetectionProcess(Settings(redis_url="redis://127.0.0.1:1/0"))
        try:
            done = await child.run([b"{", b'{"type": "share", "event_id": "e"}', b"\xff"])
        finally:
            await child.close()
        assert done.state_error is None and not done.result.alerts
        return [(r.index, r.reason, r.field) for r in done.rejected]

    assert asyncio.run(scenario()) == [
        (0, "invalid_json", None),
        (1, "unknown_type", "type"),
        (2, "not_utf8", None),
    ]


def test_the_child_exits_when_its_parent_is_killed() -> None:
    parent = subprocess.run(
        [sys.executable, "-c", ORPHAN], capture_output=True, text=True, timeout=60, cwd=os.getcwd()
    )
    child = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(child, 9)
    raise AssertionError("the detection process outlived its killed parent")


def test_the_stage_child_reports_a_redis_failure_instead_of_raising() -> None:
    from stream.swarm_stage import ForwardedLike

    async def scenario() -> tuple[str | None, list[object]]:
        # Redis is unreachable: the stage's likes come back unprocessed, with no alerts, so
        # the parent retries them.
        child = DetectionProcess(Settings(redis_url="redis://127.0.0.1:1/0"))
        try:
            done = await child.run_stage([ForwardedLike(0, 10.0, "e1", "u1", "p1", "a1", None)])
        finally:
            await child.close()
        return done.state_error, list(done.alerts)

    error, alerts = asyncio.run(scenario())
    assert error is not None and "127.0.0.1:1" in error
    assert alerts == []
