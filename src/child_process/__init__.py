"""Node.js's child_process for Python: spawn, exec, fork and their sync/async forms, with the
ChildProcess event emitter, stdio wiring and Node's IPC protocol, on a Cython core."""

from ._abort import AbortController, AbortSignal
from ._api import fork, spawn
from ._child import ChildProcess
from ._errors import (AbortError, ExecError, NodeTypeError, NodeValueError, RangeError,
                      SpawnError)
from ._exec import exec, exec_async, exec_file, exec_file_async
from ._spawn_sync import SpawnSyncResult, exec_file_sync, exec_sync, spawn_sync
from ._events import EventEmitter, UnhandledErrorEvent
from ._loop import get_loop, run
from ._streams import Duplex, Readable, Writable

from ._ipc import Channel, Parent, open_parent_channel as _open_parent_channel

__version__ = "0.1.0"

#: In a process started with an IPC channel (fork() here, or Node's fork()), the channel to the
#: parent: ``send()``, ``disconnect()``, ``connected``, events 'message' and 'disconnect'.
#: None otherwise.
parent = _open_parent_channel()

__all__ = [
    "AbortController", "AbortError", "AbortSignal", "ChildProcess", "Duplex", "EventEmitter",
    "ExecError", "NodeTypeError", "NodeValueError", "RangeError", "Readable", "SpawnError",
    "SpawnSyncResult", "UnhandledErrorEvent", "Writable", "exec", "exec_async", "exec_file",
    "exec_file_async", "exec_file_sync", "fork", "parent", "Channel", "Parent",
    "exec_sync", "get_loop", "run", "spawn", "spawn_sync",
]
