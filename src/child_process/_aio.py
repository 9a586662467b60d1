"""asyncio integration: when a running asyncio loop is present, it drives our loop.

Our loop's epoll descriptor is registered with the asyncio loop (``add_reader``): readiness of any
of our pipes, pidfds or channels makes it readable, and asyncio then runs one non-blocking turn
of ours. Queued callbacks and timers ask asyncio for a turn through ``Loop.waker``. So there is
no thread and no polling, every callback runs on the asyncio loop's thread, and nothing needs
``run()``.

Cancellation does what an asyncio user expects: cancelling ``await child`` or an ``exec_async``
sends the child its ``kill_signal``, waits until it has been reaped and its pipes are closed,
then lets ``CancelledError`` through — no orphan, no zombie.
"""

from __future__ import annotations

import asyncio
import weakref
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any
    from collections.abc import Generator, Iterator

from ._loop import Loop

_get_running_loop = asyncio._get_running_loop


class _Binding:
    """Our loop embedded in one asyncio loop."""

    __slots__ = ("_loop", "aloop", "timer", "fd", "_fds", "__weakref__")

    def __init__(self, loop: Loop, aloop: asyncio.AbstractEventLoop):
        # a weak reference: our loop holds this binding, and a thread's loop must be freed (and
        # its epoll descriptor closed) by reference counting when the thread ends
        self._loop = weakref.ref(loop)
        self.aloop = aloop
        self.timer: asyncio.TimerHandle | None = None
        self.fd = loop.fileno()
        self._fds: dict[int, tuple[bool, bool]] = {}
        if self.fd >= 0:
            aloop.add_reader(self.fd, self.tick)
        else:
            # poll(2) backend (macOS, or forced): no epoll descriptor to hand over, so asyncio
            # watches each of our descriptors itself, kept in step by the loop's fd_hook
            loop.fd_hook = self._fd_changed
            for fd, read, write in loop.watched_fds():
                self._fd_changed(fd, read, write)
        loop.waker = self.wake

    def _fd_changed(self, fd: int, read: bool, write: bool) -> None:
        was_read, was_write = self._fds.get(fd, (False, False))
        if read != was_read:
            if read:
                self.aloop.add_reader(fd, self.tick)
            else:
                self.aloop.remove_reader(fd)
        if write != was_write:
            if write:
                self.aloop.add_writer(fd, self.tick)
            else:
                self.aloop.remove_writer(fd)
        if read or write:
            self._fds[fd] = (read, write)
        else:
            self._fds.pop(fd, None)

    def wake(self) -> None:
        """Our loop has queued a callback or armed a timer: ask asyncio for a turn."""
        try:
            self.aloop.call_soon(self.tick)
        except RuntimeError:      # that asyncio loop has been closed: fall back to run()/wait()
            self.detach()

    @property
    def loop(self) -> Any:
        return self._loop()

    def tick(self) -> None:
        loop = self._loop()
        if loop is None:
            self.detach()
            return
        loop.wake_pending = False
        try:
            loop.run_embedded_turn()
        finally:
            self._arm_timer()

    def _arm_timer(self) -> None:
        loop = self._loop()
        if loop is None:
            return
        deadline = loop.next_deadline()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if deadline is not None:
            # asyncio's clock is time.monotonic() too
            self.timer = self.aloop.call_at(deadline, self.tick)
        if loop.has_ready and not loop.wake_pending:
            loop.wake_pending = True
            self.aloop.call_soon(self.tick)

    def detach(self) -> None:
        loop = self._loop()
        if loop is not None and loop.waker == self.wake:
            loop.waker = None
            loop.wake_pending = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if loop is not None and loop.fd_hook == self._fd_changed:
            loop.fd_hook = None
        if not self.aloop.is_closed():
            try:
                if self.fd >= 0:
                    self.aloop.remove_reader(self.fd)
                for fd, (read, write) in self._fds.items():
                    if read:
                        self.aloop.remove_reader(fd)
                    if write:
                        self.aloop.remove_writer(fd)
            except (RuntimeError, ValueError, OSError):
                pass
        self._fds.clear()
        if loop is not None and getattr(loop, "_aio_binding", None) is self:
            loop._aio_binding = None


