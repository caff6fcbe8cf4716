"""The benchmark's figures: what one measure is, the CPU a phase used, and the report (a
table on the terminal, the JSON file)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

console = Console()


@dataclass
class Figure:
    """One measured number, and what it is compared with."""

    name: str
    value: float
    unit: str
    baseline: str | None = None
    ratio: float | None = None
    target: str | None = None
    ok: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class CpuUse:
    """CPU used on the whole machine, and by this process's finished children (the
    `mosquitto_pub` load generators, which stand in for devices on other machines), from
    creation to `cores()`: core-seconds per second. Tells whether a phase was CPU-bound."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._machine0 = self._machine()
        self._children0 = self._children()

    @staticmethod
    def _machine() -> float:
        t = psutil.cpu_times()
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0))

    @staticmethod
    def _children() -> float:
        t = os.times()
        return t.children_user + t.children_system

    def cores(self) -> dict[str, float]:
        elapsed = time.perf_counter() - self._t0
        return {
            "machine_busy_cores": round((self._machine() - self._machine0) / elapsed, 2),
            "load_generator_cores": round((self._children() - self._children0) / elapsed, 2),
            "cores": float(os.cpu_count() or 1),
        }


def print_table(figures: list[Figure]) -> None:
    """The figures as a table on the terminal."""
    table = Table(title="eldercare benchmarks (this machine, this run)")
    for col in ("measure", "value", "ratio", "target", "ok"):
        table.add_column(col)
    for f in figures:
        busy = f.detail.get("machine_busy_cores")
        table.add_row(
            f.name,
            f"{f.value:,.1f} {f.unit}"
            + (
                ""
                if busy is None
                else f"\nCPU {busy:.2f} of {f.detail['cores']:.0f} cores busy, "
                f"{f.detail['load_generator_cores']:.2f} the load generator's"
            ),
            "" if f.ratio is None else f"{f.ratio:.2f}",
            f.target or "",
            "" if f.ok is None else ("yes" if f.ok else "NO"),
        )
    console.print(table)


def write_json(path: Path, figures: list[Figure]) -> None:
    """The report as JSON (`bench/results/latest.json`): when, how many cores, the figures."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "at": datetime.now(UTC).isoformat(),
                "cores": os.cpu_count(),
                "figures": [asdict(f) for f in figures],
            },
            indent=2,
        )
    )
