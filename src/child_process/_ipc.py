"""The IPC channel: Node's protocol over an AF_UNIX stream socket pair.

One ``Channel`` per end. It frames and decodes what it reads (all complete frames of a read at
once, split in C), and dispatches each message to its target (the ``ChildProcess`` in the parent,
``child_process.parent`` in a child) as 'message' or, for ``{'cmd': 'NODE_…'}``, 'internalMessage'.
Sends are queued and written with one ``sendmsg`` per loop turn; ``send()`` says False once more
than 128 KiB waits unsent (nothing is dropped), and callbacks never run inside ``send()``.
"""

from __future__ import annotations

import errno as _errno
import os
from collections import deque
from itertools import islice
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any, Callable, List, Optional

from . import _wire
from ._errors import NodeTypeError, NodeValueError, errno_exception
from ._events import EventEmitter
from ._loop import IOWatcher, Loop, Ref, get_loop
from ._serialization import check_message, codec

READ_SIZE = 256 * 1024
BACKLOG_LIMIT = 128 * 1024         # Node: "more than 2 read() calls behind"
SYNC_FLUSH_AT = 64 * 1024          # write at once past this, so a burst never piles up
DEFAULT_MAX_MESSAGE = 256 * 1024 * 1024
_MISSING = object()


is_internal = _wire.is_internal


