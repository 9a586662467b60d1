# Stub for the compiled module cext/_v8.pyx: V8's value serialization format (Node 20).
from __future__ import annotations

from typing import Any

from typing_extensions import Buffer as _Buffer

#: The format version written in the header.
VERSION: int
#: The oldest version read.
MIN_VERSION: int
#: Nesting limit of both directions.
MAX_NESTING: int

class V8DecodeError(ValueError): ...

def v8_encode(value: Any) -> bytes: ...
def v8_encode_frame(value: Any) -> bytes: ...
def v8_decode(payload: _Buffer) -> Any: ...
