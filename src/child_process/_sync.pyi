# Stub for the compiled module cext/_sync.pyx: spawn_sync's whole run in C, GIL released.
from __future__ import annotations

from typing_extensions import Buffer as _Buffer

#: slot codes besides a parent descriptor, FD_CLOSED and FD_DEVNULL
PIPE_IN: int
PIPE_OUT: int
#: how the run ended, besides a normal exit
ENDED_OK: int
ENDED_TIMEOUT: int
ENDED_MAXBUFFER: int
ENDED_EPIPE: int

def run(path: bytes, argv: list[bytes], envp: list[bytes], cwd: bytes | None, slots: list[int],
        detached: bool, uid: int, gid: int, input: _Buffer | None, timeout: float,
        kill_signal: int, max_buffer: int, new_group: bool = False, pdeathsig: int = 0,
        ) -> tuple[int, int, list[bytes | None], int, int]: ...
def devnull_descriptors() -> tuple[int, int]: ...
def spawner() -> str: ...
def set_spawner(name: str) -> str: ...
