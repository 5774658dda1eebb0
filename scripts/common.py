"""What the scripts share: the book's table of contents, one timer, thread limits, and a report
of the machine (hardware, load, library versions).

The scripts never import ``tests``; ``tests/notebooks.py`` imports the table of contents from
here. Only the standard library and PyYAML are imported at module level, so importing this
module is cheap; torch and threadpoolctl are imported by the functions that need them.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Callable, Iterator

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"

# A machine is "busy" when its 1-minute load average exceeds this fraction of its cores.
BUSY_FRACTION = 0.25
# Seconds to sleep after changing thread limits, so that worker threads of the previous
# setting stop spinning before a timing starts. OpenBLAS's idle workers spin for about
# 2**28 cycles (~0.1 s) after each call and are counted in the process's CPU time.
SETTLE_S = 0.5
# The libraries the status page reports, as (label, distribution names to try).
LIBRARIES = (("NumPy", ("numpy",)), ("torch", ("torch",)), ("Keras", ("keras",)),
             ("TensorFlow", ("tensorflow", "tensorflow-cpu")), ("JAX", ("jax",)))


# --- the table of contents -------------------------------------------------------------------


def toc_files(root: Path = ROOT) -> list[Path]:
    """Every file ``_toc.yml`` lists, in toc order, resolved to its path on disk (with suffix)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc["root"]]

    def walk(items):
        for item in items or []:
            if "file" in item:
                entries.append(item["file"])
            walk(item.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    resolved = []
    for entry in entries:
        matches = [root / f"{entry}{suffix}" for suffix in (".ipynb", ".md") if (root / f"{entry}{suffix}").exists()]
        if len(matches) != 1:
            raise FileNotFoundError(f"_toc.yml entry {entry!r} matches {len(matches)} files (expected one .ipynb or .md)")
        resolved.append(matches[0])
    return resolved


def toc_notebooks(root: Path = ROOT) -> list[Path]:
    """The chapters: the notebooks of ``_toc.yml``, in toc order."""
    return [p for p in toc_files(root) if p.suffix == ".ipynb"]


# --- the machine ---------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else ``platform``), and its architecture."""
    name = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                name = line.split(":", 1)[1].strip()
                break
    name = name or platform.processor() or "unknown CPU"
    return f"{name} ({platform.machine()})"


def memory_gib() -> float | None:
    """Total physical memory in GiB (Linux ``/proc/meminfo``), or None where unknown."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    return None


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all cores, all processes).

    Read from the first line of ``/proc/stat`` (user, nice, system, irq, softirq, steal; not
    idle or iowait). The difference of two readings, minus what our own processes used, is
    what other processes used in between. None where ``/proc/stat`` does not exist.
    """
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return None


def is_busy(load: float, cores: int | None = None) -> bool:
    """Whether a load (runnable processes, as in a load average) makes timings unreliable."""
    return load > BUSY_FRACTION * (cores or os.cpu_count() or 1)


def load_report() -> str:
    """One line: the machine, its cores and its load averages, with a warning when it is busy."""
    one, five, fifteen = os.getloadavg()
    cores = os.cpu_count() or 1
    line = (f"Machine: {cpu_model()}, {cores} CPU(s), Python {platform.python_version()}; "
            f"load average at start {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min).")
    if is_busy(one, cores):
        line += f" **Warning: the machine was busy (load {one:.2f} on {cores} cores); timings are not reliable.**"
    return line


def versions() -> dict[str, str]:
    """Installed versions of Python and the course's frameworks (``"not installed"`` if absent).

    Read with ``importlib.metadata``, so nothing is imported.
    """
    found = {"Python": platform.python_version()}
    for label, distributions in LIBRARIES:
        found[label] = "not installed"
        for dist in distributions:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                found[label] = importlib.metadata.version(dist)
                break
    return found


# --- timing ---------------------------------------------------------------------------------


def median_time(fn: Callable[[], object], repeats: int = 7, warmup: int = 1) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` runs, after ``warmup`` runs.

    CPU seconds are the process's (``time.process_time``: every thread), so with ``n`` threads
    they can be up to ``n`` times the wall seconds, never more (see :func:`cpu_fits_threads`).
    """
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


def cpu_fits_threads(wall: float, cpu: float, threads: int, slack: float = 0.10) -> bool:
    """Whether ``cpu`` seconds could have been spent by ``threads`` threads in ``wall`` seconds.

    ``cpu <= wall * threads``, with a relative ``slack`` for the two clocks' granularity
    and for the medians coming from different runs. False means something else in the
    process (another library's worker threads) was running: the thread limit did not hold.
    """
    return cpu <= wall * threads * (1 + slack)


def settle(seconds: float = SETTLE_S) -> None:
    """Sleep ``seconds`` so that idle worker threads of the last computation stop spinning.

    Call before each timing: otherwise one library's spinning workers (OpenBLAS's, after a
    NumPy call) are counted in, and compete with, the next library's timing.
    """
    time.sleep(seconds)


def blas_name() -> str:
    """The BLAS NumPy was built with, and its version (from ``numpy.__config__``)."""
    import numpy as np

    with contextlib.suppress(AttributeError, KeyError, TypeError):
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    return "unknown BLAS"


@contextlib.contextmanager
def limit_threads(threads: int, settle_s: float = SETTLE_S) -> Iterator[None]:
    """Run the block with ``threads`` threads for torch and for every native thread pool.

    Sets ``torch.set_num_threads`` (intra-op threads) and, with threadpoolctl, the BLAS
    (NumPy's OpenBLAS, MKL) and OpenMP pools; checks that both took effect; then sleeps
    ``settle_s`` so the idle workers of the previous setting stop spinning. Restores the
    previous settings on exit.
    """
    import torch
    from threadpoolctl import ThreadpoolController

    if threads < 1:
        raise ValueError(f"`threads` must be a positive integer. Received: threads={threads!r}")
    controller = ThreadpoolController()
    previous = torch.get_num_threads()
    with controller.limit(limits=threads):
        torch.set_num_threads(threads)
        try:
            pools = {(p["internal_api"], p["num_threads"]) for p in ThreadpoolController().info()}
            wrong = {pool for pool in pools if pool[1] != threads}
            if torch.get_num_threads() != threads or wrong:
                raise RuntimeError(f"thread limit {threads} not applied: torch {torch.get_num_threads()}, pools {wrong}")
            settle(settle_s)
            yield
        finally:
            torch.set_num_threads(previous)
