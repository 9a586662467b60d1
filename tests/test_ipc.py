"""The IPC channel, Python <-> Python: SPEC §4 (fork), §5, §7, Appendix 28-37, and
node-ipc-protocol.md §1, §2, §4, §7, §8, §9.

Three kinds of peers:

- ``fork()`` of small child scripts written into ``tmp_path`` (both ends are this library);
- *raw parents*: a Python child started by ``subprocess`` on a socket pair this test holds, with
  ``NODE_CHANNEL_FD`` set by hand, so the test reads and writes the child's channel byte by byte
  (``RawParent``); the child writes what it sees as JSON lines on its stdout;
- *raw children*: ``spawn(..., stdio=[..., 'ipc'])`` of a plain Python script that never imports
  ``child_process`` and uses the descriptor named by ``NODE_CHANNEL_FD`` with ``os.read`` and
  ``os.write``.

Every test waits for everything it starts: conftest's autouse fixture fails a test that leaves a
descriptor, a child process or a referenced loop handle behind. Waits are bounded (``WAIT``).

Tests marked ``xfail(strict=True, reason="BUG: ...")`` document library bugs (SPEC, Node or the
issue says otherwise); they must start passing -- and lose the marker -- when the bug is fixed.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import pickle
import pickletools
import struct
import subprocess
import textwrap
import time
import weakref

import pytest

import child_process
from child_process import NodeTypeError, NodeValueError, fork, spawn, spawn_sync
from child_process._loop import Timer, get_loop
from ipc_peers import (PRELUDE, PY, WAIT, events_of, record, run_until, script,
                       spin)

MIB = 1024 * 1024

#: What the Python child writes for these messages (node-ipc-protocol.md §2 observed the same
#: bytes from Node for the same values, minus Node-only types).
MESSAGES = [{"a": 1}, 'str\n\u00e9\u2028"q"', 42, True, None, [1, "x"], {"cmd": "NODE_X", "z": 1}]
MESSAGES_WIRE = (b'{"a":1}\n"str\\n\xc3\xa9\xe2\x80\xa8\\"q\\""\n42\ntrue\nnull\n[1,"x"]\n'
                 b'{"cmd":"NODE_X","z":1}\n')

#: Records every channel event of the child on stdout.
RECORDER = PRELUDE + """\
p.on("message", lambda m: out("message", m))
p.on("internalMessage", lambda m: out("internal", m))
p.on("error", lambda e: out("error", getattr(e, "code", None), p.connected))
p.on("disconnect", lambda: out("disconnect"))
"""

#: Echoes every message back; "__bye__" makes it disconnect.
ECHO = PRELUDE + """\
def on_message(m):
    if isinstance(m, str) and m == "__bye__":
        p.disconnect()
    else:
        p.send(m)
