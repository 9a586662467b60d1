"""exec and exec_file: spawn, collect stdout/stderr up to max_buffer, then one callback
``(err, stdout, stderr)`` when the child has closed (Node's execFile and its exithandler)."""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any, Callable

    from ._abort import AbortSignal
    from ._aio import ExecAwaitable
    from ._typing import (Args, Encoding, Env, ExecCallback, MaxBuffer, Seconds, Shell, Signal,
                          StrOrBytesPath, StrPath)

from ._child import ChildProcess
from ._errors import ExecError, RangeError, errno_code
from ._options import check_encoding, check_max_buffer, normalize_spawn


def exec_file(file: StrPath, args: Args = (), *, cwd: StrOrBytesPath | None = None,
              env: Env = None, encoding: Encoding = "utf-8", timeout: Seconds = 0,
              max_buffer: MaxBuffer = 1024 * 1024, kill_signal: Signal = "SIGTERM",
              uid: int | None = None, gid: int | None = None, shell: Shell = False,
              signal: AbortSignal | None = None,
              callback: ExecCallback | None = None,
              kill_tree: bool = False, die_with_parent: bool | Signal = False) -> ChildProcess:
    """Run ``file`` (no shell unless asked); ``callback(err, stdout, stderr)`` at the end."""
    if callback is not None and not callable(callback):
        from ._errors import invalid_arg_type
        raise invalid_arg_type("callback", "a callable", callback)
    limit = check_max_buffer(max_buffer)
    codec = check_encoding(encoding)
    spec = normalize_spawn(file, args, cwd=cwd, env=env, stdio="pipe", uid=uid, gid=gid,
                           shell=shell, signal=signal, timeout=timeout, kill_signal=kill_signal,
                           kill_tree=kill_tree, die_with_parent=die_with_parent)
    cmd = " ".join([spec_name(file)] + [spec_name(a) for a in (args or ())])
    return _start(spec, cmd, limit, codec, callback)


def exec(command: StrPath, *, cwd: StrOrBytesPath | None = None, env: Env = None,
         encoding: Encoding = "utf-8", shell: Shell = "/bin/sh",
         signal: AbortSignal | None = None, timeout: Seconds = 0,
         max_buffer: MaxBuffer = 1024 * 1024, kill_signal: Signal = "SIGTERM",
         uid: int | None = None, gid: int | None = None,
         callback: ExecCallback | None = None,
         kill_tree: bool = False, die_with_parent: bool | Signal = False) -> ChildProcess:
    """Run ``command`` through the shell and call ``callback(err, stdout, stderr)`` at the end."""
    if callback is not None and not callable(callback):
        from ._errors import invalid_arg_type
        raise invalid_arg_type("callback", "a callable", callback)
    limit = check_max_buffer(max_buffer)
    codec = check_encoding(encoding)
    spec = normalize_spawn(command, (), cwd=cwd, env=env, stdio="pipe", uid=uid, gid=gid,
                           shell=shell if shell else True, signal=signal, timeout=timeout,
                           kill_signal=kill_signal, kill_tree=kill_tree,
                           die_with_parent=die_with_parent)
    return _start(spec, spec_name(command), limit, codec, callback)


def spec_name(value: Any) -> str:
    return value if isinstance(value, str) else os.fsdecode(value)


class _Collector:
    """Gathers one stream's bytes up to the limit; past it, kills the child once."""

    __slots__ = ("chunks", "length", "over")

    def __init__(self) -> None:
        self.chunks: list[Any] = []     # bytes, or str once decoded
        self.length = 0
        self.over = False


def _start(spec: Any, cmd: str, limit: int, codec: str | None,
           callback: Callable[..., object] | None) -> ChildProcess:
    # exec handles the timeout itself, as Node's execFile: a kill also destroys the pipes, so the
    # callback never waits for a grandchild that still holds them
    timeout = spec.timeout
    if timeout:
        # a spec with a timeout is never a shared (cached) one: changing it is ours to do
        spec.timeout = 0
    child = ChildProcess()
    child._spawn(spec)
    _ExecRun(child, spec.kill_signal, cmd, limit, codec, callback, timeout)
    return child


