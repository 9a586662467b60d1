"""Handle passing: SPEC §7 items 38-40 (and 35, 36), node-ipc-protocol.md §5 and §6, issue 7.

Peers:

- *raw parents* (``HandlePeer``): a Python child running this library on a socket pair whose
  other end the test holds, so the test reads the child's channel with ``recvmsg`` (which
  ``sendmsg`` carried which descriptor) and writes crafted ``SCM_RIGHTS`` messages with
  ``socket.send_fds``. The child reports what it sees as JSON lines on its stdout, including
  its own descriptor count at start and at end (the leak check of the *other* process; this
  process is checked by conftest's autouse fixture);
- ``fork()`` of a child running this library (both ends ours): shared servers, keep_open.

Frames for 'advanced' and 'pickle' are made by the library's own codecs (tested elsewhere); the
envelope's exact bytes are checked for 'json' and 'advanced' against node-ipc-protocol.md §6.2.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` document library bugs.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import socket
import struct
import textwrap
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import child_process
from child_process import NodeTypeError, fork
from child_process._serialization import codec
from ipc_peers import PY, WAIT, RawParent, run_until, script, spin

MODES = ["json", "advanced", "pickle"]


def _ipv6_ok() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


IPV6 = _ipv6_ok()
needs_ipv6 = pytest.mark.skipif(not IPV6, reason="no IPv6 loopback here")

def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# =================================================================================================
# the raw peer: frames, recvmsg, send_fds
# =================================================================================================

def frame(mode: str, message) -> bytes:
    return codec(mode)[0](message)


class Frames:
    """Incremental splitter for a stream of frames (newline or 4-byte big-endian length)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.decode = codec(mode)[1]
        self.buf = b""

    def feed(self, data: bytes) -> list:
        """[(raw frame bytes, message)] completed by ``data``."""
        self.buf += data
        out = []
        while True:
            if self.mode == "json":
                i = self.buf.find(b"\n")
                if i < 0:
                    return out
                raw, self.buf = self.buf[:i + 1], self.buf[i + 1:]
                out.append((raw, json.loads(raw)))
            else:
                if len(self.buf) < 4:
                    return out
                (n,) = struct.unpack(">I", self.buf[:4])
                if len(self.buf) < 4 + n:
                    return out
                raw, self.buf = self.buf[:4 + n], self.buf[4 + n:]
                out.append((raw, self.decode(raw[4:])))


def recvmsg_fds(sock: socket.socket, size: int = 1 << 20, maxfds: int = 8):
    """One recvmsg: (data, [fds], flags). The fds are close-on-exec."""
    fds = array.array("i")
    data, ancdata, flags, _ = sock.recvmsg(size, socket.CMSG_SPACE(maxfds * fds.itemsize),
                                           socket.MSG_CMSG_CLOEXEC)
    for level, kind, cdata in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(cdata[:len(cdata) - len(cdata) % fds.itemsize])
    return data, list(fds), flags


#: Prepended to every child: ``p`` the channel, ``out(...)`` one JSON line on stdout,
#: ``nfds()`` this process's descriptor count, ``describe(sock)`` what a received socket is.
PRELUDE = """\
import child_process, fcntl, json, os, socket, sys, time, warnings
p = child_process.parent
def out(*args):
    sys.stdout.write(json.dumps(list(args), default=repr) + "\\n")
    sys.stdout.flush()
def nfds():
    return len(os.listdir("/proc/self/fd"))
def describe(h):
    return {"family": int(h.family), "type": int(h.type),
            "listening": h.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
            "cloexec": bool(fcntl.fcntl(h.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC)}
p.on("error", lambda e: out("error", getattr(e, "code", None), str(e)))
"""

#: A child that records every message (and what handle came with it, then closes it); "bye"
#: reports the end descriptor count and disconnects.
RECEIVER = PRELUDE + """\
out("start", nfds())
def on_message(m, h=None):
    info = None
    if h is not None:
        info = describe(h)
        h.close()
    out("message", m, info)
    if m == "bye":
        out("end", nfds())
        p.disconnect()
p.on("message", on_message)
"""