class Channel:
    """One end of an IPC socket. ``ref()``/``unref()`` decide whether it keeps the loop alive."""

    def __init__(self, loop: Loop, fd: int, serialization: str, target: Any, *,
                 referenced: bool = True):
        self.loop = loop
        self.fd = fd
        self.serialization = serialization
        self.target = target
        self._encode, self._decode, line_framed = codec(serialization)
        self._framer = (_wire.LineFramer(DEFAULT_MAX_MESSAGE) if line_framed
                        else _wire.LengthFramer(DEFAULT_MAX_MESSAGE))
        self._io = IOWatcher(loop, fd, self._on_readable, self._on_writable)
        self._referenced = referenced
        if not referenced:
            self._io.unref()
        self._io.start_reading()
        self._writes_pending = Ref(loop)     # unsent data keeps even an unref'd channel alive
        self._queue: deque = deque()         # [data, callback]
        self._queued = 0
        self._flush_scheduled = False
        self._disconnect_after_flush = False
        self.closed = False
        self.connected = True
        self.on_close: Optional[Callable[[], None]] = None
        self._explicit_ref: Optional[bool] = None

    def __repr__(self) -> str:
        return f"<Channel fd={self.fd} {self.serialization} {'closed' if self.closed else 'open'}>"

    # -- public, as Node's child.channel -------------------------------------------------

    def fileno(self) -> int:
        return self.fd

    def ref(self) -> None:
        self._explicit_ref = True
        self._set_ref(True)

    def unref(self) -> None:
        self._explicit_ref = False
        self._set_ref(False)

    def has_ref(self) -> bool:
        return self._referenced

    @property
    def max_message_size(self) -> int:
        """Frames announcing more than this are refused before any memory is set aside."""
        framer = self._framer
        return framer.max_line if isinstance(framer, _wire.LineFramer) else framer.max_frame

    @max_message_size.setter
    def max_message_size(self, value: int) -> None:
        if isinstance(self._framer, _wire.LineFramer):
            self._framer.max_line = int(value)
        else:
            self._framer.max_frame = int(value)

    def _set_ref(self, on: bool) -> None:
        if on == self._referenced:
            return
        self._referenced = on
        (self._io.ref if on else self._io.unref)()
        (self._writes_pending.ref if on else self._writes_pending.unref)()

    def _count_listeners(self, wanted: bool) -> None:
        """A child's channel keeps it alive only while someone listens (unless ref'd explicitly)."""
        if self._explicit_ref is None:
            self._set_ref(wanted)

    # -- sending ---------------------------------------------------------------------------

    def send(self, message: Any = _MISSING, send_handle: Any = None, *, keep_open: bool = False,
             callback: Optional[Callable] = None) -> bool:
        if message is _MISSING:
            raise NodeTypeError("ERR_MISSING_ARGS", 'The "message" argument must be specified')
        if callback is not None and not callable(callback):
            raise NodeTypeError("ERR_INVALID_ARG_TYPE", 'The "callback" argument must be callable')
        check_message(self.serialization, message)
        if send_handle is not None:
            raise NodeTypeError("ERR_INVALID_HANDLE_TYPE", "This handle type cannot be sent")
        if not self.connected:
            err = NodeValueError("ERR_IPC_CHANNEL_CLOSED", "Channel closed")
            if callback is not None:
                self.loop.call_soon(callback, err)
            else:
                self.loop.call_soon(self.target.emit, "error", err)
            return False
        frame = self._encode(message)
        self._queue.append([frame, callback])
        self._queued += len(frame)
        self._writes_pending.set_active(True)
        if self._queued >= SYNC_FLUSH_AT and not self._io.writing:
            self._flush()       # not when the kernel is full: the writable event will come
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)
        return self._queued < BACKLOG_LIMIT

    def _flush(self) -> None:
        """Write what is queued: one sendmsg for as many frames as the kernel takes."""
        self._flush_scheduled = False
        queue = self._queue
        while queue and not self.closed:
            try:
                written = _wire.send_frames(self.fd, [entry[0] for entry in islice(queue, 1024)], 0)
            except OSError as exc:
                self._write_failed(exc)
                return
            if written == 0:
                self._io.start_writing()
                return
            self._queued -= written
            while written:
                entry = queue[0]
                size = len(entry[0])
                if written >= size:
                    written -= size
                    queue.popleft()
                    if entry[1] is not None:
                        self.loop.call_soon(entry[1], None)
                else:
                    entry[0] = memoryview(entry[0])[written:]
                    written = 0
        self._io.stop_writing()
        if not queue:
            self._writes_pending.set_active(False)
            if self._disconnect_after_flush:
                self._close()

    def _on_writable(self) -> None:
        self._flush()

    def _write_failed(self, exc: OSError) -> None:
        err = errno_exception(exc.errno or _errno.EPIPE, "write")
        callbacks = [cb for _, cb in self._queue if cb is not None]
        self._queue.clear()
        self._queued = 0
        for cb in callbacks:
            self.loop.call_soon(cb, err)
        target = self.target
        if not callbacks and target is not None and (
                target.listener_count("error")
                or exc.errno not in (_errno.EPIPE, _errno.ECONNRESET)):
            # Node emits a failed write without callback as 'error'; a peer that has simply
            # gone (EPIPE) does not crash a program that listens for no errors
            self.loop.call_soon(target.emit, "error", err)
        self._close()

    # -- receiving -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            got = _wire.recv_with_fds(self.fd, READ_SIZE)
        except OSError as exc:
            if exc.errno in (_errno.ECONNRESET, _errno.EPIPE):
                got = (b"", None, False)
            else:
                self._fail(errno_exception(exc.errno, "read"), [])
                return
        if got is None:
            return
        data, fds, _truncated = got
        if fds:
            for fd in fds:          # handle passing is not wired yet: never leak one
                os.close(fd)
        if not data:
            self._close()
            return
        messages, error, _ends = self._framer.feed(data, self._decode)
        if error is not None:
            self._fail(_bad_message(error), messages)
        elif messages:
            self._deliver(messages, 0)

    def _deliver(self, messages: List[Any], start: int, error: Any = None,
                 target: Any = None) -> None:
        """Dispatch each message; if a listener raises, the rest go on the next turns. With an
        ``error`` (a frame that could not be decoded): then 'error', then the channel's close."""
        if target is None:
            target = self.target

        def later(next_index: int) -> None:
            if next_index < len(messages) or error is not None:
                self.loop.call_soon(self._deliver, messages, next_index, error, target)

        _wire.dispatch(messages, start, target, None, later)
        if error is not None:
            try:
                target.emit("error", error)
            finally:
                self._closed_event(target)

    def _fail(self, error: BaseException, messages: List[Any]) -> None:
        """A frame we cannot decode: deliver what came before it, report, and close."""
        target = self.target
        self.connected = False
        self._close(announce=False)
        self.loop.call_soon(self._deliver, messages, 0, error, target)

    # -- closing ---------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Close after what is queued has been written; 'disconnect' follows (asynchronously)."""
        self.connected = False
        if self._queue:
            self._disconnect_after_flush = True
        else:
            self._close()

    def _close(self, announce: bool = True) -> None:
        if self.closed:
            return
        self.closed = True
        self.connected = False
        self._io.stop()
        self._io.on_readable = self._io.on_writable = None     # no cycle through the watcher
        self._writes_pending.set_active(False)
        os.close(self.fd)
        # what never reached the kernel: its callbacks learn it (never silently dropped)
        pending = [cb for _, cb in self._queue if cb is not None]
        self._queue.clear()
        self._queued = 0
        if pending:
            err = NodeValueError("ERR_IPC_CHANNEL_CLOSED", "Channel closed")
            for cb in pending:
                self.loop.call_soon(cb, err)
        if announce:
            self.loop.call_soon(self._closed_event)

    def _closed_event(self, target: Any = None) -> None:
        if target is None:
            target = self.target
        self.target = None
        if target is None:
            return
        try:
            target._channel_closed()
        finally:
            if self.on_close is not None:
                self.on_close()


def _bad_message(cause: BaseException) -> NodeValueError:
    err = NodeValueError("ERR_IPC_BAD_MESSAGE",
                         f"The IPC peer sent a message that cannot be decoded: {cause}")
    err.__cause__ = cause
    return err


