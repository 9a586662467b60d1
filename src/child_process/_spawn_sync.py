"""spawn_sync, exec_sync and exec_file_sync: validation and result shaping in Python, the whole
run of the child in ``_sync.run`` (C, GIL released)."""

from __future__ import annotations

import errno as _errno
import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any, Union

    from ._typing import (Args, Encoding, Env, Input, MaxBuffer, Seconds, Shell, Signal, Stdio,
                          StrOrBytesPath, StrPath)

    #: what one captured stream is: bytes, or str when an encoding was given
    Output = Union[bytes, str, None]

from . import _spawn, _sync
from ._errors import ExecError, SpawnError, errno_code
from ._loop import decode_status
from ._options import (check_encoding, check_input, check_max_buffer, normalize_spawn)


class SpawnSyncResult:
    """What ``spawn_sync`` returns (Node's result object, as attributes)."""

    __slots__ = ("pid", "output", "stdout", "stderr", "status", "signal", "error")

    pid: int
    output: list[Output] | None
    stdout: Output
    stderr: Output
    status: int | None
    signal: str | None
    error: BaseException | None

    def __init__(self, pid: int, output: list[Output] | None, status: int | None,
                 signal: str | None, error: BaseException | None):
        self.pid = pid
        self.output = output
        self.stdout = output[1] if output is not None and len(output) > 1 else None
        self.stderr = output[2] if output is not None and len(output) > 2 else None
        self.status = status
        self.signal = signal
        self.error = error

    def __repr__(self) -> str:
        return (f"SpawnSyncResult(pid={self.pid}, status={self.status!r}, signal={self.signal!r}, "
                f"stdout={_short(self.stdout)}, stderr={_short(self.stderr)}, "
                f"error={self.error!r})")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def spawn_sync(command: StrPath, args: Args = (), *, cwd: StrOrBytesPath | None = None,
               input: Input = None, argv0: StrOrBytesPath | None = None,
               stdio: Stdio = "pipe", env: Env = None, uid: int | None = None,
               gid: int | None = None, timeout: Seconds = None, kill_signal: Signal = "SIGTERM",
               max_buffer: MaxBuffer = 1024 * 1024, encoding: Encoding = None,
               shell: Shell = False,
               kill_tree: bool = False, die_with_parent: bool | Signal = False) -> SpawnSyncResult:
    """Run ``command`` to completion and return its SpawnSyncResult (Node's spawnSync).

    Never raises for what happens to the child: a failed start, a timeout (``ETIMEDOUT``) or too
    much output (``ENOBUFS``) is in ``result.error``.
    """
    spec = normalize_spawn(command, args, cwd=cwd, env=env, argv0=argv0, stdio=stdio,
                           uid=uid, gid=gid, shell=shell, timeout=timeout,
                           kill_signal=kill_signal, kill_tree=kill_tree,
                           die_with_parent=die_with_parent, sync=True)
    data = check_input(input)
    limit = check_max_buffer(max_buffer)
    codec = check_encoding(encoding)
    return _run(spec, data, limit, codec)


def _run(spec: Any, data: Any, limit: int, codec: str | None) -> SpawnSyncResult:
    slots: list[int] = []
    for index, slot in enumerate(spec.stdio):
        kind = slot.kind
        if kind == "pipe":
            slots.append(_sync.PIPE_IN if index == 0 else _sync.PIPE_OUT)
        elif kind == "ignore":
            slots.append(_spawn.FD_DEVNULL if index < 3 else _spawn.FD_CLOSED)
        else:
            slots.append(slot.fd)
            if index < 3 and kind == "fd":
                _spawn.set_nonblocking(slot.fd, False)
    try:
        path = _spawn.find_executable(spec.file, spec.path_env, spec.cwd)
    except OSError as exc:
        return _failed(exc.errno or _errno.ENOENT, spec)
    feed = data if slots and slots[0] == _sync.PIPE_IN else None
    args = spec.args
    pid, status, outputs, spawn_errno, ended = _sync.run(
        path, args, spec.env, spec.cwd, slots, spec.detached, spec.uid, spec.gid, feed,
        spec.timeout, spec.kill_signal, limit, spec.kill_tree, spec.pdeathsig)
    if spawn_errno == _errno.ENOEXEC:      # no #! line: through /bin/sh, as execvp does
        pid, status, outputs, spawn_errno, ended = _sync.run(
            b"/bin/sh", [b"/bin/sh", path] + args[1:], spec.env, spec.cwd, slots, spec.detached,
            spec.uid, spec.gid, feed, spec.timeout, spec.kill_signal, limit, spec.kill_tree,
            spec.pdeathsig)
    if spawn_errno:
        return _failed(spawn_errno, spec)
    results: list[Output] = list(outputs)
    if codec is not None:
        results = [o.decode(codec, "replace") if o is not None else None for o in outputs]
    if results:
        results[0] = None           # stdin: Node reports null
    code, signal = decode_status(status) if status >= 0 else (None, None)
    error = None
    if ended != _sync.ENDED_OK:
        err = (_errno.ETIMEDOUT if ended == _sync.ENDED_TIMEOUT else
               _errno.ENOBUFS if ended == _sync.ENDED_MAXBUFFER else _errno.EPIPE)
        error = SpawnError(err, f"spawnSync {spec.spawnfile}", spec.spawnfile,
                           spec.spawnargs[1:])
    return SpawnSyncResult(pid, results, code, signal, error)