def call_soon_in_host(loop: Loop, callback: Any) -> None:
    """Queue ``callback`` on the asyncio loop driving ``loop`` (behind what it has queued
    already), or on ``loop`` itself when none does."""
    binding = getattr(loop, "_aio_binding", None)
    if binding is None or binding.aloop.is_closed():
        loop.call_soon(callback)
    else:
        binding.aloop.call_soon(callback)


def bind(loop: Loop) -> bool:
    """Let the running asyncio loop (if any) drive ``loop``; True when one does."""
    aloop = _get_running_loop()
    binding = getattr(loop, "_aio_binding", None)
    if aloop is None:
        if binding is not None and binding.aloop.is_closed():
            binding.detach()
        return False
    if binding is not None:
        if binding.aloop is aloop:
            return True
        binding.detach()
    loop._aio_binding = _Binding(loop, aloop)
    loop._aio_binding._arm_timer()
    return True


async def drive_until(loop: Loop, future: asyncio.Future[Any]) -> None:
    """Wait for ``future`` with the running asyncio loop driving ours."""
    bind(loop)
    await future


def await_close(child: Any) -> Generator[Any, None, tuple[int | None, str | None]]:
    """``await child``: (exit_code, signal_code) after 'close'; cancellation kills and reaps.

    A generator (``ChildProcess.__await__`` returns it) rather than a coroutine, and a future
    the child resolves itself rather than a 'close' listener: ``gather(*children)`` over
    hundreds of children pays this once per child."""
    if child._closed:
        return child.exit_code, child.signal_code
    bind(child._loop)
    future = _close_future(child)
    try:
        yield from future
    except asyncio.CancelledError:
        # ``future`` was cancelled along with us: wait for 'close' on a new one
        yield from _kill_and_reap(child, _close_future(child)).__await__()
        raise
    return child.exit_code, child.signal_code


def _close_future(child: Any) -> asyncio.Future[None]:
    """A future that is done once ``child`` has emitted 'close' (ChildProcess._maybe_close
    resolves it after the 'close' listeners have run)."""
    closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if child._closed:
        closed.set_result(None)
    elif child._close_futures is None:
        child._close_futures = [closed]
    else:
        child._close_futures.append(closed)
    return closed


async def _kill_and_reap(child: Any, closed: asyncio.Future[None]) -> None:
    """After a cancellation: kill_signal, drop the pipes (a grandchild may hold them for long;
    nobody wants the output any more), then wait, uncancellably, until the child is reaped."""
    if not child._closed:
        child.kill(child._kill_signal)
        for stream in child.stdio:
            if stream is not None and hasattr(stream, "destroy"):
                stream.destroy()
    while not closed.done():
        try:
            await asyncio.shield(closed)
        except asyncio.CancelledError:
            continue     # cancelled again: still finish the cleanup first


class ExecResult:
    """What ``await exec_async(...)`` gives: ``stdout`` and ``stderr``."""

    __slots__ = ("stdout", "stderr", "child")

    def __init__(self, stdout: Any, stderr: Any, child: Any):
        self.stdout = stdout
        self.stderr = stderr
        self.child = child

    def __iter__(self) -> Iterator[Any]:
        return iter((self.stdout, self.stderr))

    def __repr__(self) -> str:
        return f"ExecResult(stdout={self.stdout!r}, stderr={self.stderr!r})"


class ExecAwaitable:
    """The awaitable ``exec_async`` returns; ``.child`` is the running ChildProcess."""

    def __init__(self, start: Any):
        future = self._future = asyncio.get_running_loop().create_future()
        box: list[Any] = []          # the child, without a reference cycle through this object

        def done(err: Any, stdout: Any, stderr: Any) -> None:
            child = box.pop() if box else None
            if future.done():
                return
            if err is not None:
                future.set_exception(err)
            else:
                future.set_result(ExecResult(stdout, stderr, child))

        self.child = start(done)
        box.append(self.child)
        bind(self.child._loop)

    def __await__(self) -> Generator[Any, None, ExecResult]:
        return self._wait().__await__()

    async def _wait(self) -> ExecResult:
        try:
            return await asyncio.shield(self._future)
        except asyncio.CancelledError:
            await _kill_and_reap(self.child, _close_future(self.child))
            if self._future.done() and not self._future.cancelled():
                self._future.exception()      # mark retrieved
            raise
