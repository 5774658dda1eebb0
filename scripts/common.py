"""What every benchmark script shares: one timer, and a report of the machine and its load."""

from __future__ import annotations

import os
import platform
import time
from typing import Callable

# A machine is "busy" when its 1-minute load average exceeds this fraction of its cores.
BUSY_FRACTION = 0.25


def load_report() -> str:
    """One line: the machine, its cores and its load averages, with a warning when it is busy."""
    one, five, fifteen = os.getloadavg()
    cores = os.cpu_count() or 1
    line = (f"Machine: {platform.machine()}, {cores} CPU(s), Python {platform.python_version()}; "
            f"load average at start {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min).")
    if one > BUSY_FRACTION * cores:
        line += f" **Warning: the machine was busy (load {one:.2f} on {cores} cores); timings are not reliable.**"
    return line


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    walls.sort(); cpus.sort()
    return walls[len(walls) // 2], cpus[len(cpus) // 2]
