"""The IPC send path's mechanism: ``_wire.Outbox`` (frames packed end to end, written as the
socket takes them, callbacks handed back once their frame is fully written) and the loop's short
look for the next message after an IPC read (``CHILD_PROCESS_SPIN_US``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

from child_process import _wire
from child_process._loop_core import SPIN_US, Loop

PY = sys.executable


def identity(frame):
    return frame


def drain(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frames_are_written_end_to_end_in_order(pair):
    a, b = pair
    box = _wire.Outbox(identity)
    frames = [b"%d\n" % i for i in range(1000)]
    for frame in frames:
        box.push(frame)
    assert box.queued == sum(map(len, frames))
    assert box.flush(a.fileno()) is None
    assert box.queued == 0
    assert drain(b) == b"".join(frames)


def test_callbacks_come_back_only_once_their_frame_is_fully_written(pair):
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    box = _wire.Outbox(identity)
    big = b"x" * (1 << 20)
    box.push(b"small", "cb-small")
    box.push(big, "cb-big")
    done = box.flush(a.fileno())          # the kernel takes only part of the big frame
    assert done == ["cb-small"]
    assert 0 < box.queued < len(big)
    received = drain(b)
    while box.queued:
        done = box.flush(a.fileno())
        received += drain(b)
        if box.queued:
            assert done is None
    assert done == ["cb-big"]
    assert received == b"small" + big


def test_push_message_falls_back_on_type_error():
    calls = []

    def fast(message):
        if not isinstance(message, int):
            raise TypeError("fast encoder refuses")
        return b"F%d" % message

    def slow(message):
        calls.append(message)
        return b"S" + repr(message).encode()

    box = _wire.Outbox(fast, slow)
    box.push_message(1)
    box.push_message("x")
    assert calls == ["x"]
    assert box.queued == len(b"F1") + len(b"S'x'")
    assert box.clear() == []


def test_without_fallback_the_type_error_propagates_and_nothing_is_queued():
    def fast(message):
        raise TypeError("no")

    box = _wire.Outbox(fast)
    with pytest.raises(TypeError):
        box.push_message(object(), "cb")
    assert box.queued == 0
    assert box.clear() == []


def test_clear_returns_the_callbacks_of_unwritten_frames(pair):
    a, b = pair
    box = _wire.Outbox(identity)
    box.push(b"one", "cb1")
    box.flush(a.fileno())
    box.push(b"two", "cb2")
    box.push(b"three")
    box.push(b"four", "cb4")
    assert box.clear() == ["cb2", "cb4"]
    assert box.queued == 0
    box.push(b"five", "cb5")                  # usable again, positions still consistent
    assert box.flush(a.fileno()) == ["cb5"]
    assert drain(b) == b"onefive"


def test_a_write_error_is_an_oserror_and_the_frames_stay_queued():
    a, b = socket.socketpair()
    b.close()
    box = _wire.Outbox(identity)
    box.push(b"lost", "cb")
    try:
        with pytest.raises(OSError):
            box.flush(a.fileno())
        assert box.queued == 4
        assert box.clear() == ["cb"]
    finally:
        a.close()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=70000), st.booleans()), max_size=30),
       st.integers(min_value=1, max_value=20))
def test_any_sequence_of_pushes_and_partial_flushes_delivers_every_byte(frames, flush_every):
    a, b = socket.socketpair()
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
        box = _wire.Outbox(identity)
        received, done = [], []
        for index, (frame, with_callback) in enumerate(frames):
            box.push(frame, index if with_callback else None)
            if index % flush_every == 0:
                done += box.flush(a.fileno()) or []
                received.append(drain(b))
        while box.queued:
            done += box.flush(a.fileno()) or []
            received.append(drain(b))
        done += box.flush(a.fileno()) or []
        received.append(drain(b))
        assert b"".join(received) == b"".join(f for f, _ in frames)
        assert done == [i for i, (_, cb) in enumerate(frames) if cb]
    finally:
        a.close()
        b.close()


# ----------------------------------------------------------------------------------------------
# the loop's look for the next message
# ----------------------------------------------------------------------------------------------

def test_spin_defaults_to_fifty_microseconds_and_is_per_loop():
    assert SPIN_US == int(os.environ.get("CHILD_PROCESS_SPIN_US", "50") or 50)
    loop = Loop()
    try:
        assert loop.spin_ns == SPIN_US * 1000
        loop.spin_ns = 0
        assert loop.spin_ns == 0
    finally:
        loop.close()


@pytest.mark.parametrize("value, expected", [("0", 0), ("200", 200), ("junk", 50), ("-5", 0)])
def test_spin_setting_comes_from_the_environment(value, expected):
    out = subprocess.run(
        [PY, "-c", "from child_process._loop_core import SPIN_US, Loop; "
                   "print(SPIN_US, Loop().spin_ns)"],
        env=dict(os.environ, CHILD_PROCESS_SPIN_US=value), capture_output=True, text=True,
        timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(expected), str(expected * 1000)]


def test_a_loop_idle_after_messages_sleeps_instead_of_spinning(tmp_path):
    """After a burst of messages the child waits 0.5 s for the next: that wait must cost
    (almost) no CPU: the look for more is bounded, then the loop blocks."""
    child_code = textwrap.dedent("""
        import resource, child_process
        p = child_process.parent
        def on_message(m):
            if m == "report":
                r = resource.getrusage(resource.RUSAGE_SELF)
                p.send(r.ru_utime + r.ru_stime)
                p.disconnect()
            else:
                p.send(m)
        p.on("message", on_message)
    """)
    script = tmp_path / "child.py"
    script.write_text(child_code)
    probe = textwrap.dedent(f"""
        import time, child_process, child_process._loop
        c = child_process.fork({str(script)!r})
        got = []
        def on_message(m):
            got.append(m)
            if len(got) == 200:
                c.cpu_before = None
                child_process._loop.get_loop().call_soon(lambda: None)
                t = child_process._loop.Timer(child_process._loop.get_loop(), lambda: c.send("before"))
                t.start(0.01)
            elif len(got) == 201:
                t = child_process._loop.Timer(child_process._loop.get_loop(), lambda: c.send("report"))
                t.start(0.5)
            elif len(got) < 200:
                c.send(len(got))
            else:
                print("CPU", m)
        c.on("message", on_message)
        c.send(0)
        child_process.run()
    """)
    out = subprocess.run([PY, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cpu = float(out.stdout.split("CPU", 1)[1])
    # start-up and 200 round trips cost some tens of ms; spinning through the 0.5 s would
    # cost about 0.5 s more
    assert cpu < 0.35, cpu


def test_an_outbox_freed_by_the_cycle_collector_still_closes_its_queued_descriptors():
    """A queued descriptor whose callback refers back to its Outbox makes a reference cycle.
    The cycle collector frees it: the descriptor must be closed, without an exception ignored
    in __dealloc__ (the collector must not empty the list of descriptors first)."""
    import gc

    a, b = socket.socketpair()
    try:
        fd = os.dup(a.fileno())
        box = _wire.Outbox(identity)
        box.push(b"frame", box.clear, fd)      # a built-in method: no tp_clear to break it
        assert box.descriptors == 1
        unraisable = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = unraisable.append
        try:
            del box
            gc.collect()
        finally:
            sys.unraisablehook = old_hook
        assert unraisable == []
        with pytest.raises(OSError):
            os.fstat(fd)
    finally:
        a.close()
        b.close()
