"""The default loop of each thread, ``run()``, Node's "don't exit while handles remain" rule, and
the watchers that learn of a child's exit.

Exit is learnt from a pidfd where the kernel has them (Linux >= 5.3): the loop polls it like any
descriptor and ``waitpid`` reaps exactly that child. Elsewhere a SIGCHLD handler wakes every loop,
which polls its *own* children with ``waitpid(pid, WNOHANG)`` -- never ``waitpid(-1)``, which would
steal the children of subprocess, asyncio or any other library.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Callable, ClassVar, Union

    #: what watches a child's exit: ``reaped``, ``pid``, ``pidfd``, ``send_signal``, ``ref``,
    #: ``unref``, ``close``, ``defer``, ``stop_deferring``
    ExitWatcher = Union["PidfdExitWatcher", "SigchldExitWatcher"]

from . import _signals, _spawn
# re-exported for the package (the ``as`` form tells type checkers the export is meant)
from ._loop_core import IOWatcher as IOWatcher, Loop as Loop, Ref as Ref, Timer as Timer
from ._loop_core import PidfdExitWatcher as PidfdExitWatcher
from ._loop_core import watch_exit as _watch_pidfd

_local = threading.local()
_main_loop: Loop | None = None

#: How exits are watched: 'pidfd' or 'sigchld' (``CHILD_PROCESS_EXIT_WATCHER=sigchld`` forces
#: the fallback, which is how the macOS path is tested on Linux).
EXIT_WATCHER = "pidfd"
if (os.environ.get("CHILD_PROCESS_EXIT_WATCHER") == "sigchld"
        or not sys.platform.startswith("linux")):
    EXIT_WATCHER = "sigchld"
else:
    try:
        os.close(_spawn.pidfd_open(os.getpid()))
    except OSError:
        EXIT_WATCHER = "sigchld"


def get_loop() -> Loop:
    """This thread's loop, created on first use."""
    loop = getattr(_local, "loop", None)
    if loop is None:
        global _main_loop
        loop = _local.loop = Loop()
        if threading.current_thread() is threading.main_thread():
            _main_loop = loop
    return loop


def _after_fork_in_child() -> None:
    """An ``os.fork()``ed process shares its parent's epoll instance (one kernel object, not a
    copy): waiting on it would steal the parent's events, and registering in it would add our
    descriptors to the parent's set. So the child closes its own descriptor of the loop it
    inherited (the parent's stays as it was) and gets a fresh loop on first use. The parent's
    children are not the child's to wait for: the inherited loop says it is closed."""
    global _main_loop
    loop = getattr(_local, "loop", None)
    if loop is not None:
        loop.close()
        del _local.loop
    _main_loop = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def bind_asyncio(loop: Loop) -> None:
    """Inside a running asyncio loop, let it drive ours. Cheap when there is nothing to do
    (called on every spawn and every ``parent.send()``): asyncio is imported only if in use."""
    aio = sys.modules.get("asyncio")
    if aio is None:
        return
    running = aio._get_running_loop()
    binding = getattr(loop, "_aio_binding", None)
    if binding is None if running is None else (binding is not None and binding.aloop is running):
        return
    from . import _aio
    _aio.bind(loop)


def run() -> None:
    """Run this thread's loop until no referenced handle (child, stream, timer) remains."""
    get_loop().run()


def _drain_at_exit() -> None:
    # Node keeps a program running while referenced handles remain; so do we, at exit. An error
    # nobody handled ends the program with status 1, as an uncaught exception does in Node.
    loop = _main_loop
    if loop is not None and loop.alive() and threading.get_ident() == loop.owner:
        try:
            loop.run()
        except BaseException:
            import traceback
            traceback.print_exc()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(1)


atexit.register(_drain_at_exit)


def decode_status(status: int) -> tuple[int | None, str | None]:
    """(exit_code, signal_name) from a wait status; exactly one is not None."""
    if status & 0x7F == 0:          # exited: the common case, decoded without os.W* calls
        return (status >> 8) & 0xFF, None
    if os.WIFSIGNALED(status):
        return None, signal_name(os.WTERMSIG(status))
    return os.WEXITSTATUS(status), None


def signal_name(signum: int) -> str:
    return _signals.name_of(signum)


def watch_exit(loop: Loop, pid: int, on_exit: Callable[[int], None]) -> ExitWatcher:
    """Call ``on_exit(status)`` once the child ``pid`` has ended, and reap it: through a pidfd
    (in C) where the kernel has them, else through the SIGCHLD hub. (With pidfds this name is
    rebound to the C function below, one Python call less per child.)"""
    return SigchldExitWatcher(loop, pid, on_exit)


