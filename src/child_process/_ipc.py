"""The IPC channel: Node's protocol over an AF_UNIX stream socket pair.

One ``Channel`` per end. It frames and decodes what it reads (all complete frames of a read at
once, split in C), and dispatches each message to its target (the ``ChildProcess`` in the parent,
``child_process.parent`` in a child) as 'message' or, for ``{'cmd': 'NODE_…'}``, 'internalMessage'.
Sends are packed into an ``Outbox`` (C) and written with one ``send`` per loop turn; ``send()``
says False once more than 128 KiB waits unsent (nothing is dropped), and callbacks never run
inside ``send()``.
"""

from __future__ import annotations

import errno as _errno
import os
from collections import deque
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any, Callable

from . import _handles, _wire
from ._errors import NodeTypeError, NodeValueError, errno_exception
from ._events import EventEmitter
from ._loop import IOWatcher, Loop, Ref, bind_asyncio, get_loop
from ._serialization import (advanced_check_message, check_message, codec, decoders, encoders,
                             json_check_message)

READ_SIZE = 256 * 1024
BACKLOG_LIMIT = 128 * 1024         # Node: "more than 2 read() calls behind"
SYNC_FLUSH_AT = 64 * 1024          # write at once past this, so a burst never piles up
DEFAULT_MAX_MESSAGE = 256 * 1024 * 1024
_MISSING = object()


is_internal = _wire.is_internal
_wire.set_plain_emit(EventEmitter.emit)