class HandlePeer(RawParent):
    """The test is the parent of a Python child (this library) through a socket pair, and
    sends and receives descriptors with the frames."""

    def __init__(self, path: str, mode: str = "json", args=()):
        RawParent.__init__(self, path, mode, args=args)
        self.frames = Frames(mode)
        self.pending = []          # [(raw, message, fds that came with the read that ended it)]
        self.reads = []            # every recvmsg: (data, fds)
        self.loose_fds = []        # received, not yet bound to a NODE_HANDLE frame

    # -- the channel -------------------------------------------------------------------
    def send(self, message, fds=()) -> None:
        self.send_raw(frame(self.mode, message), fds)

    def send_raw(self, data: bytes, fds=()) -> None:
        fds = [f if isinstance(f, int) else f.fileno() for f in fds]
        if fds:
            n = socket.send_fds(self.sock, [data], fds)
            data = data[n:]
        if data:
            self.sock.sendall(data)

    def read_frame(self, timeout: float = WAIT):
        """(raw, message, fds) of the next frame. Descriptors go to the next NODE_HANDLE frame
        completed at or after the read that carried them (the receiver's rule: Linux may return
        earlier fd-less bytes with the fd's segment); the caller owns and must close them."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame from the child")
            self.sock.settimeout(remaining)
            data, fds, flags = recvmsg_fds(self.sock)
            assert not flags & socket.MSG_CTRUNC
            self.loose_fds += fds
            if not data:
                raise EOFError("the child closed the channel")
            self.reads.append((data, list(fds)))
            for raw, message in self.frames.feed(data):
                mine = []
                if (isinstance(message, dict) and message.get("cmd") == "NODE_HANDLE"):
                    mine, self.loose_fds = self.loose_fds, []
                self.pending.append((raw, message, mine))
        return self.pending.pop(0)

    def expect(self, message, timeout: float = WAIT):
        """The next frame must be ``message`` without a descriptor."""
        raw, got, fds = self.read_frame(timeout)
        for fd in fds:
            os.close(fd)
        assert (got, fds) == (message, []), (got, fds)
        return raw

    def expect_nothing(self, seconds: float = 0.3) -> None:
        assert not self.pending, self.pending
        try:
            raw, got, fds = self.read_frame(seconds)
        except TimeoutError:
            return
        for fd in fds:
            os.close(fd)
        raise AssertionError(f"unexpected frame {got!r} (with {len(fds)} fds)")

    def expect_eof(self) -> None:
        with pytest.raises(EOFError):
            raw, got, fds = self.read_frame()
            for fd in fds:
                os.close(fd)
            raise AssertionError(f"unexpected frame {got!r}")

    def ack(self) -> None:
        self.send({"cmd": "NODE_HANDLE_ACK"})

    def nack(self) -> None:
        self.send({"cmd": "NODE_HANDLE_NACK"})

    def close(self) -> None:
        RawParent.close(self)
        for _raw, _message, fds in self.pending:
            for fd in fds:
                os.close(fd)
        for fd in self.loose_fds:
            os.close(fd)
        self.pending = []
        self.loose_fds = []


@pytest.fixture
def peer(tmp_path):
    made = []

    def make(code: str, mode: str = "json", args=()) -> HandlePeer:
        p = HandlePeer(script(tmp_path, code), mode, args)
        made.append(p)
        return p
    yield make
    for p in made:
        p.close()


def start_count(events) -> int:
    return next(e[1] for e in events if e[0] == "start")


def end_count(events) -> int:
    return next(e[1] for e in events if e[0] == "end")


def assert_no_child_leak(events) -> None:
    assert end_count(events) == start_count(events), events


def bye(peer_: HandlePeer) -> list:
    """Ask a RECEIVER-like child to finish; returns its events after a clean exit."""
    peer_.send("bye")
    peer_.expect_eof()
    rc, events, err = peer_.finish()
    assert rc == 0, err
    assert err == "", err
    return events


# =================================================================================================
# what a socket is sent as (the child sends, the test reads the wire with recvmsg)
# =================================================================================================

#: Makes ``s``, the socket to send, for each kind (in the child); ``keep`` holds what must stay
#: alive meanwhile (and is closed before the final count).
MAKERS = {
    "tcp_listen": "s = socket.create_server(('127.0.0.1', 0)); keep = []",
    "tcp6_listen": "s = socket.create_server(('::1', 0), family=socket.AF_INET6); keep = []",
    "unix_listen": "s = socket.socket(socket.AF_UNIX); s.bind('\\0cp-h7-%d' % os.getpid()); "
                   "s.listen(); keep = []",
    "tcp_connected": "srv = socket.create_server(('127.0.0.1', 0)); "
                     "c = socket.create_connection(srv.getsockname()); s, _ = srv.accept(); "
                     "keep = [srv, c]",
    "unix_connected": "s, c = socket.socketpair(); keep = [c]",
    "udp4": "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('127.0.0.1', 0)); "
            "keep = []",
    "udp6": "s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('::1', 0)); keep = []",
    "tcp_unconnected": "s = socket.socket(); keep = []",
    "unix_dgram": "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); keep = []",
}

#: kind -> (envelope type, extra fields in order, family, sock type, listening)
EXPECTED = {
    "tcp_listen": ("net.Server", {}, socket.AF_INET, socket.SOCK_STREAM, 1),
    "tcp6_listen": ("net.Server", {}, socket.AF_INET6, socket.SOCK_STREAM, 1),
    "unix_listen": ("net.Server", {}, socket.AF_UNIX, socket.SOCK_STREAM, 1),
    "tcp_connected": ("net.Socket", {}, socket.AF_INET, socket.SOCK_STREAM, 0),
    "unix_connected": ("net.Socket", {}, socket.AF_UNIX, socket.SOCK_STREAM, 0),
    "udp4": ("dgram.Socket", {"dgramType": "udp4"}, socket.AF_INET, socket.SOCK_DGRAM, 0),
    "udp6": ("dgram.Socket", {"dgramType": "udp6"}, socket.AF_INET6, socket.SOCK_DGRAM, 0),
    "tcp_unconnected": ("net.Native", {}, socket.AF_INET, socket.SOCK_STREAM, 0),
    "unix_dgram": ("net.Native", {}, socket.AF_UNIX, socket.SOCK_DGRAM, 0),
}

KIND_PARAMS = [pytest.param(k, marks=needs_ipv6) if "6" in k else k for k in MAKERS]

#: The child makes a socket of kind argv[1], sends it with {"kind": ...}, and after the ACK (the
#: test then sends "check") says whether its copy is still open; "bye" ends it.
SENDER = PRELUDE + """\
kind = sys.argv[1]
keep_open = len(sys.argv) > 2 and sys.argv[2] == "keep"
out("start", nfds())
exec(MAKER)
callbacks = []
r = p.send({"kind": kind}, s, keep_open=keep_open,
           callback=lambda e: (callbacks.append(e), out("callback", e)))