class SigchldExitWatcher:
    """The fallback exit watcher: a SIGCHLD wakes the loop, which polls its own children with
    ``waitpid(pid, WNOHANG)``. Before the reap ``kill()`` can use the pid safely: an unreaped
    child's pid cannot be handed to another process.
    """

    __slots__ = ("loop", "pid", "on_exit", "_ref", "reaped")

    pidfd = -1
    deferred = False                             # nothing to defer (see PidfdExitWatcher.defer)
    on_exit: Callable[[int], None] | None        # None once called
    _ref: Ref | None                             # keeps the loop alive until the reap

    def __init__(self, loop: Loop, pid: int, on_exit: Callable[[int], None]):
        self.loop = loop
        self.pid = pid
        self.on_exit = on_exit
        self.reaped = False
        self._ref = Ref(loop)
        self._ref.set_active(True)
        _SigchldHub.for_loop(loop).add(self)

    def _check(self) -> None:
        """Reap the child if it has ended (a spurious wake-up is harmless)."""
        if self.reaped:
            return
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            # Someone else reaped our child (a waitpid(-1) elsewhere): its status is lost.
            pid, status = self.pid, 0
        except InterruptedError:
            return
        if pid == 0:
            return
        self._finish()
        on_exit, self.on_exit = self.on_exit, None     # no cycle back to the child once done
        if on_exit is not None:
            on_exit(status)

    def _finish(self) -> None:
        self.reaped = True
        if self._ref is not None:
            self._ref.set_active(False)
            _SigchldHub.for_loop(self.loop).discard(self)

    def send_signal(self, sig: int) -> None:
        """Raises OSError (ESRCH once reaped)."""
        if self.reaped:
            raise OSError(errno.ESRCH, "process has been reaped")
        os.kill(self.pid, sig)

    def ref(self) -> None:
        if self._ref is not None and not self.reaped:
            self._ref.ref()

    def unref(self) -> None:
        if self._ref is not None and not self.reaped:
            self._ref.unref()

    def close(self) -> None:
        """Forget the child without reaping (used only when the process object is discarded)."""
        if not self.reaped:
            self._finish()

    def defer(self, seconds: float) -> None:
        """Nothing to defer: SIGCHLD costs no descriptor (see PidfdExitWatcher.defer)."""

    def stop_deferring(self) -> None:
        """Nothing to defer (see PidfdExitWatcher.defer)."""


class _SigchldHub:
    """Per-loop fallback: a wake-up pipe written by the SIGCHLD handler, and the loop's children."""

    _hubs: ClassVar[dict[int, _SigchldHub]] = {}

    def __init__(self, loop: Loop):
        self.loop = loop
        self.children: set[SigchldExitWatcher] = set()
        self.rfd, self.wfd = _spawn.make_pipe()
        _spawn.set_nonblocking(self.rfd)
        _spawn.set_nonblocking(self.wfd)
        _spawn.sigchld_add_wake_fd(self.wfd)
        self.io = IOWatcher(loop, self.rfd, self._wake)
        self.io.unref()   # the children's own Refs keep the loop alive, not this pipe
        self.io.start_reading()

    @classmethod
    def for_loop(cls, loop: Loop) -> _SigchldHub:
        hub = getattr(loop, "_sigchld_hub", None)
        if hub is None:
            hub = loop._sigchld_hub = cls(loop)
        return hub

    def add(self, watcher: SigchldExitWatcher) -> None:
        self.children.add(watcher)
        # the child may have ended before the handler knew of this loop: look once now
        self.loop.call_soon(watcher._check)

    def discard(self, watcher: SigchldExitWatcher) -> None:
        self.children.discard(watcher)
        if not self.children:
            # nothing left to watch: give the pipe back (a thread's loop may never be used again)
            self.io.stop()
            _spawn.sigchld_remove_wake_fd(self.wfd)
            os.close(self.rfd)
            os.close(self.wfd)
            if getattr(self.loop, "_sigchld_hub", None) is self:
                del self.loop._sigchld_hub

    def _wake(self) -> None:
        try:
            while os.read(self.rfd, 4096):
                pass
        except BlockingIOError:
            pass
        for watcher in list(self.children):
            watcher._check()


if EXIT_WATCHER == "pidfd":
    watch_exit = _watch_pidfd      # same signature, in C