class Channel:
    """One end of an IPC socket. ``ref()``/``unref()`` decide whether it keeps the loop alive."""

    def __init__(self, loop: Loop, fd: int, serialization: str, target: Any, *,
                 referenced: bool = True):
        self.loop = loop
        self.fd = fd
        self.serialization = serialization
        self.target = target
        line_framed = codec(serialization)[2]
        self._decode, self._decode_fallback = decoders(serialization)
        self._framer = (_wire.LineFramer(DEFAULT_MAX_MESSAGE) if line_framed
                        else _wire.LengthFramer(DEFAULT_MAX_MESSAGE))
        self._io = IOWatcher(loop, fd, self._on_readable, self._on_writable)
        self._io.spin = True             # see Loop.spin_ns: messages come in quick succession
        self._referenced = referenced
        if not referenced:
            self._io.unref()
        self._io.start_reading()
        self._writes_pending = Ref(loop)     # unsent data keeps even an unref'd channel alive
        self._outbox = _wire.Outbox(*encoders(serialization))
        self._check = {"json": json_check_message,
                       "advanced": advanced_check_message}.get(serialization)
        self._flush_scheduled = False
        self._sync_flush_at = SYNC_FLUSH_AT
        self._disconnect_after_flush = False
        # handle passing (node-ipc-protocol.md §6): while a sent handle waits for its ACK, every
        # later send waits here, in order; a socket sent without keep_open is closed on the ACK
        self._handle_queue: list[Any] | None = None
        self._pending_handle: list[Any] | None = None    # [envelope, socket, callback, resends]
        self._received_fd = -1                          # waiting for its NODE_HANDLE
        self.closed = False
        self.connected = True
        self.on_close: Callable[[], None] | None = None
        self._explicit_ref: bool | None = None

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
             callback: Callable[..., object] | None = None) -> bool:
        return self._send(message, send_handle, keep_open, callback)

    def _send(self, message: Any, send_handle: Any, keep_open: bool,
              callback: Callable[..., object] | None) -> bool:
        if message is _MISSING:
            raise NodeTypeError("ERR_MISSING_ARGS", 'The "message" argument must be specified')
        if callback is not None and not callable(callback):
            raise NodeTypeError("ERR_INVALID_ARG_TYPE", 'The "callback" argument must be callable')
        if self._check is not None and type(message) not in _PLAIN_TOP_TYPES:
            self._check(message)
        kind = _handles.describe(send_handle) if send_handle is not None else None
        if not self.connected:
            err = NodeValueError("ERR_IPC_CHANNEL_CLOSED", "Channel closed")
            if callback is not None:
                self.loop.call_soon(callback, err)
            else:
                self.loop.call_soon(self.target.emit, "error", err)
            return False
        if self._handle_queue is not None:
            # a handle waits for its ACK: everything after it waits too, in order (Node)
            self._handle_queue.append((message, send_handle, keep_open, callback))
            return len(self._handle_queue) == 1
        if kind is None:
            queued = self._outbox.push_message(message, callback)
        else:
            queued = self._send_handle(message, send_handle, kind, keep_open, callback)
        if not self._flush_scheduled:
            self._schedule_flush()
        elif queued >= self._sync_flush_at:
            # a burst from code that does not return to the loop: write as it grows, so the
            # peer works in parallel instead of receiving everything when the burst ends (one
            # attempt per 64 KiB more, even while the kernel is full: it may have room again)
            self._flush()
            self._sync_flush_at = self._outbox.queued + SYNC_FLUSH_AT
        return queued < BACKLOG_LIMIT

    def _send_handle(self, message: Any, handle: Any, kind: Any, keep_open: bool,
                     callback: Callable[..., object] | None) -> int:
        """Queue the NODE_HANDLE envelope with a duplicate of the socket's descriptor riding on
        its first write; then hold every later send until the receiver's ACK or NACK."""
        wrapped = _handles.envelope(kind[0], kind[1], message)
        queued = self._outbox.push_message(wrapped, callback, os.dup(handle.fileno()))
        self._handle_queue = []
        if kind[0] == "net.Socket" and not keep_open:
            self._pending_handle = [wrapped, handle, callback, 0]
        return queued

    def _send_internal(self, message: Any) -> None:
        """ACK/NACK: past any handle queue, errors swallowed (Node's swallowErrors), and
        written at once -- before the listener of the handle runs, which may block on it."""
        if self.closed:
            return
        self._outbox.push_message(message)
        self._writes_pending.set_active(True)
        if not self._io.writing:
            self._flush()       # (when the kernel is full, the writable event flushes)

    def _handle_acknowledged(self, received: bool) -> None:
        """NODE_HANDLE_ACK (``received``) or NACK from the peer."""
        pending = self._pending_handle
        self._pending_handle = None
        queue = self._handle_queue
        self._handle_queue = None
        resend = None
        if pending is not None:
            if received:
                _close_quietly(pending[1])          # delivered: the sender's copy goes
            elif pending[3] < _handles.MAX_RETRANSMISSIONS and pending[1].fileno() >= 0:
                pending[3] += 1
                resend = pending
            else:
                _close_quietly(pending[1])
                import warnings
                warnings.warn("Handle did not reach the receiving process correctly",
                              _handles.SentHandleNotReceivedWarning, stacklevel=2)
        if resend is not None and not self.closed:
            # the same envelope and a new duplicate; the callback runs again, as in Node
            self._outbox.push_message(resend[0], resend[2], os.dup(resend[1].fileno()))
            self._handle_queue = []
            self._pending_handle = resend
            self._schedule_flush()
        for message, handle, keep_open, callback in queue or ():
            if self._handle_queue is not None:
                self._handle_queue.append((message, handle, keep_open, callback))
                continue
            self._resend_queued(message, handle, keep_open, callback)
        if self._handle_queue is None and not self.connected and not self.closed:
            self._disconnect_now()              # a disconnect() that waited for this ACK

    def _resend_queued(self, message: Any, handle: Any, keep_open: bool,
                       callback: Callable[..., object] | None) -> None:
        if self.closed:
            if callback is not None:
                self.loop.call_soon(callback,
                                    NodeValueError("ERR_IPC_CHANNEL_CLOSED", "Channel closed"))
            return
        try:
            kind = _handles.describe(handle) if handle is not None else None
            if kind is None:
                self._outbox.push_message(message, callback)
            else:
                self._send_handle(message, handle, kind, keep_open, callback)
        except Exception as exc:       # the socket changed since send() accepted it
            if callback is not None:
                self.loop.call_soon(callback, exc)
            elif self.target is not None:
                self.loop.call_soon(self.target.emit, "error", exc)
            return
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._writes_pending.set_active(True)
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what is queued, as much as the kernel takes now; the rest when writable."""
        self._flush_scheduled = False
        if self.closed:
            return
        outbox = self._outbox
        try:
            done = outbox.flush(self.fd)
        except OSError as exc:
            self._write_failed(exc)
            return
        if done is not None:
            call_soon = self.loop.call_soon
            for callback in done:
                call_soon(callback, None)
        if outbox.queued:
            self._flush_scheduled = True      # the writable event will flush; no extra turn
            self._io.start_writing()
            return
        self._sync_flush_at = SYNC_FLUSH_AT
        self._io.stop_writing()
        self._writes_pending.set_active(False)
        if self._disconnect_after_flush:
            self._close()

    def _on_writable(self) -> None:
        self._flush()

    @property
    def _queued(self) -> int:
        return self._outbox.queued

    def _write_failed(self, exc: OSError) -> None:
        err = errno_exception(exc.errno or _errno.EPIPE, "write")
        callbacks = self._outbox.clear()
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
        data, fds, truncated = got
        if fds or truncated:
            self._take_descriptors(fds, truncated)
        if not data:
            self._close()
            return
        messages, error, _ends = self._framer.feed(data, self._decode, self._decode_fallback)
        if messages:
            internal = _wire.internal_positions(messages)
            if internal is not None:
                messages = self._handle_internal(messages, internal)
        if self._received_fd >= 0 and not self._framer.buffering:
            # the read that carried it held no NODE_HANDLE, not even the start of one
            self._drop_received_fd("ERR_IPC_UNEXPECTED_HANDLE",
                                   "a descriptor arrived without a NODE_HANDLE message")
        if error is not None:
            self._fail(_bad_message(error), messages)
        elif messages:
            self._deliver(messages, 0)

    def _take_descriptors(self, fds: Any, truncated: bool) -> None:
        """Keep one received descriptor for the next NODE_HANDLE; close and report the rest."""
        fds = list(fds or ())
        if truncated:
            for fd in fds:
                os.close(fd)
            self._report("ERR_IPC_HANDLE_TRUNCATED",
                         "descriptors were lost: the control data of a read was truncated")
            return
        if self._received_fd >= 0:
            self._drop_received_fd("ERR_IPC_UNEXPECTED_HANDLE",
                                   "a descriptor arrived without a NODE_HANDLE message")
        self._received_fd = fds.pop(0)
        if fds:
            for fd in fds:
                os.close(fd)
            self._report("ERR_IPC_EXTRA_HANDLES",
                         f"{len(fds)} more descriptor(s) than one came in a single message")

    def _drop_received_fd(self, code: str, text: str) -> None:
        fd, self._received_fd = self._received_fd, -1
        if fd >= 0:
            os.close(fd)
            self._report(code, text)

    def _report(self, code: str, text: str) -> None:
        if self.target is not None:
            self.loop.call_soon(self.target.emit, "error", NodeValueError(code, text))

    def _handle_internal(self, messages: list[Any], positions: list[int]) -> list[Any]:
        """The protocol's own messages: ACK/NACK steer our sending; a NODE_HANDLE takes the
        descriptor received at or before it and becomes its user message with a socket."""
        consumed = False
        for i in positions:
            message = messages[i]
            cmd = message["cmd"]
            if cmd == "NODE_HANDLE_ACK" or cmd == "NODE_HANDLE_NACK":
                self._handle_acknowledged(cmd == "NODE_HANDLE_ACK")
                messages[i] = _CONSUMED
                consumed = True
            elif cmd == "NODE_HANDLE":
                messages[i] = self._receive_handle(message)
                consumed = consumed or messages[i] is _CONSUMED
        if consumed:
            messages = [m for m in messages if m is not _CONSUMED]
        return messages

    def _receive_handle(self, wrapped: Any) -> Any:
        fd, self._received_fd = self._received_fd, -1
        if fd < 0:
            self._send_internal({"cmd": "NODE_HANDLE_NACK"})    # the sender tries again
            return _CONSUMED
        self._send_internal({"cmd": "NODE_HANDLE_ACK"})
        message = wrapped.get("msg")
        while _wire.is_internal(message) and message.get("cmd") == "NODE_HANDLE":
            # Node's retransmission wraps the envelope once more; it is acknowledged again
            self._send_internal({"cmd": "NODE_HANDLE_ACK"})
            message = message.get("msg")
        try:
            sock = _handles.rebuild(fd)
        except OSError as exc:
            self._report("ERR_INVALID_HANDLE_TYPE",
                         f"the descriptor received with a NODE_HANDLE is not a socket ({exc})")
            return _CONSUMED
        return _wire.WithHandle(message, sock)

    def _deliver(self, messages: list[Any], start: int, error: Any = None,
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

    def _fail(self, error: BaseException, messages: list[Any]) -> None:
        """A frame we cannot decode: deliver what came before it, report, and close."""
        target = self.target
        self.connected = False
        self._close(announce=False)
        self.loop.call_soon(self._deliver, messages, 0, error, target)

    # -- closing ---------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Close after what is queued has been written; 'disconnect' follows (asynchronously).
        While a sent handle waits for its ACK, the close waits for the ACK too (Node)."""
        self.connected = False
        if self._handle_queue is None:
            self._disconnect_now()

    def _disconnect_now(self) -> None:
        if self._outbox.queued:
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
        pending = self._outbox.clear()
        queue, self._handle_queue = self._handle_queue, None
        pending += [item[3] for item in queue or () if item[3] is not None]
        if self._pending_handle is not None:
            _close_quietly(self._pending_handle[1])     # Node closes it on disconnect too
            self._pending_handle = None
        if self._received_fd >= 0:
            os.close(self._received_fd)
            self._received_fd = -1
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