class ChannelOwner(EventEmitter):
    """What both IPC ends share: send/disconnect/connected and message dispatch with Node's
    queue-until-someone-listens rule. Subclassed by ChildProcess (parent side) and Parent."""

    channel: Optional[Channel]

    def _ipc_init(self) -> None:
        self._pending_messages: Optional[deque] = None

    def send(self, message: Any = _MISSING, send_handle: Any = None, *, keep_open: bool = False,
             callback: Optional[Callable] = None) -> bool:
        """Send ``message`` to the other side; False when the channel is closed or backed up."""
        channel = self.channel
        if channel is None or channel.closed:
            if message is _MISSING:
                raise NodeTypeError("ERR_MISSING_ARGS", 'The "message" argument must be specified')
            # the type is checked before the channel state
            check_message(getattr(self, "_ipc_serialization", "json"), message)
            err = NodeValueError("ERR_IPC_CHANNEL_CLOSED", "Channel closed")
            loop = get_loop()
            if callback is not None:
                loop.call_soon(callback, err)
            else:
                loop.call_soon(self.emit, "error", err)
            return False
        return channel.send(message, send_handle, keep_open=keep_open, callback=callback)

    def disconnect(self) -> None:
        """Close the channel once queued messages are written; 'disconnect' follows."""
        channel = self.channel
        if channel is None or not channel.connected:
            self.emit("error", NodeValueError("ERR_IPC_DISCONNECTED", "IPC channel is already disconnected"))
            return
        channel.disconnect()

    @property
    def connected(self) -> bool:
        channel = self.channel
        return channel is not None and channel.connected

    def _queue_message(self, message: Any, handle: Any) -> None:
        """No 'message' listener yet (or older ones still queued): keep it for later."""
        if self._pending_messages is None:
            self._pending_messages = deque()
        self._pending_messages.append((message, handle))

    def _flush_pending_messages(self) -> None:
        pending = self._pending_messages
        while pending and self.listener_count("message"):
            message, handle = pending.popleft()
            try:
                self.emit("message", message, handle)
            except BaseException:
                if pending:         # the rest on the next turns, as for any message
                    get_loop().call_soon(self._flush_pending_messages)
                else:
                    self._pending_messages = None
                raise
        if not pending:
            self._pending_messages = None

    def _ipc_listener_added(self, event: Any) -> None:
        if event == "message" and self._pending_messages:
            get_loop().call_soon(self._flush_pending_messages)

    def _channel_closed(self) -> None:
        self.emit("disconnect")


def attach_parent_channel(child: Any, loop: Loop, fd: int, serialization: str) -> None:
    """The parent's end of a child's IPC channel, emitting on the ChildProcess."""
    child._ipc_init()
    child._ipc_serialization = serialization
    child.channel = Channel(loop, fd, serialization, child)
    child._closes_needed += 1


class Parent(ChannelOwner):
    """``child_process.parent`` in a process started with an IPC channel (by fork() or by Node).

    As in Node, the channel keeps this process alive only while 'message' or 'disconnect'
    listeners exist, unless ``ref()``/``unref()`` is called explicitly.
    """

    def __init__(self, fd: int, serialization: str):
        EventEmitter.__init__(self)
        self._ipc_init()
        self._ipc_serialization = serialization
        self.channel = Channel(get_loop(), fd, serialization, self, referenced=False)

    def ref(self) -> None:
        if self.channel is not None:
            self.channel.ref()

    def unref(self) -> None:
        if self.channel is not None:
            self.channel.unref()

    def _listener_added(self, event: Any) -> None:
        self._ipc_listener_added(event)
        if event in ("message", "disconnect") and self.channel is not None:
            self.channel._count_listeners(True)
            _bind_asyncio(self.channel.loop)

    def send(self, message: Any = _MISSING, send_handle: Any = None, *, keep_open: bool = False,
             callback: Optional[Callable] = None) -> bool:
        if self.channel is not None:
            _bind_asyncio(self.channel.loop)   # inside asyncio.run(), asyncio drives the channel
        return ChannelOwner.send(self, message, send_handle, keep_open=keep_open,
                                 callback=callback)

    def _listener_removed(self, event: Any) -> None:
        if event in ("message", "disconnect") and self.channel is not None:
            if not (self.listener_count("message") or self.listener_count("disconnect")):
                self.channel._count_listeners(False)

    def _channel_closed(self) -> None:
        channel = self.channel
        self.channel = None
        try:
            self.emit("disconnect")
        finally:
            del channel


def _bind_asyncio(loop: Loop) -> None:
    import sys
    if "asyncio" in sys.modules:
        from . import _aio
        _aio.bind(loop)


def open_parent_channel() -> Optional[Parent]:
    """Adopt the channel a parent gave us through NODE_CHANNEL_FD (and hide it from our own
    children, as Node does)."""
    raw = os.environ.pop("NODE_CHANNEL_FD", None)
    mode = os.environ.pop("NODE_CHANNEL_SERIALIZATION_MODE", None) or "json"
    if raw is None:
        return None
    try:
        fd = int(raw, 10)
        if fd < 0:
            raise ValueError(raw)
        os.fstat(fd)
    except (ValueError, OSError):
        return None
    if mode not in ("json", "advanced", "pickle"):
        mode = "json"
    from . import _spawn
    os.set_inheritable(fd, False)
    _spawn.set_nonblocking(fd)
    return Parent(fd, mode)
