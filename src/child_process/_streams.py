"""Readable and Writable streams over a child's pipe, driven by the loop's fd watchers.

They follow Node's stream events ('data', 'end', 'close', 'error', 'drain', 'finish') with the
semantics a child's pipes need: a readable stream reads only once someone consumes it (a 'data'
listener, ``resume()``, ``pipe()``, ``async for``), so an unread pipe applies backpressure to the
child instead of filling the parent's memory; a writable stream accepts everything but says
``False`` above its high-water mark so producers can wait for 'drain'.
"""

from __future__ import annotations

import codecs
import errno as _errno
import os
from collections import deque
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any, Callable

from . import _io, _spawn
from ._errors import NodeTypeError, NodeValueError, errno_exception, invalid_arg_type
from ._events import EventEmitter
from ._loop import IOWatcher, Loop

READ_SIZE = 64 * 1024
BULK_READ_SIZE = 256 * 1024
#: A pipe that fills a whole read this many times in a row carries bulk output: it gets a
#: 1 MiB kernel buffer (the writer then runs 16 times longer between our reads; capture
#: throughput ×1.7 here). Kernel pipe buffers count against a per-user quota, past which every
#: new pipe of the user is tiny, so at most MAX_BULK_PIPES are grown at a time per process.
BULK_AFTER = 4
MAX_BULK_PIPES = 16
_bulk_pipes = 0
READ_AHEAD = 256 * 1024      # read before anyone consumes, so a chatty child is not held back
HIGH_WATER_MARK = 16 * 1024


class _FdStream(EventEmitter):
    """A descriptor owned by a stream: closed exactly once, when every side is done."""

    #: called once, just after 'close' has been emitted: the owning child counts its closed
    #: streams through it (cheaper than a listener, and invisible to ``listeners('close')``).
    #: After, not before: the child's own 'close' may follow at once, and whoever listens to
    #: this stream's 'close' must hear it before the child's.
    _close_hook: Callable[[], object] | None = None
    #: called once when nothing more can come from the child through this stream: its end of
    #: file was read, or it closed before that (the owning child then stops waiting for its
    #: pipes before it watches its exit: PidfdExitWatcher.defer)
    _ended_hook: Callable[[], object] | None = None

    # the state every stream starts in (class defaults: a child makes up to three streams, and
    # each attribute not written at creation is one less store on that path)
    destroyed = False
    closed = False
    _used_as_stdio = False

    def __init__(self, loop: Loop, fd: int, *, readable: bool, writable: bool, is_socket: bool):
        self._loop = loop
        self._fd = fd
        self._is_socket = is_socket
        self._io = IOWatcher(loop, fd, self._on_readable if readable else None,
                             self._on_writable if writable else None)
        self._read_done = not readable
        self._write_done = not writable

    def fileno(self) -> int:
        if self._fd < 0:
            raise ValueError("I/O operation on a closed stream")
        return self._fd

    def ref(self) -> _FdStream:
        self._io.ref()
        return self

    def unref(self) -> _FdStream:
        self._io.unref()
        return self

    def destroy(self, error: BaseException | None = None) -> _FdStream:
        """Close now, dropping anything unread or unwritten; 'error' (if given), then 'close'."""
        if self.destroyed:
            return self
        self.destroyed = True
        self._read_done = self._write_done = True
        self._on_destroy(error)
        if error is not None:
            self._loop.call_soon(self._emit_error, error)
        self._close_fd()
        return self

    def _on_destroy(self, error: BaseException | None) -> None:
        pass

    def _emit_error(self, error: BaseException) -> None:
        self.emit("error", error)

    def _maybe_close(self) -> None:
        if self._read_done and self._write_done:
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd < 0:
            return
        self._release_io()
        fd, self._fd = self._fd, -1
        os.close(fd)
        self._loop.call_soon(self._emit_close)

    def _release_io(self) -> None:
        # the watcher's callbacks point back at us: drop them so a finished stream (and what its
        # listeners captured) is freed by reference counting, not at the next cycle collection
        self._io.stop()
        self._io.on_readable = None
        self._io.on_writable = None

    def _emit_close(self) -> None:
        self.closed = True
        self._stream_ended()
        hook = self._close_hook
        try:
            self.emit("close")
        finally:        # a listener that raises must not cost the child its 'close'
            if hook is not None:
                self._close_hook = None
                hook()

    def _stream_ended(self) -> None:
        hook = self._ended_hook
        if hook is not None:
            self._ended_hook = None
            hook()

    def _on_readable(self) -> None:  # pragma: no cover - overridden
        pass

    def _on_writable(self) -> None:  # pragma: no cover - overridden
        pass


