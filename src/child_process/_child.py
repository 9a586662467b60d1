"""ChildProcess: one started (or failed) child, its stdio streams and its events.

Event order is Node's: 'spawn' on the turn after a successful start and before any output;
'exit' when the child ends; 'close' after 'exit' *and* after every stream the child writes to has
closed. A failed start emits 'error' (never raises) and then 'close' with ``-errno``.
"""

from __future__ import annotations

import errno as _errno
import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any
    from collections.abc import Generator

    from ._loop import ExitWatcher
    from ._typing import Signal


from . import _spawn
from ._errors import AbortError, SpawnError, errno_code, errno_exception
from ._ipc import ChannelOwner
from ._loop import Loop, Timer, bind_asyncio, decode_status, get_loop, signal_name, watch_exit
from ._options import SpawnSpec, check_signal
from ._streams import Duplex, Readable, Writable

#: errors Node reports as an 'error' event (the rest it throws); SPEC makes every one an event.
_EMFILE = (_errno.EMFILE, _errno.ENFILE)

#: Seconds a child with output pipes goes without a pidfd: it closes them as it ends, which
#: wakes the loop anyway. Only a child whose pipes outlive it (a grandchild holds them) needs
#: the pidfd; its 'exit' comes at most this late (PidfdExitWatcher.defer).
PIPES_FIRST = 0.02


_aio_module: Any = None


def _asyncio_glue() -> Any:
    """``child_process._aio``, imported on first use: it imports asyncio, which a program that
    never uses asyncio should not pay for. A function-level ``from ._aio import ...`` would go
    through the import machinery on every call (about 1 µs, twice per awaited child)."""
    global _aio_module
    if _aio_module is None:
        from . import _aio
        _aio_module = _aio
    return _aio_module


def start(spec: SpawnSpec, env: list[bytes], child_fds: list[int]) -> int:
    """Find and start the executable; a file without ``#!`` runs through /bin/sh (execvp does)."""
    path = _spawn.find_executable(spec.file, spec.path_env, spec.cwd)
    try:
        return _spawn.spawn(path, spec.args, env, spec.cwd, child_fds, spec.detached,
                            spec.uid, spec.gid, spec.kill_tree, spec.pdeathsig)
    except OSError as exc:
        if exc.errno != _errno.ENOEXEC:
            raise
    return _spawn.spawn(b"/bin/sh", [b"/bin/sh", path] + spec.args[1:], env, spec.cwd,
                        child_fds, spec.detached, spec.uid, spec.gid, spec.kill_tree,
                        spec.pdeathsig)


