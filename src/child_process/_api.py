"""The public functions: each validates everything first (``_options``), then starts the child."""

from __future__ import annotations

from typing import Any, Sequence

from ._child import ChildProcess
from ._options import normalize_spawn


def spawn(command: Any, args: Sequence[Any] = (), *, cwd: Any = None, env: Any = None,
          argv0: Any = None, stdio: Any = "pipe", detached: bool = False, uid: Any = None,
          gid: Any = None, serialization: str = "json", shell: Any = False, signal: Any = None,
          timeout: Any = None, kill_signal: Any = "SIGTERM") -> ChildProcess:
    """Start ``command`` with ``args``; return its ChildProcess at once (Node's spawn).

    A failure to start never raises: the child emits 'error' on the next loop turn.
    """
    spec = normalize_spawn(command, args, cwd=cwd, env=env, argv0=argv0, stdio=stdio,
                           detached=detached, uid=uid, gid=gid, serialization=serialization,
                           shell=shell, signal=signal, timeout=timeout, kill_signal=kill_signal)
    child = ChildProcess()
    child._spawn(spec)
    return child
