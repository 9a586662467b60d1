"""Handles that cross the IPC channel: what Node calls a socket we send, and the socket we
rebuild from a descriptor we receive (node-ipc-protocol.md §6).

Only ``socket.socket`` objects can be sent, as in Node only sockets, servers and UDP sockets can.
The kind is read from the descriptor itself (type, family, listening or connected), because that
is what the receiving side (libuv's ``uv_guess_handle`` in Node) will look at too.
"""

from __future__ import annotations

import os
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any

from ._errors import NodeTypeError

#: How many times a socket is sent again when the receiver answers NODE_HANDLE_NACK (Node's).
MAX_RETRANSMISSIONS = 3

# ``socket`` is imported on first use: it costs a forked child ~2 ms of start-up.


class SentHandleNotReceivedWarning(RuntimeWarning):
    """A socket was refused (NACK) more than MAX_RETRANSMISSIONS times and has been closed."""


def invalid_handle() -> NodeTypeError:
    return NodeTypeError("ERR_INVALID_HANDLE_TYPE", "This handle type cannot be sent")


def describe(handle: Any) -> tuple[str, dict[str, Any]] | None:
    """(Node type name, extra envelope fields) for a sendable handle; None for a socket that is
    already closed (Node then sends the message without a handle). Raises ERR_INVALID_HANDLE_TYPE
    for anything else."""
    import socket
    if not isinstance(handle, socket.socket):
        raise invalid_handle()
    fd = handle.fileno()
    if fd < 0:
        return None
    try:
        kind = handle.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        family = handle.family
    except OSError:
        raise invalid_handle() from None
    inet = (socket.AF_INET, socket.AF_INET6)
    if kind == socket.SOCK_STREAM and family in inet + (socket.AF_UNIX,):
        if handle.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            return "net.Server", {}
        if _connected(handle):
            return "net.Socket", {}
        return "net.Native", {}
    if kind == socket.SOCK_DGRAM and family in inet:
        return "dgram.Socket", {"dgramType": "udp4" if family == socket.AF_INET else "udp6"}
    return "net.Native", {}


def _connected(handle: Any) -> bool:
    try:
        handle.getpeername()
    except OSError:
        return False
    return True


def envelope(kind: str, extra: dict[str, Any], message: Any) -> dict[str, Any]:
    """Node's NODE_HANDLE wrapper, keys in Node's order."""
    wrapped = {"cmd": "NODE_HANDLE", "type": kind, "msg": message}
    if extra:
        wrapped.update(extra)
    return wrapped


def rebuild(fd: int) -> Any:
    """A ``socket.socket`` of the descriptor's own family and type (taking ownership of ``fd``).

    The descriptor's blocking mode is left alone -- it is shared with the sender, and Node's
    sockets are non-blocking -- and the Python object says so: timeout 0.0 when non-blocking.
    Raises OSError (ENOTSOCK) for a descriptor that is not a socket, after closing it.
    """
    import socket
    try:
        sock = socket.socket(fileno=fd)
    except BaseException:
        os.close(fd)
        raise
    if not os.get_blocking(fd):
        sock.settimeout(0.0)    # already O_NONBLOCK: only the object's view changes
    return sock