out("sent", r)
def on_message(m):
    if m == "check":
        out("check", s.fileno() >= 0, callbacks)
    elif m == "bye":
        s.close()
        for k in keep:
            k.close()
        out("end", nfds())
        p.disconnect()
p.on("message", on_message)
"""


def sender(kind: str) -> str:
    return SENDER.replace("exec(MAKER)", MAKERS[kind])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KIND_PARAMS)
def test_send_each_socket_kind(peer, kind, mode):
    """The envelope type (and dgramType), one descriptor on the frame's own sendmsg, a socket
    of the same family/type arriving; the sender's copy: closed after the ACK for a connected
    socket, kept for everything else; no descriptor left behind in the child."""
    node_type, extra, family, sock_type, listening = EXPECTED[kind]
    p = peer(sender(kind), mode, [kind])
    raw, message, fds = p.read_frame()
    try:
        assert message == {"cmd": "NODE_HANDLE", "type": node_type, "msg": {"kind": kind}, **extra}
        assert list(message) == ["cmd", "type", "msg", *extra]        # Node's key order
        assert len(fds) == 1
        # the descriptor came on a sendmsg that held exactly this frame
        assert p.reads[-1] == (raw, fds)
        got = socket.socket(fileno=fds.pop())
    finally:
        for fd in fds:
            os.close(fd)
    with got:
        assert (got.family, got.type) == (family, sock_type)
        assert got.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == listening
        assert fcntl.fcntl(got.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    p.wait_event(lambda e: e[0] == "callback")       # the write's callback, before the ACK
    p.ack()
    p.send("check")
    p.wait_event(lambda e: e[0] == "check")
    events = bye(p)
    check = next(e for e in events if e[0] == "check")
    assert check[1] is (node_type != "net.Socket"), "connected sockets close on ACK, no other"
    assert check[2] == [None]                          # the callback ran once, with no error
    assert ["sent", True] in events
    assert_no_child_leak(events)


def test_envelope_exact_bytes_json_and_advanced(peer):
    """node-ipc-protocol.md §6.2: the bytes Node writes, for both framings."""
    code = PRELUDE + """\
s = socket.create_server(('127.0.0.1', 0))
u = socket.socket(socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET, socket.SOCK_DGRAM)
p.send("srv", s)
p.send({"hello": 1}, u)
p.on("message", lambda m: (s.close(), u.close(), p.disconnect()))
"""
    for mode, want_srv in [
            ("json", b'{"cmd":"NODE_HANDLE","type":"net.Server","msg":"srv"}\n'),
            ("advanced", bytes.fromhex("00000033ff0f6f2203") + b"cmd\x22\x0bNODE_HANDLE\x22\x04"
             b"type\x22\x0anet.Server\x22\x03msg\x22\x03srv\x7b\x03")]:
        p = peer(code, mode, ["4"])
        raw, message, fds = p.read_frame()
        for fd in fds:
            os.close(fd)
        assert raw == want_srv and len(fds) == 1
        p.ack()
        raw, message, fds = p.read_frame()
        for fd in fds:
            os.close(fd)
        if mode == "json":
            assert raw == (b'{"cmd":"NODE_HANDLE","type":"dgram.Socket","msg":{"hello":1},'
                           b'"dgramType":"udp4"}\n')
        else:
            assert raw == frame("advanced", message) and list(message)[-1] == "dgramType"
        assert len(fds) == 1
        p.ack()
        p.send("bye")
        p.expect_eof()
        assert p.finish()[0] == 0


@pytest.mark.parametrize("mode", MODES)
def test_parent_sends_fd_on_the_envelope_write_only(tmp_path, mode):
    """The parent side (ChildProcess.send) too: a plain message before the handle goes on its own
    write; the descriptor comes with exactly the envelope frame; a raw child reads it."""
    code = textwrap.dedent("""\
        import array, os, socket, sys
        fd = int(os.environ["NODE_CHANNEL_FD"])
        s = socket.socket(fileno=fd)
        reads = []
        while True:
            fds = array.array("i")
            data, anc, flags, _ = s.recvmsg(65536, socket.CMSG_SPACE(64))
            for level, kind, cdata in anc:
                fds.frombytes(cdata)
            for f in fds:
                os.close(f)
            if not data:
                break
            reads.append((data, len(fds)))
            if len(fds):
                s.sendall(ACK)
        sys.stdout.write(repr(reads))
        """).replace("ACK", repr(frame(mode, {"cmd": "NODE_HANDLE_ACK"})))
    child = child_process.spawn(PY, [script(tmp_path, code)], stdio=["ignore", "pipe", "inherit", "ipc"],
                                serialization=mode)
    out = []
    child.stdout.on("data", out.append)
    srv = socket.create_server(("127.0.0.1", 0))
    try:
        child.send("before")
        spin(0.3)                                   # read alone, not coalesced with the fd
        child.send("srv", srv)
        child.send("after")
        assert run_until(lambda: child.channel._handle_queue is None)    # the ACK came
        child.disconnect()
        assert child.wait(WAIT) == (0, None)
    finally:
        srv.close()
    reads = eval(b"".join(out).decode())
    envelope = frame(mode, {"cmd": "NODE_HANDLE", "type": "net.Server", "msg": "srv"})
    with_fd = [r for r in reads if r[1]]
    assert with_fd == [(envelope, 1)]
    assert b"".join(r[0] for r in reads) == (frame(mode, "before") + envelope + frame(mode, "after"))


@pytest.mark.parametrize("mode", MODES)
def test_non_sockets_are_refused_synchronously(tmp_path, mode):
    """ERR_INVALID_HANDLE_TYPE, raised by send() itself: nothing sent, nothing queued, no
    descriptor made; the channel goes on."""
    child = fork(script(tmp_path, RECEIVER), serialization=mode,
                 stdio=["ignore", "pipe", "inherit", "ipc"])
    out = []
    child.stdout.on("data", out.append)
    r, w = os.pipe()
    try:
        with open(__file__, "rb") as f:
            for bad in (f, f.fileno(), r, w, object(), "sock", 3.5):
                before = fd_count()
                with pytest.raises(NodeTypeError) as info:
                    child.send("never", bad)
                assert info.value.code == "ERR_INVALID_HANDLE_TYPE"
                assert str(info.value).endswith("This handle type cannot be sent")
                assert fd_count() == before
                assert child.channel._handle_queue is None and child.channel._outbox.queued == 0
    finally:
        os.close(r)
        os.close(w)
    child.send("after")
    child.send("bye")
    assert child.wait(WAIT) == (0, None)
    events = [json.loads(x) for x in b"".join(out).decode().splitlines()]
    assert [e for e in events if e[0] == "message"] == [["message", "after", None],
                                                         ["message", "bye", None]]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_closed_socket_goes_as_a_plain_message(peer, mode):
    """SPEC 40 / Node's already-sent case: no envelope, no descriptor, and no ACK wait."""
    p = peer(PRELUDE + """\
s = socket.create_server(('127.0.0.1', 0))
s.close()
out("r", p.send("plain", s), p.send("next"))
p.disconnect()
""", mode)
    assert p.expect("plain") is not None
    p.expect("next")
    p.expect_eof()
    rc, events, err = p.finish()
    assert rc == 0, err
    assert ["r", True, True] in events