p.on("message", on_message)
"""

#: A plain Python child (no child_process import) for the parent side: it uses fd
#: NODE_CHANNEL_FD directly. ``RAW_CHILD_READ_ALL``: reads until EOF and prints the bytes (repr)
#: and both variables.
RAW_CHILD_READ_ALL = """\
import os, sys
fd = int(os.environ["NODE_CHANNEL_FD"])
data = b""
while True:
    chunk = os.read(fd, 65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(repr([data, os.environ.get("NODE_CHANNEL_FD"),
                       os.environ.get("NODE_CHANNEL_SERIALIZATION_MODE")]))
"""


def raw_child(tmp_path, code: str, reap, serialization: str = "json", stdio=None):
    stdio = stdio or ["ignore", "pipe", "inherit", "ipc"]
    child = spawn(PY, [script(tmp_path, code)], stdio=stdio, serialization=serialization)
    reap(child)
    return child


def stdout_of(child) -> list:
    chunks = []
    child.stdout.on("data", chunks.append)
    return chunks


# =================================================================================================
# json wire format, byte by byte
# =================================================================================================

@pytest.mark.parametrize("serialization", ["json", "pickle"])
def test_spawn_ipc_sets_channel_variables(tmp_path, reap, serialization):
    """The child gets NODE_CHANNEL_FD=<index> and NODE_CHANNEL_SERIALIZATION_MODE (always)."""
    child = raw_child(tmp_path, RAW_CHILD_READ_ALL, reap, serialization=serialization)
    out = stdout_of(child)
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    data, fd, mode = eval(b"".join(out).decode())
    assert (data, fd, mode) == (b"", "3", serialization)


def test_parent_writes_compact_json_lines(tmp_path, reap):
    child = raw_child(tmp_path, RAW_CHILD_READ_ALL, reap)
    out = stdout_of(child)
    for message in MESSAGES:
        assert child.send(message) is True
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    data, fd, mode = eval(b"".join(out).decode())
    assert data == MESSAGES_WIRE
    assert (fd, mode) == ("3", "json")


def test_parent_json_encodes_python_types_as_json_stringify(tmp_path, reap):
    """docs/api.md: bytes -> Buffer's toJSON, datetime -> ISO string, tuple -> list, NaN -> null;
    a lone surrogate is escaped (JSON.stringify does the same), never an invalid UTF-8 line."""
    import datetime
    child = raw_child(tmp_path, RAW_CHILD_READ_ALL, reap)
    out = stdout_of(child)
    child.send(b"ab")
    child.send(datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc))
    child.send((1, 2))
    child.send({"n": float("nan"), "i": float("inf")})
    child.send("\ud800x")
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    data = eval(b"".join(out).decode())[0]
    assert data == (b'{"type":"Buffer","data":[97,98]}\n"1970-01-01T00:00:00.000Z"\n[1,2]\n'
                    b'{"n":null,"i":null}\n"\\ud800x"\n')


def test_child_writes_compact_json_lines(tmp_path, raw_parent):
    path = script(tmp_path, PRELUDE + f"""
for m in {MESSAGES!r}:
    assert p.send(m) is True
p.disconnect()
""")
    peer = raw_parent(path)
    data = peer.read_until_eof()
    rc, events, err = peer.finish()
    assert data == MESSAGES_WIRE
    assert rc == 0, err


def test_child_decodes_utf8_split_across_writes(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER))
    peer.send(b'{"x":"\xc3')                          # é split after its first byte
    time.sleep(0.15)
    peer.send(b'\xa9"}\n"\xf0\x9f')                     # 😀 split in the middle
    time.sleep(0.15)
    peer.send(b'\x98')
    time.sleep(0.15)
    peer.send(b'\x80\xe2\x80\xa8"\n{"last":tr')         # then U+2028 raw, then a split token
    time.sleep(0.15)
    peer.send(b'ue}\n')
    peer.wait_event(lambda e: e == ["message", {"last": True}])
    rc, events, err = peer.finish()
    assert events == [["message", {"x": "\u00e9"}], ["message", "\U0001F600\u2028"],
                      ["message", {"last": True}], ["disconnect"]]
    assert rc == 0, err


def test_parent_decodes_utf8_split_across_writes(tmp_path, reap):
    child = raw_child(tmp_path, """\
        import os, time
        fd = int(os.environ["NODE_CHANNEL_FD"])
        for part in [b'{"x":"\\xc3', b'\\xa9"}\\n"\\xf0\\x9f', b'\\x98', b'\\x80\\xe2\\x80\\xa8"\\n']:
            os.write(fd, part)
            time.sleep(0.15)
        """, reap)
    got = []
    child.on("message", got.append)
    assert child.wait(WAIT) == (0, None)
    assert got == [{"x": "\u00e9"}, "\U0001F600\u2028"]


def test_child_decodes_a_large_message_in_many_reads(tmp_path, raw_parent):
    """A 3 MB line written in 1000-byte pieces (many reads, splits inside characters)."""
    path = script(tmp_path, PRELUDE + """
import hashlib
p.on("message", lambda m: out(len(m), hashlib.sha256(m.encode()).hexdigest()))
""")
    peer = raw_parent(path)
    text = "a\u00e9\u20ac\U0001F600" * 300_000
    line = json.dumps(text, ensure_ascii=False).encode() + b"\n"
    for i in range(0, len(line), 1000):
        peer.send(line[i:i + 1000])
    peer.wait_event(lambda e: isinstance(e[0], int))
    rc, events, err = peer.finish()
    assert events == [[len(text), hashlib.sha256(text.encode()).hexdigest()]]
    assert rc == 0, err


def test_five_megabyte_message_both_ways(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    text = "\u00e9\u20ac\U0001F600xy" * 500_000
    message = {"blob": text, "n": 1}
    assert len(json.dumps(message, ensure_ascii=False).encode()) > 5 * MIB
    got = []
    child.on("message", got.append)
    child.send(message)
    assert run_until(lambda: got)
    assert got[0]["n"] == 1 and len(got[0]["blob"]) == len(text)
    assert hashlib.sha256(got[0]["blob"].encode()).digest() == hashlib.sha256(text.encode()).digest()
    child.send("__bye__")
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# internal messages
# =================================================================================================

INTERNAL_CASES = [
    ({"cmd": "NODE_FOO"}, "internal"),
    ({"cmd": "NODE_"}, "message"),              # too short to be internal (Appendix 32)
    ({"cmd": "NODE_BAR", "x": [1]}, "internal"),
    ({"cmd": "node_foo"}, "message"),
    ({"cmd": 5}, "message"),
    (["NODE_FOO"], "message"),
    ("NODE_FOO", "message"),
    ({"cmd": "NODE_HANDLE_X"}, "internal"),
]


def test_internal_messages_reach_the_child_as_internalMessage(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER))
    for message, _ in INTERNAL_CASES:
        peer.send(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    peer.send(b'"end"\n')
    peer.wait_event(lambda e: e == ["message", "end"])
    rc, events, err = peer.finish()
    assert events == [[kind, message] for message, kind in INTERNAL_CASES] + [
        ["message", "end"], ["disconnect"]]
    assert rc == 0, err


def test_internal_messages_reach_the_parent_as_internalMessage(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + f"""
for m, _ in {INTERNAL_CASES!r}:
    p.send(m)
"""))
    reap(child)
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    got = [list(e) for e in events if e[0] in ("message", "internal")]
    assert got == [[kind, message] for message, kind in INTERNAL_CASES]


# =================================================================================================
# a malformed frame: 'error' ERR_IPC_BAD_MESSAGE, earlier messages delivered, channel closed
# =================================================================================================

def test_malformed_line_to_child_is_an_error_not_a_crash(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER))
    peer.send(b'{"ok":1}\n[2]\n{not json}\n{"after":1}\n')
    assert peer.read_until_eof() == b""          # the child closed its end
    rc, events, err = peer.finish()
    assert rc == 0, err
    assert "Traceback" not in err
    assert ["message", {"ok": 1}] in events and ["message", [2]] in events
    assert ["error", "ERR_IPC_BAD_MESSAGE", False] in events
    assert ["disconnect"] in events
    assert ["message", {"after": 1}] not in events
    assert len(events) == 4


def test_malformed_line_in_a_later_read_to_child(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER))
    peer.send(b'{"ok":1}\n')
    peer.wait_event(lambda e: e == ["message", {"ok": 1}])
    peer.send(b'{not json}\n')
    assert peer.read_until_eof() == b""
    rc, events, err = peer.finish()
    assert rc == 0, err
    assert sorted(map(json.dumps, events)) == sorted(map(json.dumps, [
        ["message", {"ok": 1}], ["error", "ERR_IPC_BAD_MESSAGE", False], ["disconnect"]]))


def test_malformed_line_to_child_event_order(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER))
    peer.send(b'{"ok":1}\n[2]\n{not json}\n{"after":1}\n')
    assert peer.read_until_eof() == b""
    rc, events, err = peer.finish()
    assert events == [["message", {"ok": 1}], ["message", [2]],
                      ["error", "ERR_IPC_BAD_MESSAGE", False], ["disconnect"]]


BAD_LINE_CHILD = """\
import os, sys
fd = int(os.environ["NODE_CHANNEL_FD"])
os.write(fd, b'{"ok":1}\\n[2]\\n{not json}\\n"after"\\n')
sys.stdout.write(repr(os.read(fd, 100)))     # EOF: the parent closed the channel
"""


def test_malformed_line_to_parent_is_an_error_not_a_crash(tmp_path, reap):
    child = raw_child(tmp_path, BAD_LINE_CHILD, reap)
    out = stdout_of(child)
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    assert b"".join(out) == b"b''"
    assert ("message", {"ok": 1}) in events and ("message", [2]) in events
    assert ("error", "ERR_IPC_BAD_MESSAGE") in events
    assert ("message", "after") not in events
    assert events.count(("disconnect",)) == 1
    assert events[-1] == ("close", 0, None)
    assert child.connected is False


def test_malformed_line_to_parent_event_order(tmp_path, reap):
    child = raw_child(tmp_path, BAD_LINE_CHILD, reap)
    stdout_of(child)
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    assert [e for e in events if e[0] not in ("exit", "close")] == [
        ("message", {"ok": 1}), ("message", [2]), ("error", "ERR_IPC_BAD_MESSAGE"), ("disconnect",)]


def test_invalid_utf8_in_a_line_becomes_replacement_characters(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER))
    peer.send(b'"a\xffb"\n"next"\n')
    peer.wait_event(lambda e: e == ["message", "next"] or e[0] == "error")
    rc, events, err = peer.finish()
    assert events[:2] == [["message", "a\ufffdb"], ["message", "next"]]


def test_json_max_message_size_on_a_line_arriving_in_pieces(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER + """
out("limit", p.channel.max_message_size)
p.channel.max_message_size = 1000
"""))
    peer.send(b'"' + b"x" * 600)
    time.sleep(0.1)
    peer.send(b"y" * 600)                      # 1201 bytes pending, no newline yet
    assert peer.read_until_eof() == b""
    rc, events, err = peer.finish()
    assert events[0] == ["limit", 256 * MIB]
    assert events[1:] in ([["error", "ERR_IPC_BAD_MESSAGE", False], ["disconnect"]],
                          [["disconnect"], ["error", "ERR_IPC_BAD_MESSAGE", False]])
    assert rc == 0, err


def test_json_max_message_size_on_a_complete_line(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, RECORDER + "p.channel.max_message_size = 1000\n"))
    peer.send(b'"' + b"x" * 2000 + b'"\n')
    peer.wait_event(lambda e: e[0] in ("message", "error"))
    rc, events, err = peer.finish()
    assert ["error", "ERR_IPC_BAD_MESSAGE", False] in events
    assert not [e for e in events if e[0] == "message"]


# =================================================================================================
# pickle
# =================================================================================================

def test_pickle_round_trip_of_python_objects(tmp_path, reap):
    import datetime
    import decimal
    import fractions
    child = fork(script(tmp_path, ECHO), serialization="pickle")
    reap(child)
    values = [{1, 2, 3}, (1, "a", None), b"\x00\xff", bytearray(b"ba"), 3 + 4j, frozenset({"x"}),
              {1: "int key", (2, 3): "tuple key"}, 2 ** 100, decimal.Decimal("1.10"),
              fractions.Fraction(1, 3), datetime.datetime(2020, 1, 2, 3, 4, 5, 6), range(3, 9),
              "\ud800 lone surrogate", [float("inf"), -0.0], {"cmd": "NODE_"}]
    got = []
    child.on("message", got.append)
    for value in values:
        child.send(value)
    child.send(float("nan"))
    assert run_until(lambda: len(got) == len(values) + 1)
    assert got[:-1] == values
    assert [type(v) for v in got[:-1]] == [type(v) for v in values]
    assert math.copysign(1, got[len(values) - 2][1]) == -1.0
    assert isinstance(got[-1], float) and math.isnan(got[-1])
    child.send("__bye__")
    assert child.wait(WAIT) == (0, None)


def test_pickle_internal_messages(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
p.on("internalMessage", lambda m: p.send(["internal", m]))
p.on("message", lambda m: p.disconnect() if m == "bye" else p.send(["message", m]))
"""), serialization="pickle")
    reap(child)
    got = []
    child.on("message", got.append)
    child.send({"cmd": "NODE_FOO", "x": (1, 2)})
    child.send({"cmd": "NODE_"})
    assert run_until(lambda: len(got) == 2)
    child.send("bye")
    assert child.wait(WAIT) == (0, None)
    assert got == [["internal", {"cmd": "NODE_FOO", "x": (1, 2)}], ["message", {"cmd": "NODE_"}]]


