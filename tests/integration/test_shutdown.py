"""A process asked to stop either stops or, after `shutdown_timeout_s`, says what it is stuck
in and exits: never a process that lives on (the benchmark found such processes, still
reconnecting to a broker and a database long gone)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from runtime.service import SHUTDOWN_STUCK_EXIT

pytestmark = pytest.mark.integration

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from runtime.service import serve
    from runtime.settings import Settings

    async def stubborn(running):
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:  # a bug: it swallows its cancellation
                print("stubborn ignores its cancellation", flush=True)

    def ready(running):
        os.kill(os.getpid(), signal.SIGTERM)

    extra = (("stubborn", stubborn),) if sys.argv[2] == "stuck" else ()
    settings = Settings(database={"url": sys.argv[1]}, shutdown_timeout_s=2.0)
    asyncio.run(serve(settings, (), extra=extra, on_ready=ready))
    print("exited normally", flush=True)
    """
)


@pytest.mark.parametrize("case", ["clean", "stuck"])
def test_a_stop_ends_the_process_one_way_or_the_other(db_url: str, case: str) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, db_url, case],
        capture_output=True,
        text=True,
        timeout=60,
    )
    took = time.monotonic() - started
    out = done.stdout + done.stderr
    if case == "clean":
        assert done.returncode == 0, out
        assert "exited normally" in done.stdout
        assert "not stopped" not in out
        return
    assert done.returncode == SHUTDOWN_STUCK_EXIT, out
    assert "stubborn ignores its cancellation" in done.stdout
    assert "not stopped 2 s after being asked to" in done.stderr
    assert "name='stubborn'" in done.stderr  # the task it was stuck in, with its stack
    assert "in stubborn" in done.stderr
    assert took >= 2.0