# =================================================================================================
# the sender's queue: everything waits for the ACK (SPEC 35, 38; protocol §6.4)
# =================================================================================================

@pytest.mark.parametrize("mode", MODES)
def test_later_sends_wait_for_the_ack_in_order(peer, mode):
    p = peer(PRELUDE + """\
out("start", nfds())
a = socket.create_server(('127.0.0.1', 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r = [p.send("h1", a), p.send("q1"), p.send("h2", b), p.send("q2"), p.send("q3")]
out("returns", r)
def on_message(m):
    if m == "bye":
        a.close(); b.close()
        out("end", nfds())
        p.disconnect()
p.on("message", on_message)
""", mode)
    raw, m, fds = p.read_frame()
    for fd in fds:
        os.close(fd)
    assert (m["msg"], len(fds)) == ("h1", 1)
    p.expect_nothing(0.4)                           # q1 and the rest wait for the ACK
    p.ack()
    p.expect("q1")
    raw, m, fds = p.read_frame()
    for fd in fds:
        os.close(fd)
    assert (m["type"], m["msg"], len(fds)) == ("dgram.Socket", "h2", 1)
    p.expect_nothing(0.4)                           # the second handle re-armed the queue
    p.ack()
    p.expect("q2")
    p.expect("q3")
    events = bye(p)
    # Node: the first queued send says true, later ones false (send-returns-boolean)
    assert ["returns", [True, True, False, False, False]] in events
    assert_no_child_leak(events)


#: Sends a connected socket (argv[1] == "keep": keep_open) then "after"; reports warnings.
NACKED = PRELUDE + """\
warnings.simplefilter("always")
def show(message, category, *rest):
    out("warning", category.__name__, str(message))
warnings.showwarning = show
out("start", nfds())
kind = sys.argv[1]
if kind == "server":
    s = socket.create_server(('127.0.0.1', 0))
else:
    s, c = socket.socketpair()
calls = []
p.send("sock", s, callback=lambda e: calls.append(e))
p.send("after")
def on_message(m):
    if m == "check":
        out("check", s.fileno() >= 0, len(calls))
    elif m == "bye":
        s.close()
        if kind != "server":
            c.close()
        out("end", nfds())
        p.disconnect()
p.on("message", on_message)
"""