def test_pickle_out_of_band_buffers_round_trip(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
import hashlib, pickle
def on_message(m):
    if m == "bye":
        p.disconnect()
        return
    view = memoryview(m["buf"])
    data = bytearray(view)
    data.reverse()
    p.send({"len": view.nbytes, "sha": hashlib.sha256(view).hexdigest(),
            "back": pickle.PickleBuffer(data)})
p.on("message", on_message)
"""), serialization="pickle")
    reap(child)
    payload = bytearray(os.urandom(4096) * 2048)          # 8 MiB
    got = []
    child.on("message", got.append)
    child.send({"buf": pickle.PickleBuffer(payload)})
    assert run_until(lambda: got)
    assert got[0]["len"] == len(payload)
    assert got[0]["sha"] == hashlib.sha256(payload).hexdigest()
    assert bytes(memoryview(got[0]["back"])) == bytes(reversed(payload))
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


def test_pickle_wire_is_a_big_endian_length_prefixed_protocol_5_pickle(tmp_path, raw_parent):
    path = script(tmp_path, PRELUDE + """
import pickle
p.send({"a": 1})
p.send("x" * 70000)
p.send({"buf": pickle.PickleBuffer(bytearray(b"Z" * 100000))})
p.disconnect()
""")
    peer = raw_parent(path, mode="pickle")
    data = peer.read_until_eof()
    rc, events, err = peer.finish()
    assert rc == 0, err
    frames = []
    while data:
        (length,) = struct.unpack(">I", data[:4])
        assert len(data) >= 4 + length
        frames.append(data[4:4 + length])
        data = data[4 + length:]
    assert len(frames) == 3
    assert b"\x80\x05" in frames[0]                     # PROTO 5
    assert len(frames[1]) > 70000 and b"x" * 70000 in frames[1]
    # the bytearray travels out of band: the pickle stream holds NEXT_BUFFER, and the 100 000
    # bytes are in the frame exactly once
    start = frames[2].index(b"\x80\x05")
    opcodes = [op.name for op, _, _ in pickletools.genops(frames[2][start:])]
    assert "NEXT_BUFFER" in opcodes and "BYTEARRAY8" not in opcodes
    assert frames[2].count(b"Z" * 100000) == 1 and len(frames[2]) < 100000 + 300


def test_pickle_frames_split_anywhere_and_coalesced(tmp_path, raw_parent):
    """Frames the child wrote, sent back to it cut inside the length prefix and inside the payload,
    and several in one write."""
    peer = raw_parent(script(tmp_path, PRELUDE + """
p.on("message", lambda m: out("message", repr(m)))
p.on("disconnect", lambda: out("disconnect"))
p.send({"k": (1, 2), "s": {3}})
p.send(b"\\x00" * 1000)
"""), mode="pickle")
    frames = []
    for _ in range(2):
        (length,) = struct.unpack(">I", peer.read_exact(4))
        frames.append(struct.pack(">I", length) + peer.read_exact(length))
    first, second = frames
    for piece in (first[:2], first[2:4], first[4:9], first[9:] + second[:3], second[3:500],
                  second[500:] + first + second + first):
        peer.send(piece)
        time.sleep(0.1)
    rc, events, err = peer.finish()
    one, two = ["message", repr({"k": (1, 2), "s": {3}})], ["message", repr(b"\x00" * 1000)]
    assert events == [one, two, one, two, one, ["disconnect"]]
    assert rc == 0, err


PICKLE_LIMIT_CHILD = RECORDER + """
import resource
def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
with open("/proc/self/status") as f:
    vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:"))
# an attempt to allocate what the peer announces (4 GiB) would fail loudly, not slowly
resource.setrlimit(resource.RLIMIT_AS, ((vm + 600 * 1024) * 1024, resource.RLIM_INFINITY))
out("limit", p.channel.max_message_size, rss_kib(),
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
p.on("error", lambda e: out("rss", rss_kib(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))
"""


def test_pickle_huge_length_prefix_is_refused_before_allocating(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, PICKLE_LIMIT_CHILD), mode="pickle")
    peer.send(b"\xff\xff\xff\xf0")
    assert peer.read_until_eof() == b""        # the channel is closed at once: no payload needed
    rc, events, err = peer.finish()
    assert rc == 0, err
    assert "MemoryError" not in err and "Traceback" not in err
    limit, rss_before, maxrss_before = events[0][1:]
    assert limit == 256 * MIB                   # docs/api.md: 256 MiB by default
    assert ["error", "ERR_IPC_BAD_MESSAGE", False] in events
    assert ["disconnect"] in events
    rss = next(e for e in events if e[0] == "rss")
    assert rss[1] - rss_before < 20 * 1024      # KiB
    assert rss[2] - maxrss_before < 20 * 1024


def test_pickle_configured_max_message_size(tmp_path, raw_parent):
    """With a 1 MiB limit, a header announcing 2 MiB is refused before any payload arrives."""
    peer = raw_parent(script(tmp_path, PICKLE_LIMIT_CHILD + "p.channel.max_message_size = MIB\n"
                             .replace("MIB", str(MIB))), mode="pickle")
    peer.send(struct.pack(">I", 2 * MIB))
    assert peer.read_until_eof() == b""
    rc, events, err = peer.finish()
    assert rc == 0, err
    assert ["error", "ERR_IPC_BAD_MESSAGE", False] in events


def test_pickle_max_message_size_between_python_peers(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + f"""
p.channel.max_message_size = {MIB}
p.on("message", lambda m: p.send(len(m)))
p.on("error", lambda e: out("child error", e.code))
"""), serialization="pickle", stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    out = stdout_of(child)
    events = record(child)
    child.send(b"a" * (MIB // 2))
    assert run_until(lambda: ("message", MIB // 2) in events)
    child.send(b"b" * (2 * MIB))                 # over the child's limit: it closes the channel
    assert child.wait(WAIT) == (0, None)
    assert events_of(b"".join(out)) == [["child error", "ERR_IPC_BAD_MESSAGE"]]
    assert ("disconnect",) in events


def test_pickle_max_message_size_on_the_parent(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + f"""
p.send(b"a" * {MIB // 2})
p.send(b"b" * {2 * MIB})
p.on("disconnect", lambda: None)
"""), serialization="pickle")
    reap(child)
    assert child.channel.max_message_size == 256 * MIB
    child.channel.max_message_size = MIB
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    messages = [e for e in events if e[0] == "message"]
    assert messages == [("message", b"a" * (MIB // 2))]
    assert ("error", "ERR_IPC_BAD_MESSAGE") in events
    assert child.connected is False


def test_pickle_unpicklable_message_raises_and_the_channel_goes_on(tmp_path, reap):
    child = fork(script(tmp_path, ECHO), serialization="pickle")
    reap(child)
    with pytest.raises(Exception) as info:
        child.send(lambda: None)
    assert isinstance(info.value, (pickle.PicklingError, AttributeError, TypeError))
    got = []
    child.on("message", got.append)
    child.send("still works")
    assert run_until(lambda: got)
    assert got == ["still works"]
    child.send("__bye__")
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# send(): return value, callbacks, errors
# =================================================================================================

def test_send_callbacks_are_never_synchronous(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    calls = []
    returned = []
    for i, message in enumerate(["small", "x" * 100_000, {"k": "y" * 70_000}]):
        ok = child.send(message, callback=lambda err, i=i: calls.append((i, err, list(returned))))
        assert calls == []                       # not inside send()
        returned.append(i)
        assert ok is True
    assert run_until(lambda: len(calls) == 3)
    assert calls == [(0, None, [0, 1, 2]), (1, None, [0, 1, 2]), (2, None, [0, 1, 2])]
    child.send("__bye__")
    assert child.wait(WAIT) == (0, None)


def test_child_send_callbacks_are_never_synchronous(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
calls = []
returned = []
for i, m in enumerate(["small", "x" * 100000]):
    p.send(m, callback=lambda err, i=i: calls.append([i, err, list(returned)]))
    returned.append([i, list(calls)])
def report(err):
    p.send({"calls": calls, "returned": returned})
p.send("last", callback=report)
"""))
    reap(child)
    got = []
    child.on("message", got.append)
    assert child.wait(WAIT) == (0, None)
    assert got[-1] == {"calls": [[0, None, [[0, []], [1, []]]], [1, None, [[0, []], [1, []]]]],
                       "returned": [[0, []], [1, []]]}


def test_send_after_disconnect_returns_false_and_reports_asynchronously(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    errors = []
    child.on("error", errors.append)
    child.disconnect()
    assert child.connected is False
    calls = []
    assert child.send("late", callback=calls.append) is False
    assert child.send("late too") is False
    assert calls == [] and errors == []          # nothing synchronous
    assert child.wait(WAIT) == (0, None)
    assert [getattr(e, "code", None) for e in calls] == ["ERR_IPC_CHANNEL_CLOSED"]
    assert [getattr(e, "code", None) for e in errors] == ["ERR_IPC_CHANNEL_CLOSED"]
    # and once the channel is gone entirely
    assert child.send("later", callback=calls.append) is False
    spin(0.05)
    assert [getattr(e, "code", None) for e in calls] == ["ERR_IPC_CHANNEL_CLOSED"] * 2


def test_child_send_after_disconnect(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
errors = []
calls = []
p.on("error", lambda e: errors.append(e.code))
p.disconnect()
r1 = p.send("late", callback=lambda e: calls.append(e.code))
r2 = p.send("late too")
sync = [list(errors), list(calls), p.connected]
child_process.run()
out(r1, r2, sync, errors, calls)
"""), stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    out = stdout_of(child)
    assert child.wait(WAIT) == (0, None)
    assert events_of(b"".join(out)) == [
        [False, False, [[], [], False], ["ERR_IPC_CHANNEL_CLOSED"], ["ERR_IPC_CHANNEL_CLOSED"]]]


def test_send_without_a_message(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
try:
    p.send()
except TypeError as e:
    p.send(["child", e.code])
"""))
    reap(child)
    got = []
    child.on("message", got.append)
    with pytest.raises(NodeTypeError) as info:
        child.send()
    assert info.value.code == "ERR_MISSING_ARGS"
    assert child.wait(WAIT) == (0, None)
    assert got == [["child", "ERR_MISSING_ARGS"]]
    with pytest.raises(NodeTypeError) as info:   # after the channel is gone, too
        child.send()
    assert info.value.code == "ERR_MISSING_ARGS"


def test_send_rejects_values_json_cannot_carry(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    for bad in (object(), {1, 2}, {"nested": object()}):
        with pytest.raises(TypeError) as info:
            child.send(bad)
        assert info.value.code == "ERR_INVALID_ARG_TYPE"
    with pytest.raises(TypeError) as info:
        child.send("x", callback="not callable")
    assert info.value.code == "ERR_INVALID_ARG_TYPE"
    got = []
    child.on("message", got.append)
    child.send("ok")                             # nothing half-written before it
    assert run_until(lambda: got)
    assert got == ["ok"]
    child.send("__bye__")
    assert child.wait(WAIT) == (0, None)


def test_second_disconnect_is_err_ipc_disconnected(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    errors = []
    child.on("error", errors.append)
    child.disconnect()
    child.disconnect()
    assert [e.code for e in errors] == ["ERR_IPC_DISCONNECTED"]
    assert child.wait(WAIT) == (0, None)
    child.disconnect()                           # fully closed too
    assert [e.code for e in errors] == ["ERR_IPC_DISCONNECTED"] * 2
    child.remove_all_listeners("error")
    with pytest.raises(NodeValueError) as info:  # no 'error' listener: raised
        child.disconnect()
    assert info.value.code == "ERR_IPC_DISCONNECTED"


def test_child_second_disconnect(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
codes = []
p.on("error", lambda e: codes.append(e.code))
p.disconnect()
p.disconnect()
out(codes)
"""), stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    out = stdout_of(child)
    assert child.wait(WAIT) == (0, None)
    assert events_of(b"".join(out)) == [[["ERR_IPC_DISCONNECTED"]]]


def test_messages_sent_before_disconnect_are_delivered_to_the_child(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
got = []
p.on("message", lambda m: got.append(m["i"]))
p.on("disconnect", lambda: out(len(got), got == list(range(len(got)))))
"""), stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    out = stdout_of(child)
    results = [child.send({"i": i, "pad": "p" * 1000}) for i in range(2000)]
    assert False in results                     # well past the backlog threshold
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    assert events_of(b"".join(out)) == [[2000, True]]


def test_messages_sent_before_disconnect_are_delivered_to_the_parent(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
for i in range(2000):
    p.send({"i": i, "pad": "p" * 1000})
p.disconnect()
"""))
    reap(child)
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    ids = [e[1]["i"] for e in events if e[0] == "message"]
    assert ids == list(range(2000))
    assert events.index(("disconnect",)) == 2000


def test_connected_and_disconnect_event_is_asynchronous(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    events = record(child)
    assert child.connected is True
    child.disconnect()
    assert child.connected is False
    assert events == []
    assert child.wait(WAIT) == (0, None)
    assert events.count(("disconnect",)) == 1


def test_channel_is_none_after_disconnect(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    assert child.channel is None


def test_child_disconnects_and_parent_sees_it(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
p.send("first")
p.disconnect()
out(p.connected)
p.on("disconnect", lambda: out("disconnect", p.connected, p.channel))
"""), stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    out = stdout_of(child)
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    assert events == [("message", "first"), ("disconnect",), ("exit", 0, None), ("close", 0, None)] \
        or events == [("message", "first"), ("exit", 0, None), ("disconnect",), ("close", 0, None)]
    assert events_of(b"".join(out)) == [[False], ["disconnect", False, None]]
    assert child.connected is False


@pytest.mark.parametrize("who", ["parent", "child"])
def test_close_comes_after_disconnect_and_exit(tmp_path, reap, who):
    code = ECHO if who == "parent" else PRELUDE + "p.send('hi')\np.disconnect()\n"
    child = fork(script(tmp_path, code), stdio=["pipe", "pipe", "pipe", "ipc"])
    reap(child)
    events = record(child)
    if who == "parent":
        child.send("hi")
        assert run_until(lambda: ("message", "hi") in events)
        child.disconnect()
    assert child.wait(WAIT) == (0, None)
    names = [e[0] for e in events]
    assert names.count("disconnect") == 1 and names.count("exit") == 1
    assert names.count("close") == 1 and names[-1] == "close"
    assert events[-1] == ("close", 0, None)
    assert names.index("message") < names.index("disconnect")


# =================================================================================================
# queueing before a listener, one dispatch per message
# =================================================================================================

def test_parent_queues_messages_until_a_listener_is_added(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
for i in (1, 2, 3):
    p.send(i)
p.send({"cmd": "NODE_READY"})
p.send(4)
p.on("disconnect", lambda: None)            # stay alive until the parent disconnects
"""))
    reap(child)
    got = []
    seen_at_add = []

    def on_internal(message):
        child.on("message", got.append)
        seen_at_add.append(list(got))            # nothing delivered inside on()

    child.on("internalMessage", on_internal)
    assert run_until(lambda: len(got) == 4)
    assert got == [1, 2, 3, 4]
    assert seen_at_add == [[]]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_parent_queues_messages_until_a_late_listener(tmp_path, reap):
    """Node's observation: messages sent at once, listener added 0.5 s later: all delivered."""
    child = fork(script(tmp_path, PRELUDE + """
for i in (1, 2, 3):
    p.send(i)
p.on("disconnect", lambda: None)
"""))
    reap(child)
    got = []
    timer = Timer(get_loop(), lambda: child.on("message", got.append))
    timer.start(0.5)
    assert run_until(lambda: len(got) == 3)
    assert got == [1, 2, 3]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_child_queues_messages_until_a_listener_is_added(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
got = []
def on_internal(m):
    p.on("message", lambda m: (got.append(m), len(got) == 4 and p.send(got)))
    out("added", list(got))
p.on("internalMessage", on_internal)
p.on("disconnect", lambda: None)
"""), stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    out = stdout_of(child)
    replies = []
    child.on("message", replies.append)
    for m in (1, 2, 3, {"cmd": "NODE_GO"}, 4):
        child.send(m)
    assert run_until(lambda: replies)
    assert replies == [[1, 2, 3, 4]]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)
    assert events_of(b"".join(out)) == [["added", []]]


def test_exception_in_a_listener_loses_no_later_message(tmp_path, reap):
    child = raw_child(tmp_path, """\
        import os
        fd = int(os.environ["NODE_CHANNEL_FD"])
        os.write(fd, b'1\\n2\\n3\\n{"cmd":"NODE_X"}\\n4\\n')
        """, reap)
    got = []

    def on_message(m):
        got.append(m)
        if m in (1, 3):
            raise ValueError(m)

    child.on("message", on_message)
    child.on("internalMessage", got.append)
    raised = []
    for _ in range(10):
        try:
            assert child.wait(WAIT) == (0, None)
            break
        except ValueError as exc:
            raised.append(exc.args[0])
    assert raised == [1, 3]
    assert got == [1, 2, 3, {"cmd": "NODE_X"}, 4]


def test_exception_in_a_listener_loses_no_queued_message(tmp_path, reap):
    child = raw_child(tmp_path, """\
        import os
        fd = int(os.environ["NODE_CHANNEL_FD"])
        os.write(fd, b'1\\n2\\n3\\n{"cmd":"NODE_READY"}\\n4\\n')
        """, reap)
    got = []

    def on_message(m):
        got.append(m)
        if m in (1, 3):
            raise ValueError(m)

    child.on("internalMessage", lambda m: child.on("message", on_message))
    raised = []
    for _ in range(10):
        try:
            child.wait(WAIT)
            break
        except ValueError as exc:
            raised.append(exc.args[0])
    assert got == [1, 2, 3, 4]
    assert raised == [1, 3]


def test_child_exception_in_a_listener_loses_no_later_message(tmp_path, raw_parent):
    peer = raw_parent(script(tmp_path, PRELUDE + """
got = []
def on_message(m):
    got.append(m)
    if m in (1, 3):
        raise ValueError(m)
    if m == 4:
        out(got)
p.on("message", on_message)
raised = []
while True:
    try:
        child_process.run()
        break
    except ValueError as e:
        raised.append(e.args[0])
out(raised)
"""))
    peer.send(b"1\n2\n3\n4\n")
    peer.wait_event(lambda e: e == [[1, 2, 3, 4]])
    rc, events, err = peer.finish()
    assert events == [[[1, 2, 3, 4]], [[1, 3]]]
    assert rc == 0, err


# =================================================================================================
# backpressure: send() says False past 128 KiB unsent; nothing is dropped
# =================================================================================================

def test_backpressure_child_sends_while_parent_does_not_read(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
results = [p.send({"i": i, "pad": "x" * 1000}) for i in range(600)]
first = results.index(False) if False in results else None
p.send({"first_false": first, "falses": results.count(False), "first": results[0]})
"""))
    reap(child)
    time.sleep(1.0)                               # not running the loop: not reading
    got = []
    child.on("message", got.append)
    assert child.wait(WAIT) == (0, None)
    report = got[-1]
    assert report["first"] is True
    assert report["first_false"] is not None and 50 < report["first_false"] < 600
    assert report["falses"] == 600 - report["first_false"]  # stays False while backed up
    assert [m["i"] for m in got[:-1]] == list(range(600))


def test_backpressure_parent_sends_while_child_does_not_read(tmp_path, reap):
    child = fork(script(tmp_path, """\
import time
time.sleep(1.0)                           # the channel is not read yet
""" + PRELUDE + """
got = []
def on_message(m):
    if m == "end":
        p.send({"n": len(got), "ordered": got == list(range(len(got)))})
    elif isinstance(m, dict):
        got.append(m["i"])
p.on("message", on_message)
"""))
    reap(child)
    callbacks = []
    results = [child.send({"i": i, "pad": "x" * 1000}, callback=callbacks.append)
               for i in range(600)]
    assert callbacks == []
    assert results[0] is True
    first = results.index(False)
    assert 50 < first < 600
    assert all(r is False for r in results[first:])
    child.send("end")
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got)
    assert got == [{"n": 600, "ordered": True}]
    assert callbacks == [None] * 600
    assert child.send("again") is True            # the backlog is gone
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# environment and descriptors
# =================================================================================================

ENV_REPORT = PRELUDE + """
import subprocess
with open("/proc/self/environ", "rb") as f:
    initial = [e.decode() for e in f.read().split(b"\\0") if e.startswith(b"NODE_CHANNEL")]
grandchild = subprocess.run(
    [sys.executable, "-c", "import os; print(sorted(k for k in os.environ if k.startswith('NODE_CHANNEL')))"
     "; import os; print(os.path.exists('/proc/self/fd/%d' % int(os.environ.get('FD_CHECK'))))"],
    capture_output=True, text=True, env=dict(os.environ, FD_CHECK=str(p.channel.fileno())),
    close_fds=False).stdout.split()
p.send({"environ": sorted(k for k in os.environ if k.startswith("NODE_CHANNEL")),
        "initial": sorted(initial), "fd": p.channel.fileno(), "grandchild": grandchild})
p.on("message", lambda m: p.send(m))
"""


@pytest.mark.parametrize("where", ["env", "os.environ"])
def test_user_env_with_channel_variables_does_not_confuse_the_child(tmp_path, reap, monkeypatch,
                                                                     where):
    if where == "env":
        env = dict(os.environ, NODE_CHANNEL_FD="1", NODE_CHANNEL_SERIALIZATION_MODE="pickle")
    else:                                         # env=None: the parent's own environment
        env = None
        monkeypatch.setenv("NODE_CHANNEL_FD", "1")
        monkeypatch.setenv("NODE_CHANNEL_SERIALIZATION_MODE", "pickle")
    child = fork(script(tmp_path, ENV_REPORT), env=env)
    reap(child)
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got)
    assert got[0] == {"environ": [], "fd": 3, "grandchild": ["[]", "False"],
                      "initial": ["NODE_CHANNEL_FD=3", "NODE_CHANNEL_SERIALIZATION_MODE=json"]}
    child.send((1, 2))                            # json: a tuple comes back as a list
    assert run_until(lambda: len(got) == 2)
    assert got[1] == [1, 2]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_child_without_a_channel_has_parent_none(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_CHANNEL")}
    result = spawn_sync(PY, ["-c", "import child_process; print(child_process.parent)"], env=env)
    assert (result.status, result.stdout) == (0, b"None\n")


@pytest.mark.parametrize("stdio, fd", [
    (["ipc", "inherit", "inherit"], 0),
    (["pipe", "pipe", "inherit", "ignore", "ignore", "ipc"], 5),
    (["ignore", "ipc", "inherit"], 1),
])
def test_ipc_at_any_stdio_index(tmp_path, reap, stdio, fd):
    child = spawn(PY, [script(tmp_path, ENV_REPORT)], stdio=stdio)
    reap(child)
    assert child.connected is True
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got)
    assert got[0]["fd"] == fd
    assert got[0]["initial"] == [f"NODE_CHANNEL_FD={fd}", "NODE_CHANNEL_SERIALIZATION_MODE=json"]
    assert got[0]["environ"] == []
    child.send({"at": fd})
    assert run_until(lambda: len(got) == 2)
    assert got[1] == {"at": fd}
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_parent_channel_descriptor_is_not_inherited_by_other_children(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    st = os.fstat(child.channel.fileno())
    other = spawn_sync(PY, ["-c", """if 1:
        import os
        found = []
        for name in os.listdir("/proc/self/fd"):
            try:
                s = os.fstat(int(name))
            except OSError:
                continue
            found.append([s.st_dev, s.st_ino])
        print(found)
        """])
    assert other.status == 0
    assert [st.st_dev, st.st_ino] not in eval(other.stdout)
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# fork(): options
# =================================================================================================

def test_fork_requires_ipc_in_a_stdio_list(tmp_path):
    with pytest.raises(NodeValueError) as info:
        fork(script(tmp_path, ECHO), stdio=["pipe", "pipe", "pipe"])
    assert info.value.code == "ERR_CHILD_PROCESS_IPC_REQUIRED"


def test_fork_rejects_two_ipc_entries(tmp_path):
    with pytest.raises(NodeValueError) as info:
        fork(script(tmp_path, ECHO), stdio=["pipe", "pipe", "pipe", "ipc", "ipc"])
    assert info.value.code == "ERR_IPC_ONE_PIPE"
    with pytest.raises(NodeValueError) as info:
        spawn(PY, ["-c", "pass"], stdio=["ipc", "pipe", "pipe", "ipc"])
    assert info.value.code == "ERR_IPC_ONE_PIPE"


def test_ipc_in_a_sync_spawn_is_rejected():
    with pytest.raises(NodeValueError) as info:
        spawn_sync(PY, ["-c", "pass"], stdio=["pipe", "pipe", "pipe", "ipc"])
    assert info.value.code == "ERR_IPC_SYNC_FORK"


def test_fork_rejects_an_unknown_serialization(tmp_path):
    with pytest.raises(ValueError) as info:
        fork(script(tmp_path, ECHO), serialization="yaml")
    assert info.value.code == "ERR_INVALID_ARG_VALUE"


def test_fork_silent_pipes_the_stdio(tmp_path, reap):
    child = fork(script(tmp_path, """\
        import sys
        data = sys.stdin.read()
        print("out:" + data)
        sys.stderr.write("err\\n")
        """), silent=True)
    reap(child)
    out, err = stdout_of(child), []
    child.stderr.on("data", err.append)
    child.stdin.end(b"in")
    assert child.wait(WAIT) == (0, None)
    assert b"".join(out) == b"out:in\n"
    assert b"".join(err) == b"err\n"
    assert len(child.stdio) == 4 and child.stdio[3] is None


def test_fork_default_stdio_is_inherited(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    assert (child.stdin, child.stdout, child.stderr) == (None, None, None)
    assert child.channel is not None
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_fork_string_stdio(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + "print('hello')\n"), stdio="pipe")
    reap(child)
    out = stdout_of(child)
    assert child.wait(WAIT) == (0, None)
    assert b"".join(out) == b"hello\n"


def test_fork_runs_exec_path_with_exec_argv_module_and_args(tmp_path, reap):
    path = script(tmp_path, PRELUDE + "p.send([sys.argv[1:], sys.flags.utf8_mode])\n")
    child = fork(path, ["a", "b c"], exec_argv=["-X", "utf8"], exec_path=PY)
    reap(child)
    assert child.spawnfile == PY
    assert child.spawnargs == [PY, "-X", "utf8", path, "a", "b c"]
    got = []
    child.on("message", got.append)
    assert child.wait(WAIT) == (0, None)
    assert got == [[["a", "b c"], 1]]


def test_fork_module_by_name_with_exec_argv_m(tmp_path, reap):
    pkg = tmp_path / "ipcmod_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "worker.py").write_text(textwrap.dedent(ECHO) + "p.send(['ready', __name__, sys.argv[1:]])\n")
    child = fork("ipcmod_pkg.worker", ["x"], exec_argv=["-m"], cwd=str(tmp_path))
    reap(child)
    assert child.spawnargs == [PY, "-m", "ipcmod_pkg.worker", "x"]
    got = []
    child.on("message", got.append)
    child.send({"hi": 1})
    assert run_until(lambda: len(got) == 2)
    assert got == [["ready", "__main__", ["x"]], {"hi": 1}]
    child.send("__bye__")
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# lifetime: the child's channel keeps it alive only with listeners; the parent's always
# =================================================================================================

def test_child_without_listeners_exits_though_the_parent_never_disconnects(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + "p.send(p is not None)\n"))
    reap(child)
    got = []
    child.on("message", got.append)
    start = time.monotonic()
    assert child.wait(WAIT) == (0, None)
    assert time.monotonic() - start < 3.0
    assert got == [True]


def test_child_with_a_listener_stays_alive_until_disconnect(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + "p.on('disconnect', lambda: None)\n"))
    reap(child)
    with pytest.raises(TimeoutError):
        child.wait(1.0)
    assert child.exit_code is None
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_child_that_removes_its_listener_exits(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
def on_message(m):
    p.off("message", on_message)
    p.send(["removed", m])
p.on("message", on_message)
"""))
    reap(child)
    got = []
    child.on("message", got.append)
    with pytest.raises(TimeoutError):
        child.wait(0.5)                           # alive while it listens
    child.send("go")
    start = time.monotonic()
    assert child.wait(WAIT) == (0, None)           # never disconnected by the parent
    assert time.monotonic() - start < 3.0
    assert got == [["removed", "go"]]


def test_child_explicit_unref_and_ref(tmp_path, reap):
    unref = fork(script(tmp_path, PRELUDE + "p.on('message', print)\np.unref()\n"))
    ref = fork(script(tmp_path, PRELUDE + "p.ref()\n"))
    reap(unref)
    reap(ref)
    assert unref.wait(WAIT) == (0, None)           # listener, but unref'd: exits
    with pytest.raises(TimeoutError):
        ref.wait(0.7)                             # no listener, but ref'd: stays
    ref.disconnect()
    assert ref.wait(WAIT) == (0, None)


def test_child_pending_writes_keep_it_alive(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + "p.send('z' * 6000000)\n"))
    reap(child)
    time.sleep(0.5)
    got = []
    child.on("message", got.append)
    assert child.wait(WAIT) == (0, None)
    assert got == ["z" * 6_000_000]


def test_parent_channel_keeps_run_alive_until_disconnect(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    child.unref()                                 # the process handle only
    timer = Timer(get_loop(), child.disconnect)
    timer.start(1.0)
    start = time.monotonic()
    child_process.run()
    assert time.monotonic() - start >= 0.95
    assert child.connected is False
    child.ref()
    assert child.wait(WAIT) == (0, None)


def test_channel_unref_lets_run_return(tmp_path, reap):
    child = fork(script(tmp_path, ECHO))
    reap(child)
    child.channel.unref()
    child.unref()
    start = time.monotonic()
    child_process.run()
    assert time.monotonic() - start < 0.5
    assert child.connected is True and child.exit_code is None
    got = []
    child.on("message", got.append)
    child.send("still there")
    assert run_until(lambda: got)
    assert got == ["still there"]
    child.channel.ref()
    child.ref()
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# volume, concurrency, leaks
# =================================================================================================

def test_50000_messages_parent_to_child_in_order(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
state = {"next": 0, "bad": None}
def on_message(m):
    if m == "end":
        p.send(state)
        return
    if m != state["next"] and state["bad"] is None:
        state["bad"] = [state["next"], m]
    state["next"] += 1
p.on("message", on_message)
"""))
    reap(child)
    for i in range(50_000):
        child.send(i)
    child.send("end")
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got, 40)
    assert got == [{"next": 50_000, "bad": None}]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_50000_messages_child_to_parent_in_order(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
for i in range(50000):
    p.send(i)
"""))
    reap(child)
    got = []
    child.on("message", got.append)
    assert child.wait(40) == (0, None)
    assert got == list(range(50_000))


def test_twenty_children_concurrently_each_echoing(tmp_path, reap):
    path = script(tmp_path, ECHO)
    children = [fork(path, [str(i)]) for i in range(20)]
    got = {i: [] for i in range(20)}
    for i, child in enumerate(children):
        reap(child)
        child.on("message", got[i].append)
        for k in range(50):
            child.send({"child": i, "k": k})
    assert run_until(lambda: all(len(v) == 50 for v in got.values()), 30)
    for i in range(20):
        assert got[i] == [{"child": i, "k": k} for k in range(50)]
    for child in children:
        child.send("__bye__")
    for child in children:
        assert child.wait(WAIT) == (0, None)
    assert len({c.pid for c in children}) == 20


def test_no_descriptor_or_object_leak_over_many_forks(tmp_path):
    path = script(tmp_path, ECHO)

    def one_round():
        child = fork(path)
        got = []
        child.on("message", got.append)
        child.send({"x": 1})
        assert run_until(lambda: got)
        channel = weakref.ref(child.channel)       # child.channel is None once closed
        child.send("__bye__")
        assert child.wait(WAIT) == (0, None)
        assert child.channel is None
        return weakref.ref(child), channel

    one_round()                                    # warm-up (imports, caches)
    fds_before = len(os.listdir("/proc/self/fd"))
    refs = [one_round() for _ in range(15)]
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) == fds_before
    assert [r for pair in refs for r in pair if r() is not None] == []


def test_child_channel_descriptor_is_close_on_exec(tmp_path, reap):
    """After adoption the child's channel fd is not inherited by the child's own children."""
    child = fork(script(tmp_path, ENV_REPORT))
    reap(child)
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got)
    assert got[0]["grandchild"] == ["[]", "False"]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


# =================================================================================================
# more send() failure paths, asyncio, program lifetime
# =================================================================================================

def test_message_listener_gets_none_as_the_handle(tmp_path, reap):
    child = fork(script(tmp_path, ECHO + "p.send({'cmd': 'NODE_PING'})\n"))
    reap(child)
    got = []
    child.on("message", lambda message, handle: got.append((message, handle)))
    child.on("internalMessage", lambda message, handle: got.append(("internal", message, handle)))
    child.send("plain")
    assert run_until(lambda: len(got) == 2)
    assert got == [("internal", {"cmd": "NODE_PING"}, None), ("plain", None)]
    child.send("__bye__")
    assert child.wait(WAIT) == (0, None)


def test_every_send_callback_runs_even_if_the_child_exits_unread(tmp_path, reap):
    child = raw_child(tmp_path, "import os, time\ntime.sleep(0.5)\nos._exit(0)\n", reap)
    calls = []
    for i in range(2000):
        child.send({"i": i, "pad": "x" * 1000}, callback=calls.append)
    assert child.wait(WAIT) == (0, None)
    spin(0.1)
    assert len(calls) == 2000
    failed = [e for e in calls if e is not None]
    assert failed and {getattr(e, "code", None) for e in failed} <= {
        "EPIPE", "ECONNRESET", "ERR_IPC_CHANNEL_CLOSED"}


def test_failed_send_without_callback_is_an_error_event(tmp_path, reap):
    child = raw_child(tmp_path, "import os\nos._exit(0)\n", reap)
    time.sleep(0.5)                              # gone; the loop has not read the EOF
    errors = []
    child.on("error", errors.append)
    child.send("into the void")
    assert child.wait(WAIT) == (0, None)
    assert [getattr(e, "code", None) for e in errors] in (
        ["EPIPE"], ["ECONNRESET"], ["ERR_IPC_CHANNEL_CLOSED"])


def test_send_checks_the_type_even_when_closed(tmp_path, reap):
    child = fork(script(tmp_path, "pass\n"))
    reap(child)
    assert child.wait(WAIT) == (0, None)
    child.on("error", lambda e: None)
    with pytest.raises(TypeError) as info:
        child.send(lambda: 0)
    assert info.value.code == "ERR_INVALID_ARG_TYPE"


def test_fork_validates_args_and_exec_argv(tmp_path):
    path = script(tmp_path, ECHO)
    for kwargs in ({"args": "not a list"}, {"exec_argv": "-m"}):
        with pytest.raises(TypeError) as info:
            fork(path, **kwargs)
        assert info.value.code == "ERR_INVALID_ARG_TYPE"
    with pytest.raises(TypeError) as info:
        fork(123)
    assert info.value.code == "ERR_INVALID_ARG_TYPE"
    with pytest.raises(TypeError) as info:
        fork(path, stdio=5)
    assert info.value.code == "ERR_INVALID_ARG_TYPE"


def test_fork_timeout_kills_and_closes_the_channel(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + "p.on('message', print)\n"), timeout=0.5)
    reap(child)
    events = record(child)
    assert child.wait(WAIT) == (None, "SIGTERM")
    names = [e[0] for e in events]
    assert sorted(names) == ["close", "disconnect", "exit"]
    assert events[-1] == ("close", None, "SIGTERM")
    assert child.killed is True


def test_ipc_under_asyncio(tmp_path):
    import asyncio
    path = script(tmp_path, ECHO)

    async def main():
        child = fork(path)
        got = []
        done = asyncio.get_running_loop().create_future()

        def on_message(m):
            got.append(m)
            if len(got) == 3:
                done.set_result(None)

        child.on("message", on_message)
        for m in (1, "two", {"three": 3}):
            child.send(m)
        await asyncio.wait_for(done, WAIT)
        child.send("__bye__")
        return got, await asyncio.wait_for(child, WAIT)

    assert asyncio.run(main()) == ([1, "two", {"three": 3}], (0, None))


LIFETIME_PARENT = """\
import sys, child_process
child = child_process.fork(sys.argv[1])
child.unref()                       # only the process handle
if sys.argv[2] == "unref-channel":
    child.channel.unref()
child.on("message", lambda m: print("got", m, flush=True))
print("end of script", flush=True)
"""

LIFETIME_CHILD = PRELUDE + """\
import time
time.sleep(0.5)
p.send("late")
"""


@pytest.mark.parametrize("mode", ["channel-referenced", "unref-channel"])
def test_parent_program_lives_until_the_channel_closes(tmp_path, mode):
    """At interpreter exit the loop runs while the channel is referenced (SPEC §3, Appendix 37)."""
    parent = script(tmp_path, LIFETIME_PARENT)
    child = script(tmp_path, LIFETIME_CHILD)
    start = time.monotonic()
    proc = subprocess.run([PY, parent, child, mode], capture_output=True, timeout=WAIT)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    if mode == "channel-referenced":
        assert proc.stdout == b"end of script\ngot late\n"
        assert elapsed >= 0.5
    else:
        assert proc.stdout == b"end of script\n"
        time.sleep(0.7)                          # let the orphaned child finish


def test_listener_exception_before_a_malformed_line(tmp_path, reap):
    """A raising listener does not lose the messages after it, nor the 'error' and the close."""
    child = raw_child(tmp_path, """\
        import os
        fd = int(os.environ["NODE_CHANNEL_FD"])
        os.write(fd, b'1\\n2\\n{bad}\\n3\\n')
        os.read(fd, 10)
        """, reap)
    events = record(child)

    def boom(m):
        if m == 1:
            raise ValueError(m)

    child.on("message", boom)
    raised = []
    for _ in range(10):
        try:
            assert child.wait(WAIT) == (0, None)
            break
        except ValueError as exc:
            raised.append(exc.args[0])
    assert raised == [1]
    assert [e for e in events if e[0] not in ("exit", "close")] == [
        ("message", 1), ("message", 2), ("error", "ERR_IPC_BAD_MESSAGE"), ("disconnect",)]
    assert events[-1] == ("close", 0, None)


def test_uncaught_exception_in_a_child_listener_ends_the_child_with_status_1(tmp_path, reap):
    """SPEC §3: an error nobody handled ends the program with status 1, as in Node."""
    child = fork(script(tmp_path, PRELUDE + """
def on_message(m):
    raise ValueError("boom " + m)
p.on("message", on_message)
"""), stdio=["ignore", "ignore", "pipe", "ipc"])
    reap(child)
    err = []
    child.stderr.on("data", err.append)
    child.send("now")
    assert child.wait(WAIT) == (1, None)
    assert b"ValueError: boom now" in b"".join(err)


def test_once_listener_then_queue_again(tmp_path, reap):
    """With only a once-listener, the messages after its first stay queued for the next listener."""
    child = fork(script(tmp_path, PRELUDE + """
for i in (1, 2, 3):
    p.send(i)
p.send({"cmd": "NODE_READY"})
p.on("disconnect", lambda: None)
"""))
    reap(child)
    first, rest = [], []
    child.on("internalMessage", lambda m: child.once("message", first.append))
    assert run_until(lambda: first)
    spin(0.2)
    assert first == [1]
    child.on("message", rest.append)
    assert run_until(lambda: len(rest) == 2)
    assert rest == [2, 3]
    child.disconnect()
    assert child.wait(WAIT) == (0, None)


def test_detached_fork_with_ignored_stdio(tmp_path, reap):
    child = fork(script(tmp_path, PRELUDE + """
p.send([os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid()])
p.on("message", lambda m: p.disconnect())
"""), detached=True, stdio="ignore")
    reap(child)
    assert (child.stdin, child.stdout, child.stderr) == (None, None, None)
    got = []
    child.on("message", got.append)
    assert run_until(lambda: got)
    assert got == [[True, True]]
    child.send("bye")
    assert child.wait(WAIT) == (0, None)


def test_nested_fork_relays_through_a_python_child(tmp_path, reap):
    """A forked child forks its own child: each level has its own channel on fd 3, and the
    middle process's variables do not leak to the grandchild."""
    leaf = script(tmp_path, PRELUDE + """
p.send({"leaf_env": sorted(k for k in os.environ if k.startswith("NODE_CHANNEL")),
        "fd": p.channel.fileno()})
def on_message(m):
    if m == "bye":
        p.disconnect()
    else:
        p.send({"leaf": m})
p.on("message", on_message)
""")
    middle = script(tmp_path, PRELUDE + """
leaf = child_process.fork(sys.argv[1])
leaf.on("message", lambda m: p.send({"via_middle": m}))
def on_message(m):
    if m == "bye":
        leaf.send("bye")
        leaf.on("exit", lambda code, sig: (p.send({"leaf_exit": code}), p.disconnect()))
    else:
        leaf.send(m)
p.on("message", on_message)
""")
    child = fork(middle, [leaf])
    reap(child)
    got = []
    child.on("message", got.append)
    child.send({"x": "\u00e9"})
    assert run_until(lambda: len(got) == 2)
    assert sorted(got, key=json.dumps) == sorted([
        {"via_middle": {"leaf_env": [], "fd": 3}},
        {"via_middle": {"leaf": {"x": "\u00e9"}}}], key=json.dumps)
    child.send("bye")
    assert child.wait(WAIT) == (0, None)
    assert got[-1] == {"leaf_exit": 0}


def test_python_child_under_asyncio_run_is_served_by_asyncio(tmp_path, reap):
    """A child whose main code runs inside asyncio.run() gets its messages there (asyncio
    drives the channel once a listener is added or send() is called inside it)."""
    path = script(tmp_path, """
        import asyncio, child_process
        async def main():
            parent = child_process.parent
            got = asyncio.get_running_loop().create_future()
            parent.on('message', lambda m: got.done() or got.set_result(m))
            parent.send('ready')
            m = await asyncio.wait_for(got, 5)
            parent.send({'echo': m})
            parent.disconnect()
        asyncio.run(main())
    """)
    child = fork(path)
    reap(child)
    messages = []

    def on_message(m):
        messages.append(m)
        if m == "ready":
            child.send("hi")

    child.on("message", on_message)
    assert child.wait(WAIT) == (0, None)
    assert messages == ["ready", {"echo": "hi"}]
