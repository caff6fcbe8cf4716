"""Load mode benchmark: N homes in real time from one process; does the generator keep up?

    .venv/bin/python bench/sim_load.py --homes 2000 --seconds 60

Prints readings sent, the rate, and the process CPU time used per wall second (below 1.0
means one core keeps up with real time). Readings go to a sink that only counts them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta

from devices.payload import Reading
from simulators.cohort.cohort import Cohort
from simulators.drive import drive


class _Count:
    def __init__(self) -> None:
        self.n = 0

    async def send(self, batches: list[list[Reading]]) -> None:
        self.n += sum(len(b) for b in batches)


async def main(homes: int, seconds: float) -> None:
    now = datetime.now(UTC)
    cohort = Cohort(homes, 1, seed=1, start=now.replace(hour=0, minute=0, second=0))
    sink = _Count()
    t0, cpu0 = time.monotonic(), time.process_time()
    skip_done: list[float] = []

    def progress(at: datetime, sent: int) -> None:
        if not skip_done:
            skip_done.extend((time.monotonic(), time.process_time()))

    task = asyncio.create_task(
        drive(cohort.readings(), sink, speed=1.0, skip_before=now, on_progress=progress,
              window=timedelta(seconds=10))
    )  # fmt: skip
    await asyncio.sleep(seconds)
    task.cancel()
    live_wall = time.monotonic() - skip_done[0]
    live_cpu = time.process_time() - skip_done[1]
    print(
        f"{homes} homes: caught up to now in {skip_done[0] - t0:.1f} s "
        f"(CPU {skip_done[1] - cpu0:.1f} s); then {live_wall:.0f} s live: {sink.n} readings "
        f"({sink.n / live_wall:.0f}/s), CPU {live_cpu / live_wall:.2f} s per wall second"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--homes", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.homes, args.seconds))
