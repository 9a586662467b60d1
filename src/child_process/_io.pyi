# Stub for the compiled module cext/_io.pyx: one non-blocking read or write.
from __future__ import annotations

from typing_extensions import Buffer as _Buffer

def read_chunk(fd: int, size: int) -> bytes | None: ...
def write_some(fd: int, data: _Buffer, is_socket: bool) -> int: ...