class ChildProcess(ChannelOwner):
    """A child process. Created by ``spawn()``/``fork()``/``exec*()``; not instantiated directly."""

    # The state of a child not yet started. Class-level defaults, set per instance only when
    # they change: a worker pool makes thousands of these, each on cold caches right after the
    # previous start, and every store saved there shows in the batch time.
    pid: int | None = None
    exit_code: int | None = None
    signal_code: str | None = None
    killed = False
    channel: Any = None
    spawnfile: str | None = None
    stdin: Writable | None = None
    stdout: Readable | None = None
    stderr: Readable | None = None
    _loop: Loop = None  # type: ignore[assignment]  # set by _spawn(), before any use
    _watcher: ExitWatcher | None = None
    _closes_needed = 1
    _pipes_open = 0                 # output pipes not yet at their end (see _pipe_ended)
    _closes_got = 0
    _closed = False
    _close_futures: list[Any] | None = None     # asyncio futures of ``await child`` (_aio)
    _exited = False
    _timer: Timer | None = None
    _abort_signal: Any = None
    _kill_signal = 15
    _kill_tree = False

    def __init__(self) -> None:
        # lists are per instance (a class-level list would be shared); EventEmitter's and the
        # channel side's state start as class defaults too
        self.spawnargs: list[Any] = []
        self.stdio: list[Any] = []

    def __repr__(self) -> str:
        state = ("closed" if self._closed else "exited" if self._exited else
                 "running" if self.pid else "failed")
        return f"<ChildProcess pid={self.pid} {state} {self.spawnfile!r}>"

    # -- starting ------------------------------------------------------------------------

    def _spawn(self, spec: SpawnSpec) -> None:
        loop = self._loop = get_loop()
        bind_asyncio(loop)
        self.spawnfile = spec.spawnfile
        self.spawnargs = list(spec.spawnargs)      # the spec may be shared: a copy of our own
        self._kill_signal = spec.kill_signal
        self._kill_tree = spec.kill_tree
        slots = spec.stdio
        parent_ends: list[tuple[int, str, int]] = []   # (index, kind, fd)
        child_fds: list[int] = []
        to_close: list[int] = []
        try:
            for index, slot in enumerate(slots):
                kind = slot.kind
                if kind == "pipe":
                    # stdout/stderr: OS pipes (fastest for bulk output); stdin and fd 3+:
                    # socket pairs (no SIGPIPE on write; duplex like Node's)
                    ours, theirs = _spawn.make_stdio_pipe(index == 0, index not in (1, 2))
                    parent_ends.append((index, "r" if index in (1, 2) else
                                        "w" if index == 0 else "rw", ours))
                    child_fds.append(theirs)
                    to_close.append(theirs)
                elif kind == "ignore":
                    child_fds.append(_spawn.FD_DEVNULL if index < 3 else _spawn.FD_CLOSED)
                elif kind in ("inherit", "fd"):
                    child_fds.append(slot.fd)
                    if isinstance(slot.source, Readable):
                        slot.source._used_as_stdio = True
                        slot.source._io.stop_reading()
                    if index < 3 and kind == "fd":
                        # the child shares the open file description: its stdio must block
                        # (Node does the same); our own stream stops reading it anyway
                        _spawn.set_nonblocking(slot.fd, False)
                elif kind == "ipc":
                    ours, theirs = _spawn.make_stdio_pipe(False, True)
                    parent_ends.append((index, "ipc", ours))
                    child_fds.append(theirs)
                    to_close.append(theirs)
        except OSError as exc:
            # EMFILE/ENFILE: nothing to wire up; report it as Node does, leak nothing.
            for fd in to_close:
                os.close(fd)
            for _, _, fd in parent_ends:
                os.close(fd)
            self._fail(exc.errno or _errno.EMFILE, spec)
            return

        env = spec.env
        if spec.ipc_index >= 0:
            env = env + [b"NODE_CHANNEL_FD=%d" % spec.ipc_index,
                         b"NODE_CHANNEL_SERIALIZATION_MODE=" + spec.serialization.encode()]
        error = 0
        try:
            self.pid = start(spec, env, child_fds)
        except OSError as exc:
            error = exc.errno or _errno.EINVAL
        finally:
            for fd in to_close:
                os.close(fd)

        self._wire_stdio(loop, len(slots), parent_ends, spec)
        if error:
            self._fail(error, spec)
            return
        # 'spawn' is queued first: it must come before anything the exit watcher reports
        loop.call_soon(self.emit, "spawn")
        watcher = self._watcher = watch_exit(loop, self.pid, self._on_exit)  # type: ignore[arg-type]
        if self._pipes_open:
            # its output pipes reach their end as it ends: no pidfd unless they stay open
            watcher.defer(PIPES_FIRST)
        if spec.timeout > 0:
            self._timer = Timer(loop, self._on_timeout)
            self._timer.unref()
            self._timer.start(spec.timeout)
        if spec.signal is not None:
            self._abort_signal = spec.signal
            if spec.signal.aborted:
                loop.call_soon(self._on_abort)
            else:
                spec.signal.add_event_listener("abort", self._on_abort)

    def _wire_stdio(self, loop: Loop, count: int, parent_ends: list[tuple[int, str, int]],
                    spec: SpawnSpec) -> None:
        stdio: list[Any] = [None] * count
        for index, kind, fd in parent_ends:
            if kind == "r":
                stream: Any = Readable(loop, fd)
            elif kind == "w":
                stream = Writable(loop, fd)
            elif kind == "rw":
                stream = Duplex(loop, fd)
            else:
                self._setup_ipc(loop, fd, spec)
                continue
            stdio[index] = stream
            if isinstance(stream, Readable):
                self._closes_needed += 1
                stream._close_hook = self._maybe_close
                self._pipes_open += 1
                stream._ended_hook = self._pipe_ended
        self.stdio = stdio
        self.stdin = stdio[0] if count > 0 else None
        self.stdout = stdio[1] if count > 1 else None
        self.stderr = stdio[2] if count > 2 else None

    def _setup_ipc(self, loop: Loop, fd: int, spec: SpawnSpec) -> None:
        from ._ipc import attach_parent_channel
        attach_parent_channel(self, loop, fd, spec.serialization)

    def _fail(self, err: int, spec: SpawnSpec) -> None:
        """A start that failed: 'error' next turn, then 'close' with the negative errno."""
        loop = self._loop
        self.pid = None
        self._exited = True
        self.exit_code = -err
        message = f"spawn {spec.spawnfile} {errno_code(err)}"
        if err == _errno.ENOENT and spec.cwd is not None and not os.path.isdir(spec.cwd):
            message += f" (the cwd {os.fsdecode(spec.cwd)!r} does not exist)"
        error = SpawnError(err, f"spawn {spec.spawnfile}", spec.spawnfile, spec.spawnargs[1:],
                           message)
        if self.stdin is not None:
            self.stdin.destroy()

        def report() -> None:
            try:
                self.emit("error", error)
            finally:
                self._exit_done()

        loop.call_soon(report)

    # -- ending --------------------------------------------------------------------------

    def _on_exit(self, status: int) -> None:
        self._exited = True
        self.exit_code, self.signal_code = decode_status(status)
        if self._timer is not None or self._abort_signal is not None:
            self._stop_guards()
        if self.stdin is not None:
            self.stdin.destroy()
        if self._loop.embedded:
            # learnt in a turn asyncio gave us: drain the unread pipes only after what asyncio
            # had queued has run, such as the first step of a reader task created beside the
            # spawn (``gather(collect(child.stdout), child)``); else its output could be gone
            _asyncio_glue().call_soon_in_host(self._loop, self._exit_done)
        else:
            self._loop.call_soon(self._exit_done)
        self.emit("exit", self.exit_code, self.signal_code)

    def _exit_done(self) -> None:
        # Drain what nobody reads so that 'close' always comes (Node's flushStdio). Draining
        # delivers data and 'end': a listener that raises there must not cost the other
        # streams their drain, nor the child its 'close'; its exception goes on afterwards.
        error: BaseException | None = None
        for stream in self.stdio:
            if isinstance(stream, Readable):
                try:
                    if stream._used_as_stdio:
                        # another child reads this pipe now; the parent's copy has no more use
                        stream.destroy()
                    else:
                        stream._flush_after_exit()
                except BaseException as exc:
                    if error is None:
                        error = exc
        try:
            self._maybe_close()
        finally:
            if error is not None:
                raise error

    def _stop_guards(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self._abort_signal is not None:
            self._abort_signal.remove_event_listener("abort", self._on_abort)
            self._abort_signal = None

    def _listener_added(self, event: Any) -> None:
        self._ipc_listener_added(event)

    def _channel_closed(self) -> None:
        self.channel = None          # Node: null once the channel is gone
        try:
            self.emit("disconnect")
        finally:
            self._maybe_close()

    def _pipe_ended(self) -> None:
        self._pipes_open -= 1
        if self._pipes_open == 0 and not self._exited and self._watcher is not None:
            self._watcher.stop_deferring()      # every output pipe has ended: the exit is next

    def _maybe_close(self, *_: Any) -> None:
        self._closes_got += 1
        if self._closes_got < self._closes_needed or self._closed:
            return
        self._closed = True
        futures = self._close_futures
        try:
            self.emit("close", self.exit_code, self.signal_code)
        finally:    # a listener that raises must not leave ``await child`` waiting
            if futures is not None:
                self._close_futures = None
                for future in futures:
                    if not future.done():
                        future.set_result(None)

    # -- timeout and abort ---------------------------------------------------------------

    def _on_timeout(self) -> None:
        self._timer = None
        if not self._exited:
            self.kill(self._kill_signal)

    def _on_abort(self) -> None:
        signal = self._abort_signal
        if self._exited or signal is None:
            return
        self._stop_guards()
        self.kill(self._kill_signal)
        self.emit("error", AbortError(cause=getattr(signal, "reason", None)))

    # -- public methods --------------------------------------------------------------------

    def kill(self, signal: Signal = "SIGTERM") -> bool:
        """Send ``signal`` (name or number; 0 probes). False once the child has exited."""
        number = check_signal(signal, "signal", allow_zero=True)
        watcher = self._watcher
        if self._kill_tree and watcher is not None:
            return self._kill_group(number)
        if watcher is None or watcher.reaped:
            return False
        try:
            watcher.send_signal(number)
        except OSError as exc:
            if exc.errno != _errno.ESRCH:
                self.emit("error", errno_exception(exc.errno, "kill"))
            return False
        if number != 0:
            self.killed = True
        return True

    def _kill_group(self, number: int) -> bool:
        """kill_tree: the child leads its process group; signal all of it. Also after the child
        itself has ended, for what it left behind (the group id cannot be reused while any
        member lives, so this never reaches a stranger)."""
        pid = self.pid
        if pid is None:
            return False
        try:
            os.killpg(pid, number)
        except ProcessLookupError:
            return False
        except OSError as exc:
            self.emit("error", errno_exception(exc.errno, "kill"))
            return False
        if number != 0:
            self.killed = True
        return True

    def ref(self) -> None:
        """Keep the loop (and so the program) running until this child ends (the default)."""
        if self._watcher is not None:
            self._watcher.ref()

    def unref(self) -> None:
        """Let the loop finish without waiting for this child."""
        if self._watcher is not None:
            self._watcher.unref()

    def wait(self, timeout: float | None = None) -> tuple[int | None, str | None]:
        """Run the loop until this child has emitted 'close'; return (exit_code, signal_code).

        With a timeout that expires, raise TimeoutError and leave the child running.
        """
        if not self._closed:
            if timeout is not None and timeout < 0:
                timeout = 0
            done = self._loop.run_until(lambda: self._closed, -1 if timeout is None else timeout)
            if not done and not self._closed:
                if timeout is not None:
                    raise TimeoutError(f"child {self.pid} still running after {timeout} s")
                raise RuntimeError("the loop stopped before the child closed")
        return self.exit_code, self.signal_code

    def __await__(self) -> Generator[Any, None, tuple[int | None, str | None]]:
        return _asyncio_glue().await_close(self)  # type: ignore[no-any-return]

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._exited:
            self.kill("SIGTERM")
        if self._loop is not None and not self._closed:
            for stream in self.stdio:
                if isinstance(stream, Readable) and not stream._used_as_stdio:
                    stream._flush_after_exit()
            self.wait()


# Names Node exposes for signals, for messages.
__all__ = ["ChildProcess", "signal_name"]
