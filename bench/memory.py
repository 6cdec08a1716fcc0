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


def children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return kids


def rss_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; PSS falls back to RSS where smaps_rollup is missing."""
    with open(f"/proc/{pid}/statm") as handle:
        rss = int(handle.read().split()[1]) * PAGE
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


def tree_memory(pid: int | None = None) -> dict[str, int]:
    """RSS in bytes of a process and all its descendants, in total ("total"), per kind of process,
    and the tree's PSS ("pss")."""
    root = pid or os.getpid()
    totals: dict[str, int] = {"total": 0, "pss": 0, "processes": 0}
    todo = [root]
    while todo:
        p = todo.pop()
        try:
            rss, pss = rss_pss(p)
        except OSError:
            continue
        name = kind(p, root)
        totals[name] = totals.get(name, 0) + rss
        totals["total"] += rss
        totals["pss"] += pss
        totals["processes"] += 1
        todo += children(p)
    return totals