class Readable(_FdStream):
    """The parent's end of a pipe the child writes to (stdout, stderr, extra pipes).

    Like a Node stream in paused mode, it reads ahead into a buffer of up to ``READ_AHEAD`` bytes
    before anyone consumes it, then stops reading so the child feels backpressure. A consumer
    ('data' listener, ``resume()``, ``pipe()``, ``async for``) gets the buffered chunks first.
    """

    readable = True
    readable_ended = False
    _flowing: bool | None = None          # None: nobody has asked for data yet
    _decoder: Any = None
    readable_encoding: str | None = None
    _buffered = 0
    _eof = False                          # end of file read (maybe still buffered)
    _flush_scheduled = False
    _async_iterating = False
    _async_waiter: Any = None
    _async_error: BaseException | None = None
    _close_pending = False
    _read_size = READ_SIZE
    _full_reads = 0                       # -1: never grown

    def __init__(self, loop: Loop, fd: int, *, is_socket: bool = False, _writable: bool = False):
        _FdStream.__init__(self, loop, fd, readable=True, writable=_writable, is_socket=is_socket)
        self._buffer: deque[bytes | str] = deque()
        if is_socket:
            self._full_reads = -1
        self._io.start_reading()

    # -- consumer API --------------------------------------------------------------------

    def set_encoding(self, encoding: str | None) -> Readable:
        """Emit str chunks; a character split across reads is decoded whole."""
        if encoding is None or encoding == "buffer":
            self._decoder, self.readable_encoding = None, None
        else:
            try:
                self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
            except LookupError:
                raise NodeTypeError("ERR_UNKNOWN_ENCODING",
                                    f"Unknown encoding: {encoding}") from None
            self.readable_encoding = encoding
            if self._buffer:
                # what was read ahead is still raw: decode it now, keeping a split character
                raw = b"".join(c for c in self._buffer if isinstance(c, (bytes, bytearray)))
                text = self._decoder.decode(raw)
                self._buffer.clear()
                self._buffered = 0
                if text:
                    self._buffer.append(text)
                    self._buffered = len(text)
        return self

    def pause(self) -> Readable:
        """Stop emitting 'data' (reading ahead continues up to the buffer limit)."""
        self._flowing = False
        return self

    def resume(self) -> Readable:
        """Emit 'data' for everything buffered and everything that arrives."""
        self._flowing = True
        if self._buffer or self._eof:
            self._schedule_flush()
        self._want_more()
        return self

    def is_paused(self) -> bool:
        return self._flowing is False

    @property
    def readable_flowing(self) -> bool | None:
        return self._flowing

    @property
    def readable_length(self) -> int:
        return self._buffered

    def pipe(self, destination: Any, end: bool = True) -> Any:
        """Forward every chunk to ``destination.write``, honouring its backpressure."""
        def on_data(chunk: Any) -> None:
            if destination.write(chunk) is False:
                self.pause()
                destination.once("drain", self.resume)

        self.on("data", on_data)
        if end:
            self.once("end", destination.end)
        self.resume()
        return destination

    def _listener_added(self, event: Any) -> None:
        if event == "data" and self._flowing is not False:
            self.resume()

    # -- the loop side ---------------------------------------------------------------------

    def _want_more(self) -> None:
        """Read while there is room in the buffer and someone may want the data."""
        if (not self._eof and self._fd >= 0 and not self._used_as_stdio
                and (self._flowing or self._buffered < READ_AHEAD)):
            self._io.start_reading()

    def _on_readable(self) -> None:
        self._read_once()

    def _read_once(self) -> bool:
        """Read and deliver one chunk; False when nothing was there to read."""
        try:
            chunk = _io.read_chunk(self._fd, self._read_size)
        except OSError as exc:
            if exc.errno == _errno.ECONNRESET:
                chunk = b""
            else:
                self.destroy(errno_exception(exc.errno, "read"))
                return True
        if chunk is None:
            return False
        if not chunk:
            self._on_eof()
            return True
        if (self._full_reads >= 0 and len(chunk) == READ_SIZE
                and (self._flowing or self._async_iterating)):
            # only for a consumer that takes the data: growing the pipe of a paused stream
            # would just let the child put more into kernel memory, past our backpressure
            self._full_reads += 1
            if self._full_reads >= BULK_AFTER:
                self._grow_pipe()
        if self._decoder is not None:
            chunk = self._decoder.decode(chunk)
            if not chunk:
                return True
        if self._flowing and not self._buffer:
            self.emit("data", chunk)
        else:
            self._buffer.append(chunk)
            self._buffered += len(chunk)
            if not self._flowing and self._buffered >= READ_AHEAD:
                self._io.stop_reading()
            if self._flowing:
                self._schedule_flush()
            elif self._async_iterating:
                self._wake_async()
        return True

    def _grow_pipe(self) -> None:
        global _bulk_pipes
        self._full_reads = -1
        if _bulk_pipes < MAX_BULK_PIPES:
            _bulk_pipes += 1
            self._read_size = BULK_READ_SIZE
            _spawn.grow_pipe(self._fd)

    def _release_io(self) -> None:
        global _bulk_pipes
        _FdStream._release_io(self)
        if self._read_size != READ_SIZE:
            self._read_size = READ_SIZE
            _bulk_pipes -= 1

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Deliver the buffer while flowing; then 'end' if the end of file was reached."""
        self._flush_scheduled = False
        buffer = self._buffer
        while buffer and self._flowing and not self.destroyed:
            chunk = buffer.popleft()
            self._buffered -= len(chunk)
            self.emit("data", chunk)
        if buffer:
            self._want_more()
            return
        if self._eof and not self.readable_ended and not self.destroyed:
            self._emit_end()
        else:
            self._want_more()

    def _on_eof(self) -> None:
        self._io.stop_reading()
        self._eof = True
        self._stream_ended()
        if self._decoder is not None:
            tail = self._decoder.decode(b"", True)
            if tail:
                self._buffer.append(tail)
                self._buffered += len(tail)
        self._read_done = True
        if self._flowing and not self._buffer:
            self._emit_end()
        elif self._flowing:
            self._schedule_flush()
        elif self._async_iterating:
            self._wake_async()
        # the descriptor is no longer needed: what is left sits in the buffer
        if self._write_done and self._fd >= 0:
            self._release_io()
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _emit_end(self) -> None:
        self.readable = False
        self.readable_ended = True
        if self._async_iterating:
            self._wake_async()
        try:
            self.emit("end")
        finally:
            self._after_end()       # a listener that raises must not keep the pipe open

    def _after_end(self) -> None:
        if self._write_done:
            self._close_fd()

    def _close_fd(self) -> None:
        """Close the descriptor if still open, and emit 'close' once."""
        if self._close_pending:
            return
        self._close_pending = True
        if self._fd >= 0:
            _FdStream._close_fd(self)
        else:   # closed early at end of file; 'close' still follows 'end'
            self._loop.call_soon(self._emit_close)

    def _maybe_close(self) -> None:
        if self._read_done and self._write_done and (self.readable_ended or self.destroyed):
            self._close_fd()

    def _on_destroy(self, error: BaseException | None) -> None:
        self.readable = False
        self._io.stop_reading()
        self._buffer.clear()
        self._buffered = 0
        if self._async_iterating:
            self._async_error = error
            self._wake_async()

    def _flush_after_exit(self) -> None:
        """The child has exited: drain what nobody reads so 'close' can come (Node's flushStdio).

        Usually the rest of the output and the end of file are already in the pipe, so it is read
        at once; the watcher is only needed when something (a grandchild) still holds the pipe.
        """
        if self.readable_ended or self.destroyed or self._used_as_stdio or self._async_iterating:
            return
        self._flowing = True
        if not self._buffer:
            for _ in range(16):
                if self._eof or self._fd < 0 or self._flowing is not True or self._buffer:
                    break
                if not self._read_once():
                    break
        if self._eof and self._fd < 0 and not self._events:
            # Nobody listens and the pipe is done: what 'data', 'end' and 'close' would do on
            # the next turns changes nothing but this stream's state, so settle it now (a
            # child whose output nobody reads closes two loop turns sooner, for less work).
            self._buffer.clear()
            self._buffered = 0
            self.readable = False
            self.readable_ended = True
            self._close_pending = True
            self._emit_close()
            return
        self.resume()

    # -- async iteration ---------------------------------------------------------------------

    def __aiter__(self) -> Any:
        return self._iterate()

    def _wake_async(self) -> None:
        waiter = self._async_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _iterate(self) -> Any:
        """``async for chunk in stream``. Leaving the loop early (break, an exception, a
        cancellation) destroys the stream, as Node does when a ``for await`` is left."""
        import asyncio
        self._async_iterating = True
        if self._flowing:
            self._flowing = None
        finished = False
        try:
            while True:
                if self._buffer:
                    chunk = self._buffer.popleft()
                    self._buffered -= len(chunk)
                    self._want_more()
                    yield chunk
                    continue
                if self._async_error is not None:
                    finished = True
                    raise self._async_error
                if self._eof or self.destroyed:
                    if not self.readable_ended and not self.destroyed:
                        self._emit_end()
                    finished = True
                    return
                self._want_more()
                self._async_waiter = asyncio.get_running_loop().create_future()
                try:
                    await _drive(self._loop, self._async_waiter)
                finally:
                    self._async_waiter = None
        finally:
            self._async_iterating = False
            if not finished and not self.readable_ended:
                self.destroy()


async def _drive(loop: Loop, future: Any) -> None:
    """Wait for ``future`` with the running asyncio loop driving ours (see _aio)."""
    from ._aio import drive_until
    await drive_until(loop, future)


class Writable(_FdStream):
    """The parent's end of a pipe the child reads from (stdin)."""

    writable = True
    writable_ended = False
    writable_finished = False
    writable_high_water_mark = HIGH_WATER_MARK
    _queued = 0
    _need_drain = False
    _swallow_epipe = True        # a child's stdin: EPIPE without a listener is not a crash

    def __init__(self, loop: Loop, fd: int, *, is_socket: bool = True, _readable: bool = False):
        _FdStream.__init__(self, loop, fd, readable=_readable, writable=True, is_socket=is_socket)
        self._queue: deque[tuple[Any, Callable[..., object] | None]] = deque()

    @property
    def writable_length(self) -> int:
        return self._queued

    @property
    def writable_need_drain(self) -> bool:
        return self._need_drain

    def write(self, data: Any, callback: Callable[..., object] | None = None) -> bool:
        """Queue ``data``; False when the backlog is above the high-water mark (await 'drain')."""
        if isinstance(data, str):
            data = data.encode()
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise invalid_arg_type("chunk", "of type string or bytes-like", data)
        if self.destroyed:
            # Node: the error goes to the callback only; a destroyed stream emits nothing more
            if callback is not None:
                err = NodeValueError("ERR_STREAM_DESTROYED",
                                     "Cannot call write after a stream was destroyed")
                self._loop.call_soon(callback, err)
            return False
        if self.writable_ended:
            err = NodeValueError("ERR_STREAM_WRITE_AFTER_END", "write after end")
            if callback is not None:
                self._loop.call_soon(callback, err)
            self._loop.call_soon(self._emit_error, err)
            return False
        if not self._queue and len(data):
            try:
                written = _io.write_some(self._fd, data, self._is_socket)
            except OSError as exc:
                self._write_failed(exc, callback)
                return False
            if written == len(data):
                if callback is not None:
                    self._loop.call_soon(callback, None)
                return True
            data = memoryview(data)[written:]
            self._io.start_writing()
        elif not len(data) and not self._queue:
            if callback is not None:
                self._loop.call_soon(callback, None)
            return True
        self._queue.append((data, callback))
        self._queued += len(data)
        if self._queued >= self.writable_high_water_mark:
            self._need_drain = True
            return False
        return True

    async def drain(self) -> None:
        """Wait until the backlog is below the high-water mark (asyncio)."""
        if self._queued < self.writable_high_water_mark or self.destroyed:
            return
        import asyncio
        future = asyncio.get_running_loop().create_future()

        def done(*_: Any) -> None:
            if not future.done():
                future.set_result(None)

        self.once("drain", done)
        self.once("close", done)
        await _drive(self._loop, future)

    def end(self, data: Any = None, callback: Callable[..., object] | None = None) -> Writable:
        """Write ``data`` (if any), then close once everything queued is flushed: 'finish'."""
        if data is not None:
            self.write(data)
        if callback is not None:
            if self.writable_finished or self.destroyed:
                err = NodeValueError("ERR_STREAM_ALREADY_FINISHED",
                                     "Cannot call end after a stream was finished")
                self._loop.call_soon(callback, err)
            else:
                self.once("finish", callback)
        if self.writable_ended:
            return self
        self.writable_ended = True
        if not self._queue and not self.destroyed:
            self._loop.call_soon(self._finish)
        return self

    def _on_writable(self) -> None:
        queue = self._queue
        while queue:
            data, callback = queue[0]
            try:
                written = _io.write_some(self._fd, data, self._is_socket)
            except OSError as exc:
                self._write_failed(exc, None)
                return
            if written == 0 and len(data):
                return
            self._queued -= written
            if written < len(data):
                queue[0] = (memoryview(data)[written:], callback)
                continue
            queue.popleft()
            if callback is not None:
                callback(None)
        self._io.stop_writing()
        if self._need_drain:
            self._need_drain = False
            self.emit("drain")
        if self.writable_ended:
            self._finish()

    def _finish(self) -> None:
        if self.writable_finished or self.destroyed:
            return
        self.writable = False
        self.writable_finished = True
        self._write_done = True
        if not self._read_done:
            try:
                _shutdown_write(self._fd)
            except OSError:
                pass
        try:
            self.emit("finish")
        finally:
            self._maybe_close()     # a listener that raises must not keep the socket open

    def _write_failed(self, exc: OSError, callback: Callable[..., object] | None) -> None:
        err = errno_exception(exc.errno, "write")
        callbacks = [cb for _, cb in self._queue if cb is not None]
        if callback is not None:
            callbacks.append(callback)
        self._queue.clear()
        self._queued = 0
        for cb in callbacks:
            self._loop.call_soon(cb, err)
        quiet = (self._swallow_epipe and exc.errno in (_errno.EPIPE, _errno.ECONNRESET)
                 and not self.listener_count("error"))
        self.destroy(None if quiet else err)

    def _on_destroy(self, error: BaseException | None) -> None:
        self.writable = False
        self._io.stop_writing()
        if self._queue:
            pending = [cb for _, cb in self._queue if cb is not None]
            self._queue.clear()
            self._queued = 0
            err = error or NodeValueError("ERR_STREAM_DESTROYED", "stream destroyed before flush")
            for cb in pending:
                self._loop.call_soon(cb, err)


def _shutdown_write(fd: int) -> None:
    import socket
    s = socket.socket(fileno=fd)
    try:
        s.shutdown(socket.SHUT_WR)
    finally:
        s.detach()


class Duplex(Readable, Writable):
    """An extra pipe (fd 3 and up): an AF_UNIX socket pair, readable and writable like Node's."""

    def __init__(self, loop: Loop, fd: int):
        Readable.__init__(self, loop, fd, is_socket=True, _writable=True)
        self._queue = deque()

    def _on_destroy(self, error: BaseException | None) -> None:
        Readable._on_destroy(self, error)
        Writable._on_destroy(self, error)

    def _on_eof(self) -> None:
        # Node's sockets are not half-open by default: the peer's end of file ends our side too
        Readable._on_eof(self)
        if not self.writable_ended and not self.destroyed:
            self.end()