def _failed(err: int, spec: Any) -> SpawnSyncResult:
    syscall = f"spawnSync {spec.spawnfile}"
    message = f"{syscall} {errno_code(err)}"
    if err == _errno.ENOENT and spec.cwd is not None and not os.path.isdir(spec.cwd):
        message += f" (the cwd {os.fsdecode(spec.cwd)!r} does not exist)"
    error = SpawnError(err, syscall, spec.spawnfile, spec.spawnargs[1:], message)
    return SpawnSyncResult(0, None, None, None, error)


def exec_file_sync(file: StrPath, args: Args = (), *, cwd: StrOrBytesPath | None = None,
                   input: Input = None, stdio: Stdio | None = None, env: Env = None,
                   uid: int | None = None, gid: int | None = None, timeout: Seconds = None,
                   kill_signal: Signal = "SIGTERM", max_buffer: MaxBuffer = 1024 * 1024,
                   encoding: Encoding = None, shell: Shell = False,
                   kill_tree: bool = False, die_with_parent: bool | Signal = False) -> Any:
    """Run ``file`` and return its stdout; raise ExecError on failure (Node's execFileSync).

    Unless ``stdio`` is given, the child's stderr is captured *and* copied to ours, as in Node.
    """
    result = spawn_sync(file, args, cwd=cwd, input=input,
                        stdio=stdio if stdio is not None else "pipe",
                        env=env, uid=uid, gid=gid, timeout=timeout, kill_signal=kill_signal,
                        max_buffer=max_buffer, encoding=encoding, shell=shell,
                        kill_tree=kill_tree, die_with_parent=die_with_parent)
    cmd = " ".join([os.fsdecode(file) if not isinstance(file, str) else file]
                   + [os.fsdecode(a) if not isinstance(a, str) else a for a in (args or ())])
    return _check(result, cmd, stdio is None)


def exec_sync(command: StrPath, *, cwd: StrOrBytesPath | None = None, input: Input = None,
              stdio: Stdio | None = None, env: Env = None, shell: Shell = "/bin/sh",
              uid: int | None = None, gid: int | None = None, timeout: Seconds = None,
              kill_signal: Signal = "SIGTERM", max_buffer: MaxBuffer = 1024 * 1024,
              encoding: Encoding = None,
              kill_tree: bool = False, die_with_parent: bool | Signal = False) -> Any:
    """Run ``command`` through the shell and return its stdout; raise ExecError on failure."""
    result = spawn_sync(command, (), cwd=cwd, input=input,
                        stdio=stdio if stdio is not None else "pipe", env=env, uid=uid, gid=gid,
                        timeout=timeout, kill_signal=kill_signal, max_buffer=max_buffer,
                        encoding=encoding, shell=shell if shell else True, kill_tree=kill_tree,
                        die_with_parent=die_with_parent)
    return _check(result, command if isinstance(command, str) else os.fsdecode(command),
                  stdio is None)


def _check(result: SpawnSyncResult, cmd: str, forward_stderr: bool) -> Any:
    if forward_stderr and result.stderr:
        stderr = result.stderr
        try:
            if isinstance(stderr, str):
                sys.stderr.write(stderr)
                sys.stderr.flush()
            else:
                sys.stderr.flush()
                os.write(sys.stderr.fileno(), stderr)
        except (OSError, ValueError, AttributeError):
            pass
    if result.error is None and result.status == 0:
        return result.stdout
    if result.error is not None:
        message = str(result.error)
        code: Any = getattr(result.error, "code", None)
    else:
        message = f"Command failed: {cmd}"
        if result.stderr:
            message += "\n" + (result.stderr if isinstance(result.stderr, str)
                               else result.stderr.decode(errors="replace"))
        code = result.status
    raise ExecError(message, code=code, cmd=cmd, killed=result.signal is not None,
                    signal=result.signal, status=result.status, stdout=result.stdout,
                    stderr=result.stderr, output=result.output, pid=result.pid,
                    error=result.error)