class _ExecRun:
    """One exec/exec_file: collects the output, enforces max_buffer and the timeout, and calls
    back once. It lets go of the child and the output when done (no reference cycle keeps a
    finished child, its loop or its output alive)."""

    def __init__(self, child: ChildProcess, kill_signal: int, cmd: str, limit: int,
                 codec: str | None, callback: Callable[..., object] | None, timeout: float):
        self.child: ChildProcess | None = child
        self.kill_signal = kill_signal
        self.cmd = cmd
        self.limit = limit
        self.codec = codec
        self.callback = callback
        self.error: BaseException | None = None
        self.killed = False
        self.done = False
        self.boxes = {"stdout": _Collector(), "stderr": _Collector()}
        self.listeners: list[Any] = []
        self.timer: Any = None
        for name, stream in (("stdout", child.stdout), ("stderr", child.stderr)):
            if stream is not None:
                if codec is not None:
                    stream.set_encoding(codec)
                listener = self._collector(name)
                self.listeners.append((stream, listener))
                stream.on("data", listener)
        child.on("error", self.on_error)
        child.on("close", self.finish)
        if timeout > 0 and child.pid is not None:
            from ._loop import Timer
            self.timer = Timer(child._loop, self.kill)
            self.timer.unref()
            self.timer.start(timeout)

    def kill(self) -> None:
        child = self.child
        if child is None:
            return
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.destroy()
        self.killed = True
        child.kill(self.kill_signal)

    def _collector(self, name: str) -> Callable[[Any], None]:
        box = self.boxes[name]
        limit, codec = self.limit, self.codec

        def collect(chunk: Any) -> None:
            if box.over:
                return
            # Node counts bytes, then cuts the chunk (characters in text mode)
            size = len(chunk) if codec is None else len(chunk.encode(codec, "replace"))
            box.length += size
            if limit >= 0 and box.length > limit:
                keep = limit - (box.length - size)
                box.chunks.append(chunk[:keep])
                box.over = True
                if self.error is None:
                    self.error = RangeError("ERR_CHILD_PROCESS_STDIO_MAXBUFFER",
                                            f"{name} maxBuffer length exceeded")
                self.kill()
            else:
                box.chunks.append(chunk)
        return collect

    def text(self, name: str) -> Any:
        box = self.boxes[name]
        data = ("" if self.codec is not None else b"").join(box.chunks)
        box.chunks = []           # one copy of the output, not two
        return data

    def on_error(self, err: BaseException) -> None:
        # a failed start or an abort: Node reports it at once, with what was collected
        if self.error is None:
            self.error = err
        child = self.child
        if child is None:
            return
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.destroy()
        self.finish(child.exit_code, child.signal_code)

    def finish(self, code: int | None = None, signal: str | None = None) -> None:
        child = self.child
        if self.done or child is None:
            return
        self.done = True
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        child.off("error", self.on_error)
        child.off("close", self.finish)
        for stream, listener in self.listeners:
            stream.off("data", listener)
        self.listeners = []
        callback, self.callback, self.child = self.callback, None, None
        if callback is None:
            return
        stdout, stderr = self.text("stdout"), self.text("stderr")
        cause, cmd = self.error, self.cmd
        self.error = None
        killed = child.killed or self.killed
        if cause is None and code == 0 and signal is None:
            callback(None, stdout, stderr)
            return
        if cause is not None:
            err = ExecError(str(cause), code=getattr(cause, "code", None), cmd=cmd,
                            killed=killed, signal=signal, status=code,
                            stdout=stdout, stderr=stderr, pid=child.pid, error=cause)
        else:
            err_text = stderr if isinstance(stderr, str) else stderr.decode(errors="replace")
            err = ExecError(f"Command failed: {cmd}\n{err_text}",
                            code=errno_code(-code) if code is not None and code < 0 else code,
                            cmd=cmd, killed=killed, signal=signal, status=code,
                            stdout=stdout, stderr=stderr, pid=child.pid)
        callback(err, stdout, stderr)


def exec_async(command: StrPath, *, cwd: StrOrBytesPath | None = None, env: Env = None,
               encoding: Encoding = "utf-8", shell: Shell = "/bin/sh",
               signal: AbortSignal | None = None, timeout: Seconds = 0,
               max_buffer: MaxBuffer = 1024 * 1024, kill_signal: Signal = "SIGTERM",
               uid: int | None = None, gid: int | None = None, kill_tree: bool = False,
               die_with_parent: bool | Signal = False) -> ExecAwaitable:
    """``await exec_async(cmd)`` -> result with ``.stdout``/``.stderr``; raises ExecError.

    The awaitable has ``.child``. Needs a running asyncio loop, which drives the child.
    """
    from ._aio import ExecAwaitable
    return ExecAwaitable(lambda done: exec(
        command, cwd=cwd, env=env, encoding=encoding, shell=shell, signal=signal,
        timeout=timeout, max_buffer=max_buffer, kill_signal=kill_signal, uid=uid, gid=gid,
        callback=done, kill_tree=kill_tree, die_with_parent=die_with_parent))


def exec_file_async(file: StrPath, args: Args = (), *, cwd: StrOrBytesPath | None = None,
                    env: Env = None, encoding: Encoding = "utf-8", timeout: Seconds = 0,
                    max_buffer: MaxBuffer = 1024 * 1024, kill_signal: Signal = "SIGTERM",
                    uid: int | None = None, gid: int | None = None, shell: Shell = False,
                    signal: AbortSignal | None = None, kill_tree: bool = False,
                    die_with_parent: bool | Signal = False) -> ExecAwaitable:
    """``await exec_file_async(file, args)``: exec_file as an awaitable (see exec_async)."""
    from ._aio import ExecAwaitable
    return ExecAwaitable(lambda done: exec_file(
        file, args, cwd=cwd, env=env, encoding=encoding, timeout=timeout,
        max_buffer=max_buffer, kill_signal=kill_signal, uid=uid, gid=gid, shell=shell,
        signal=signal, callback=done, kill_tree=kill_tree, die_with_parent=die_with_parent))