_CONSUMED = object()     # a protocol message the channel handled itself
#: top-level types every mode's send() accepts as they are (the check runs for the others)
_PLAIN_TOP_TYPES = frozenset((dict, list, str, float, bool, type(None)))


def _close_quietly(sock: Any) -> None:
    try:
        sock.close()
    except OSError:
        pass


def _bad_message(cause: BaseException) -> NodeValueError:
    err = NodeValueError("ERR_IPC_BAD_MESSAGE",
                         f"The IPC peer sent a message that cannot be decoded: {cause}")
    err.__cause__ = cause
    return err


class ChannelOwner(EventEmitter):
    """What both IPC ends share: send/disconnect/connected and message dispatch with Node's
    queue-until-someone-listens rule. Subclassed by ChildProcess (parent side) and Parent."""

    channel: Channel | None
    #: messages that came before anyone listened for 'message' (a deque once there is one)
    _pending_messages: deque[tuple[Any, Any]] | None = None

    def _ipc_init(self) -> None:
        self._pending_messages = None

    def send(self, message: Any = _MISSING, send_handle: Any = None, *, keep_open: bool = False,
             callback: Callable[..., object] | None = None) -> bool:
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
        return channel._send(message, send_handle, keep_open, callback)

    def disconnect(self) -> None:
        """Close the channel once queued messages are written; 'disconnect' follows."""
        channel = self.channel
        if channel is None or not channel.connected:
            self.emit("error", NodeValueError("ERR_IPC_DISCONNECTED",
                                              "IPC channel is already disconnected"))
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
            bind_asyncio(self.channel.loop)

    def send(self, message: Any = _MISSING, send_handle: Any = None, *, keep_open: bool = False,
             callback: Callable[..., object] | None = None) -> bool:
        channel = self.channel
        if channel is not None:
            bind_asyncio(channel.loop)     # inside asyncio.run(), asyncio drives the channel
            if not channel.closed:
                return channel._send(message, send_handle, keep_open, callback)
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


def open_parent_channel() -> Parent | None:
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