@pytest.mark.parametrize("mode", MODES)
def test_nack_retransmits_a_socket_three_times_then_gives_up(peer, mode):
    p = peer(NACKED, mode, ["socket"])
    for attempt in range(4):
        raw, m, fds = p.read_frame()
        assert (m, len(fds)) == ({"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": "sock"}, 1), attempt
        os.close(fds[0])
        p.expect_nothing(0.2)                       # "after" is still held
        p.nack()
    p.expect("after")                               # the 4th NACK gave up and flushed
    p.send("check")
    p.wait_event(lambda e: e[0] == "check")
    events = bye(p)
    assert ["check", False, 4] in events            # closed; the callback ran per transmission
    assert ["warning", "SentHandleNotReceivedWarning",
            "Handle did not reach the receiving process correctly"] in events
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_nack_then_ack_closes_the_socket_once(peer, mode):
    p = peer(NACKED, mode, ["socket"])
    raw, m, fds = p.read_frame()
    os.close(fds[0])
    p.nack()
    raw, m, fds = p.read_frame()
    assert len(fds) == 1 and m["type"] == "net.Socket"
    os.close(fds[0])
    p.ack()
    p.expect("after")
    p.send("check")
    p.wait_event(lambda e: e[0] == "check")
    events = bye(p)
    assert ["check", False, 2] in events
    assert not [e for e in events if e[0] == "warning"]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_nack_for_a_server_only_flushes_the_queue(peer, mode):
    p = peer(NACKED, mode, ["server"])
    raw, m, fds = p.read_frame()
    assert m["type"] == "net.Server" and len(fds) == 1
    os.close(fds[0])
    p.nack()
    p.expect("after")                               # no retransmission
    p.send("check")
    p.wait_event(lambda e: e[0] == "check")
    events = bye(p)
    assert ["check", True, 1] in events             # the server stays open in the sender
    assert not [e for e in events if e[0] == "warning"]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_disconnect_waits_for_the_pending_ack(peer, mode):
    """SPEC 36: a disconnect() requested while the ACK is pending happens after it, after the
    queued messages."""
    p = peer(PRELUDE + """\
s = socket.create_server(('127.0.0.1', 0))
p.send("srv", s)
p.send("queued")
p.disconnect()
out("connected", p.connected)
p.on("disconnect", lambda: (out("disconnect"), s.close()))
""", mode)
    raw, m, fds = p.read_frame()
    for fd in fds:
        os.close(fd)
    assert m["msg"] == "srv" and len(fds) == 1
    p.expect_nothing(0.4)                           # neither "queued" nor EOF yet
    p.ack()
    p.expect("queued")
    p.expect_eof()
    rc, events, err = p.finish()
    assert rc == 0, err
    assert events == [["connected", False], ["disconnect"]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("keep", [False, True])
def test_connected_socket_in_the_sender_after_ack(tmp_path, mode, keep):
    """Without keep_open the sender's socket is closed once acknowledged; with it, both copies
    work (Node's send-keep-open: the client reads 'childparent')."""
    child = fork(script(tmp_path, PRELUDE + """\
def on_message(m, h=None):
    if h is not None:
        h.setblocking(True)
        h.sendall(b"child")
        h.close()
        p.send("written")
    elif m == "bye":
        p.disconnect()
p.on("message", on_message)
"""), serialization=mode)
    srv = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(srv.getsockname())
    accepted, _ = srv.accept()
    srv.close()
    got = []
    child.on("message", got.append)
    try:
        child.send("take", accepted, keep_open=keep)
        assert run_until(lambda: got == ["written"])
        assert (accepted.fileno() >= 0) is keep
        if keep:
            accepted.sendall(b"parent")
            accepted.close()
        client.settimeout(WAIT)
        data = b""
        while True:
            chunk = client.recv(100)
            if not chunk:
                break
            data += chunk
        assert data == b"childparent" if keep else data == b"child"
    finally:
        accepted.close()
        client.close()
        child.send("bye")
        assert child.wait(WAIT) == (0, None)


@pytest.mark.parametrize("mode", MODES)
def test_server_shared_between_parent_and_child(tmp_path, mode):
    """A listening socket stays open in the sender: both processes accept on it."""
    child = fork(script(tmp_path, PRELUDE + """\
srv = None
def on_message(m, h=None):
    global srv
    if h is not None:
        srv = h
        srv.setblocking(True)
        p.send("ready")
    elif m == "accept":
        conn, _ = srv.accept()
        conn.sendall(b"from child")
        conn.close()
        p.send("served")
    elif m == "bye":
        srv.close()
        p.disconnect()
p.on("message", on_message)
"""), serialization=mode)
    srv = socket.create_server(("127.0.0.1", 0))
    got = []
    child.on("message", got.append)
    try:
        child.send("server", srv)
        assert run_until(lambda: got == ["ready"])
        assert srv.fileno() >= 0
        child.send("accept")
        with socket.create_connection(srv.getsockname(), timeout=WAIT) as c1:
            assert run_until(lambda: got == ["ready", "served"])    # (this loop sends "accept")
            assert c1.recv(100) == b"from child"
        with socket.create_connection(srv.getsockname(), timeout=WAIT) as c2:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(b"from parent")
            assert c2.recv(100) == b"from parent"
    finally:
        srv.close()
        child.send("bye")
        assert child.wait(WAIT) == (0, None)


def test_a_handle_in_every_mode_both_ends_ours_no_leaks(tmp_path):
    """Each kind from parent to a forked child and back again (the child returns it)."""
    code = PRELUDE + """\
kept = []
def on_message(m, h=None):
    if m == "bye":
        for k in kept:
            k.close()
        p.disconnect()
        return
    p.send([m, describe(h)], h)
    kept.append(h)       # closing it now would make a queued send go without it (Node's rule)
p.on("message", on_message)
"""
    for mode in MODES:
        child = fork(script(tmp_path, code), serialization=mode)
        got = []
        child.on("message", lambda m, h=None, got=got: got.append((m, h)))
        socks = [socket.create_server(("127.0.0.1", 0)), socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
                 socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)]
        pair = socket.socketpair()
        socks.append(pair[0])
        for i, s in enumerate(socks):
            child.send(i, s)
        assert run_until(lambda got=got: len(got) == 4)
        for (m, h), s in zip(sorted(got, key=lambda x: x[0][0]), socks):
            assert m[1]["family"] == s.family and m[1]["type"] == s.type and m[1]["cloexec"]
            assert (h.family, h.type) == (s.family, s.type)
            h.close()
        for s in socks + [pair[1]]:
            s.close()
        child.send("bye")
        assert child.wait(WAIT) == (0, None)


