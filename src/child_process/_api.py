"""The public functions: each validates everything first (``_options``), then starts the child."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from ._abort import AbortSignal
    from ._typing import (Args, Env, Seconds, Serialization, Shell, Signal, Stdio, StrOrBytesPath,
                          StrPath)

import sys

from ._child import ChildProcess
from ._errors import NodeValueError, invalid_arg_type
from ._options import check_string, normalize_spawn


def spawn(command: StrPath, args: Args = (), *, cwd: StrOrBytesPath | None = None,
          env: Env = None, argv0: StrOrBytesPath | None = None, stdio: Stdio = "pipe",
          detached: bool = False, uid: int | None = None, gid: int | None = None,
          serialization: Serialization = "json", shell: Shell = False,
          signal: AbortSignal | None = None, timeout: Seconds = None,
          kill_signal: Signal = "SIGTERM",
          kill_tree: bool = False, die_with_parent: bool | Signal = False) -> ChildProcess:
    """Start ``command`` with ``args``; return its ChildProcess at once (Node's spawn).

    A failure to start never raises: the child emits 'error' on the next loop turn.
    """
    spec = normalize_spawn(command, args, cwd=cwd, env=env, argv0=argv0, stdio=stdio,
                           detached=detached, uid=uid, gid=gid, serialization=serialization,
                           shell=shell, signal=signal, timeout=timeout, kill_signal=kill_signal,
                           kill_tree=kill_tree, die_with_parent=die_with_parent)
    child = ChildProcess()
    child._spawn(spec)
    return child


def fork(module_path: StrOrBytesPath, args: Args = (), *, cwd: StrOrBytesPath | None = None,
         detached: bool = False, env: Env = None, exec_path: StrPath | None = None,
         exec_argv: Args = None, gid: int | None = None, uid: int | None = None,
         serialization: Serialization = "json", signal: AbortSignal | None = None,
         kill_signal: Signal = "SIGTERM", silent: bool = False,
         stdio: Stdio | None = None, timeout: Seconds = None,
         kill_tree: bool = False, die_with_parent: bool | Signal = False) -> ChildProcess:
    """Run ``exec_path`` (default: this Python) on ``module_path`` with an IPC channel.

    The child talks back through ``child_process.parent`` (a Python child) or ``process.send``
    (a Node.js child, with ``exec_path='node'``). ``exec_argv=['-m']`` runs a module by name.
    """
    module = check_string(module_path, "modulePath", allow_bytes=True)
    if args is None:
        args = ()
    if not isinstance(args, (list, tuple)):
        raise invalid_arg_type("args", "an instance of list or tuple", args)
    if exec_argv is None:
        exec_argv = []
    elif not isinstance(exec_argv, (list, tuple)):
        raise invalid_arg_type("options.execArgv", "an instance of list or tuple", exec_argv)
    if stdio is None:
        stdio = ["pipe", "pipe", "pipe", "ipc"] if silent else [0, 1, 2, "ipc"]
    elif isinstance(stdio, str):
        stdio = [stdio, stdio, stdio, "ipc"]
    elif isinstance(stdio, (list, tuple)):
        if "ipc" not in stdio:
            raise NodeValueError("ERR_CHILD_PROCESS_IPC_REQUIRED",
                                 "Forked processes must have an IPC channel, missing value 'ipc' "
                                 "in options.stdio")
    else:
        raise invalid_arg_type("options.stdio", "of type string or an instance of list", stdio)
    command = exec_path if exec_path is not None else sys.executable
    return spawn(command, list(exec_argv) + [module] + list(args), cwd=cwd, env=env,
                 stdio=stdio, detached=detached, uid=uid, gid=gid,
                 serialization=serialization, signal=signal, timeout=timeout,
                 kill_signal=kill_signal, kill_tree=kill_tree, die_with_parent=die_with_parent)
