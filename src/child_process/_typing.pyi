# Type aliases of the public API. A stub only: there is no _typing.py, nothing imports this at
# run time (the modules import it under TYPE_CHECKING; a forked child never pays for `typing`).
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Literal, Protocol

from typing_extensions import Buffer, TypeAlias

from ._abort import AbortSignal
from ._errors import ExecError

StrPath: TypeAlias = str | os.PathLike[str]
StrOrBytesPath: TypeAlias = str | bytes | os.PathLike[str] | os.PathLike[bytes]

#: ``args``: str, bytes or path-like, in a list or tuple
Args: TypeAlias = Sequence[StrOrBytesPath] | None
#: ``env``: replaces the environment; None values are skipped; None is os.environ at call time
EnvValue: TypeAlias = StrOrBytesPath | None
Env: TypeAlias = Mapping[str, EnvValue] | Mapping[bytes, EnvValue] | None

class HasFileno(Protocol):
    def fileno(self) -> int: ...

StdioName: TypeAlias = Literal["pipe", "overlapped", "ignore", "inherit"]
#: one entry of a ``stdio`` list: a name, 'ipc', a parent descriptor, an object with fileno(),
#: or None (pipe on 0-2, ignore on 3+)
StdioEntry: TypeAlias = StdioName | Literal["ipc"] | int | HasFileno | None
Stdio: TypeAlias = StdioName | Sequence[StdioEntry]
#: a signal name in any case ('SIGTERM', 'sigkill') or number
Signal: TypeAlias = str | int
Serialization: TypeAlias = Literal["json", "advanced", "pickle"]
#: True: /bin/sh; a string or path: that shell
Shell: TypeAlias = bool | StrPath
#: seconds; None or 0: no limit
Seconds: TypeAlias = float | None
#: bytes (or characters) per stream; None or float('inf'): no limit
MaxBuffer: TypeAlias = float | None
#: a codec name gives str; None, 'buffer' or an unknown name gives bytes
Encoding: TypeAlias = str | None
#: spawn_sync's input: str (UTF-8) or any buffer
Input: TypeAlias = str | Buffer | None
#: ``callback(err, stdout, stderr)`` of exec/exec_file; stdout/stderr are str or bytes
ExecCallback: TypeAlias = Callable[[ExecError | None, Any, Any], object]
#: ``callback(err)`` of send(): None once the message is handed to the kernel
SendCallback: TypeAlias = Callable[[BaseException | None], object]
OptionalAbortSignal: TypeAlias = AbortSignal | None