# =================================================================================================
# receiving (the test sends crafted SCM_RIGHTS messages to a child running this library)
# =================================================================================================

def envelope(message, kind="net.Socket", **extra):
    return {"cmd": "NODE_HANDLE", "type": kind, "msg": message, **extra}


def sock_pair():
    """(ours, theirs): a connected AF_UNIX pair; ``theirs`` is what we send."""
    return socket.socketpair()


@pytest.mark.parametrize("mode", MODES)
def test_receive_rebuilds_each_kind(peer, mode):
    """Each kind arrives as a socket.socket of its family and type, close-on-exec, usable."""
    p = peer(PRELUDE + """\
out("start", nfds())
def on_message(m, h=None):
    if m == "bye":
        out("end", nfds())
        p.disconnect()
        return
    out("message", m, describe(h), h.gettimeout())
    h.setblocking(True)
    if m == "tcp_listen":
        c, _ = h.accept(); c.sendall(b"accepted"); c.close()
    elif m in ("tcp_connected", "unix_connected"):
        h.sendall(b"written")
    elif m == "udp4":
        data, addr = h.recvfrom(100); h.sendto(data.upper(), addr)
    h.close()
p.on("message", on_message)
""", mode)
    srv = socket.create_server(("127.0.0.1", 0))
    p.send(envelope("tcp_listen", "net.Server"), [srv])
    # (the child's listener blocks in accept(): connect first, then wait for the ACK)
    with socket.create_connection(srv.getsockname(), timeout=WAIT) as c:
        p.expect({"cmd": "NODE_HANDLE_ACK"})
        assert c.recv(100) == b"accepted"
    ours, theirs = sock_pair()
    p.send(envelope("unix_connected"), [theirs])
    theirs.close()
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    ours.settimeout(WAIT)
    assert ours.recv(100) == b"written"
    ours.close()
    client = socket.create_connection(srv.getsockname())
    accepted, _ = srv.accept()
    p.send(envelope("tcp_connected"), [accepted])
    accepted.close()
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    client.settimeout(WAIT)
    assert client.recv(100) == b"written"
    client.close()
    srv.close()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    p.send(envelope("udp4", "dgram.Socket", dgramType="udp4"), [udp])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u2:
        u2.settimeout(WAIT)
        u2.sendto(b"dgram", udp.getsockname())
        p.expect({"cmd": "NODE_HANDLE_ACK"})
        assert u2.recvfrom(100)[0] == b"DGRAM"
    udp.close()
    events = bye(p)
    got = {e[1]: e[2] for e in events if e[0] == "message"}
    assert got["tcp_listen"] == {"family": socket.AF_INET, "type": socket.SOCK_STREAM,
                                 "listening": 1, "cloexec": True}
    assert got["unix_connected"] == {"family": socket.AF_UNIX, "type": socket.SOCK_STREAM,
                                     "listening": 0, "cloexec": True}
    assert got["tcp_connected"]["family"] == socket.AF_INET and not got["tcp_connected"]["listening"]
    assert got["udp4"] == {"family": socket.AF_INET, "type": socket.SOCK_DGRAM,
                           "listening": 0, "cloexec": True}
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_handle_binds_to_the_envelope_inside_one_read(peer, mode):
    """Node's recv-handle: 'one', 'two'+fd and 'three' in one read: the handle goes to 'two'."""
    p = peer(RECEIVER, mode)
    ours, theirs = sock_pair()
    data = frame(mode, "one") + frame(mode, envelope("two")) + frame(mode, "three")
    p.send_raw(data, [theirs])
    theirs.close()
    ours.close()
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    events = bye(p)
    msgs = [(e[1], e[2] is not None) for e in events if e[0] == "message"]
    assert msgs == [("one", False), ("two", True), ("three", False), ("bye", False)]
    assert not [e for e in events if e[0] == "error"]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_earlier_fdless_data_coalesced_with_the_fd_segment(peer, mode):
    """'one' (plain write), the envelope (+fd), 'three' (plain) before the child reads: Linux may
    return 'one' together with the fd-carrying segment; the handle still goes to 'two'."""
    p = peer(RECEIVER.replace('out("start", nfds())', 'out("start", nfds()); time.sleep(0.5)'), mode)
    ours, theirs = sock_pair()
    p.send_raw(frame(mode, "one"))
    p.send_raw(frame(mode, envelope("two")), [theirs])
    p.send_raw(frame(mode, "three"))
    theirs.close()
    ours.close()
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    events = bye(p)
    msgs = [(e[1], e[2] is not None) for e in events if e[0] == "message"]
    assert msgs == [("one", False), ("two", True), ("three", False), ("bye", False)]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_envelope_split_across_reads_fd_on_first_part(peer, mode):
    p = peer(RECEIVER, mode)
    ours, theirs = sock_pair()
    data = frame(mode, envelope({"pad": "x" * 300}))
    for cut in (1, 10, len(data) // 2, len(data) - 1):
        p.send_raw(data[:cut], [theirs])
        time.sleep(0.1)                             # the child reads the first part alone
        p.send_raw(data[cut:])
        p.expect({"cmd": "NODE_HANDLE_ACK"})
    theirs.close()
    ours.close()
    events = bye(p)
    msgs = [(e[1], e[2] is not None) for e in events if e[0] == "message"]
    assert msgs == [({"pad": "x" * 300}, True)] * 4 + [("bye", False)]
    assert not [e for e in events if e[0] == "error"]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_nack_when_the_envelope_has_no_descriptor(peer, mode):
    p = peer(RECEIVER, mode)
    p.send(envelope("nofd"))
    raw = p.expect({"cmd": "NODE_HANDLE_NACK"})
    if mode == "json":
        assert raw == b'{"cmd":"NODE_HANDLE_NACK"}\n'
    p.send("after")
    events = bye(p)
    assert [e[1] for e in events if e[0] == "message"] == ["after", "bye"]   # no 'nofd'
    assert not [e for e in events if e[0] == "error"]


@pytest.mark.parametrize("mode", MODES)
def test_ack_wire_bytes(peer, mode):
    p = peer(RECEIVER, mode)
    ours, theirs = sock_pair()
    p.send(envelope("x"), [theirs])
    theirs.close()
    ours.close()
    raw = p.expect({"cmd": "NODE_HANDLE_ACK"})
    if mode == "json":
        assert raw == b'{"cmd":"NODE_HANDLE_ACK"}\n'
    elif mode == "advanced":
        assert raw == bytes.fromhex("0000001bff0f6f2203636d64220f") + b"NODE_HANDLE_ACK\x7b\x01"
    assert_no_child_leak(bye(p))


@pytest.mark.parametrize("mode", MODES)
def test_ack_is_written_before_the_listener_runs(peer, mode):
    """The listener blocks reading the received socket; the test writes to it only once it has
    the ACK. A receiver that acknowledges at once serves it; one that does not waits forever."""
    p = peer(PRELUDE + """\
def on_message(m, h=None):
    if h is not None:
        h.settimeout(3)
        try:
            out("got", h.recv(10).decode())
        except OSError as e:
            out("timeout", repr(e))
        h.close()
    if m == "bye":
        p.disconnect()
p.on("message", on_message)
""", mode)
    ours, theirs = sock_pair()
    p.send(envelope("s"), [theirs])
    theirs.close()
    try:
        p.expect({"cmd": "NODE_HANDLE_ACK"}, timeout=2)
        ours.sendall(b"ping")
        events = p.wait_event(lambda e: e[0] in ("got", "timeout"))
        assert ["got", "ping"] in events
    finally:
        ours.close()


@pytest.mark.parametrize("mode", MODES)
def test_double_wrapped_retransmission_is_unwrapped_and_acked_twice(peer, mode):
    """Node's resend: net.Native wrapping the net.Socket envelope (protocol §6.4)."""
    p = peer(RECEIVER, mode)
    ours, theirs = sock_pair()
    inner = {"cmd": "NODE_HANDLE", "type": "net.Socket", "msg": {"which": "sock"},
             "key": "4:127.0.0.1:0"}
    p.send({"cmd": "NODE_HANDLE", "type": "net.Native", "msg": inner}, [theirs])
    theirs.close()
    ours.close()
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    events = bye(p)
    msgs = [e for e in events if e[0] == "message"]
    assert msgs[0][1] == {"which": "sock"} and msgs[0][2]["family"] == socket.AF_UNIX
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_truncated_control_data_is_reported_and_nothing_leaks(peer, mode):
    """200 descriptors in one sendmsg overflow the receiver's control buffer (MSG_CTRUNC)."""
    p = peer(RECEIVER, mode)
    pairs = [socket.socketpair() for _ in range(100)]
    try:
        p.send(envelope("many"), [s for pair in pairs for s in pair])
    finally:
        for a, b in pairs:
            a.close()
            b.close()
    p.expect({"cmd": "NODE_HANDLE_NACK"})          # no descriptor could be bound
    p.wait_event(lambda e: e[0] == "error")
    p.send("after")
    events = bye(p)
    assert [e[1] for e in events if e[0] == "error"] == ["ERR_IPC_HANDLE_TRUNCATED"]
    assert [e[1] for e in events if e[0] == "message"] == ["after", "bye"]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_extra_descriptors_are_closed_and_reported(peer, mode):
    p = peer(RECEIVER, mode)
    ours, theirs = sock_pair()
    ours2, theirs2 = sock_pair()
    p.send(envelope("two fds"), [theirs, theirs2])
    for s in (ours, theirs, theirs2):
        s.close()
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    # the extra descriptor was closed in the child: its peer sees EOF
    ours2.settimeout(WAIT)
    assert ours2.recv(10) == b""
    ours2.close()
    events = bye(p)
    assert [e[1] for e in events if e[0] == "error"] == ["ERR_IPC_EXTRA_HANDLES"]
    msgs = [(e[1], e[2] is not None) for e in events if e[0] == "message"]
    assert msgs == [("two fds", True), ("bye", False)]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_descriptor_without_an_envelope(peer, mode):
    p = peer(RECEIVER, mode)
    ours, theirs = sock_pair()
    p.send("plain", [theirs])
    theirs.close()
    ours.settimeout(WAIT)
    assert ours.recv(10) == b""                     # closed in the child at once
    ours.close()
    p.expect_nothing(0.2)                           # neither ACK nor NACK
    p.send("after")
    events = bye(p)
    assert [e[1] for e in events if e[0] == "error"] == ["ERR_IPC_UNEXPECTED_HANDLE"]
    msgs = [(e[1], e[2] is not None) for e in events if e[0] == "message"]
    assert msgs == [("plain", False), ("after", False), ("bye", False)]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_non_socket_descriptor_with_an_envelope(peer, mode):
    """A pipe with a NODE_HANDLE: acknowledged (Node acks before converting), closed, reported
    as ERR_INVALID_HANDLE_TYPE; the channel goes on."""
    p = peer(RECEIVER, mode)
    r, w = os.pipe()
    p.send(envelope("pipe"), [r])
    os.close(r)
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    p.send("after")
    p.wait_event(lambda e: e[0] == "message")
    # the child's copy of the read end is gone: writing now fails with EPIPE
    with pytest.raises(BrokenPipeError):
        os.write(w, b"x")
    os.close(w)
    events = bye(p)
    assert [e[1] for e in events if e[0] == "error"] == ["ERR_INVALID_HANDLE_TYPE"]
    assert [e[1] for e in events if e[0] == "message"] == ["after", "bye"]
    assert_no_child_leak(events)


@pytest.mark.parametrize("mode", MODES)
def test_handle_queued_until_a_listener_exists(peer, mode):
    """No 'message' listener yet: the message and its socket wait together."""
    p = peer(PRELUDE + """\
p.ref()                  # only an internalMessage listener until the 'message' one comes
out("start", nfds())
def later():
    def on_message(m, h=None):
        out("message", m, None if h is None else describe(h))
        if h is not None:
            h.close()
        if m == "bye":
            out("end", nfds()); p.disconnect()
    p.on("message", on_message)
p.once("internalMessage", lambda m: later())
""", mode)
    ours, theirs = sock_pair()
    p.send(envelope("early"), [theirs])
    theirs.close()
    ours.close()
    p.expect({"cmd": "NODE_HANDLE_ACK"})
    p.send({"cmd": "NODE_LISTEN"})
    events = bye(p)
    msgs = [(e[1], e[2] is not None) for e in events if e[0] == "message"]
    assert msgs == [("early", True), ("bye", False)]
    assert_no_child_leak(events)


# =================================================================================================
# hypothesis: random read boundaries never move the handle to another message
# =================================================================================================

HYPO_CHILD = PRELUDE + """\
out("start", nfds())
def on_message(m, h=None):
    if h is not None:
        h.close()
    out("message", m, h is not None)
    if m == "bye":
        out("end", nfds())
        p.disconnect()
p.on("message", on_message)
"""


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(mode=st.sampled_from(MODES),
       before=st.lists(st.text(alphabet="abc xyz\u00e9\n\"", max_size=20), max_size=4),
       after=st.lists(st.integers(), max_size=4),
       cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=5),
       fd_cut=st.integers(min_value=0, max_value=10_000))
