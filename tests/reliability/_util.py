"""Helpers shared by the reliability tests."""

from __future__ import annotations

import os
import time

# the helpers the IPC tests use too, re-exported for the reliability tests
from ipc_peers import (PRELUDE as PRELUDE, PY as PY, WAIT as WAIT, child_env as child_env,
                       record as record, run_until as run_until, script as script)

MIB = 1024 * 1024


def rss_kib(pid: str = "self") -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def fd_count(pid: str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def zombies_of(pid: int | None = None) -> list:
    """Zombie children of ``pid`` (default: this process)."""
    me = os.getpid() if pid is None else pid
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == me and rest[0] == "Z":
            found.append(int(name))
    return found


class Stopwatch:
    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return round(time.monotonic() - self.t0, 3)
