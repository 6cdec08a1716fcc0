"""Memory of a process tree (a command, the Spark JVM it starts, PySpark workers, a Prefect server).

RSS counts a page shared by several processes once per process: PySpark's daemon forks its
workers, so their RSS includes the daemon's pages again. PSS (proportional set size) splits each
shared page among its sharers, so the PSS of all processes adds up to the memory really used.
Both are reported.
"""

from __future__ import annotations

import os
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def parents() -> dict[int, list[int]]:
    """{pid: its children's pids} for every process, from one pass over /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(parent, []).append(int(entry))
    return kids


def rss_pss(pid: int, pss: bool = True) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; PSS is RSS without `pss` or where smaps_rollup is missing.

    Reading smaps_rollup makes the kernel walk the page tables: ~70 ms for a Spark JVM here, so
    frequent samplers ask for it less often than for RSS (which costs nothing).
    """
    with open(f"/proc/{pid}/statm") as handle:
        rss = int(handle.read().split()[1]) * PAGE
    if pss:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        return rss, int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, rss


def kind(pid: int, root: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "other"
    if pid == root:
        return "python"
    if "java" in cmd.split(" ", 1)[0]:
        return "jvm"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
        return "workers"
    if "prefect" in cmd or "uvicorn" in cmd:
        return "prefect"
    return "other"


def tree_memory(pid: int | None = None, pss: bool = True) -> dict[str, int]:
    """RSS in bytes of a process and all its descendants, in total ("total"), per kind of process,
    and the tree's PSS ("pss"; equal to the RSS total when `pss` is False)."""
    root = pid or os.getpid()
    kids = parents()
    totals: dict[str, int] = {"total": 0, "pss": 0, "processes": 0}
    todo = [root]
    while todo:
        p = todo.pop()
        try:
            rss, proportional = rss_pss(p, pss)
        except OSError:
            continue
        name = kind(p, root)
        totals[name] = totals.get(name, 0) + rss
        totals["total"] += rss
        totals["pss"] += proportional
        totals["processes"] += 1
        todo += kids.get(p, [])
    return totals