def test_any_split_binds_the_handle_to_its_envelope(tmp_path_factory, mode, before, after, cuts,
                                                     fd_cut):
    """The stream [before..., envelope, after...] written in random pieces, the descriptor on
    the piece that starts somewhere in the envelope frame (as a sender does: on its first byte or
    -- after coalescing -- with earlier bytes)."""
    tmp = tmp_path_factory.mktemp("hypo")
    p = HandlePeer(script(tmp, HYPO_CHILD), mode)
    try:
        head = b"".join(frame(mode, m) for m in before)
        env = frame(mode, envelope("H"))
        tail = b"".join(frame(mode, m) for m in after)
        stream = head + env + tail
        # the fd rides on a piece starting at or before the envelope and ending inside it
        fd_start = fd_cut % (len(head) + 1)
        fd_end = len(head) + 1 + fd_cut % len(env)
        points = sorted({c % len(stream) for c in cuts if not fd_start < c % len(stream) <= fd_end}
                        | {fd_start, fd_end, len(stream)} - {0})
        ours, theirs = sock_pair()
        start = 0
        for point in points:
            piece = stream[start:point]
            p.send_raw(piece, [theirs] if start == fd_start else [])
            start = point
            time.sleep(0.01)
        theirs.close()
        ours.close()
        p.expect({"cmd": "NODE_HANDLE_ACK"})
        p.send("bye")
        p.expect_eof()
        rc, events, err = p.finish()
        assert rc == 0, err
        msgs = [(e[1], e[2]) for e in events if e[0] == "message"]
        want = [(m, False) for m in before] + [("H", True)] + [(m, False) for m in after]
        assert msgs == want + [("bye", False)]
        assert not [e for e in events if e[0] == "error"], events
        assert_no_child_leak(events)
    finally:
        p.close()
