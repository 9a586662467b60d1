"""Fuzzing (issue 9), hypothesis-driven: every framer and decoder of the IPC channel, fed random
bytes and valid streams cut at every split point, never crashes and only ever reports the
documented errors.

- ``_wire.LineFramer`` (json) and ``_wire.LengthFramer`` (advanced, pickle): ``feed()`` never
  raises; a decoder's exception and an over-limit frame come back as the error value; the result
  of feeding a stream in pieces equals the result of feeding it whole.
- decoders via ``child_process._serialization.codec(mode)``: json raises only ValueError (or
  RecursionError for absurd nesting), advanced only ``V8DecodeError``.
- pickle: only the framing and size limits (the frame header is parsed with ``pickle.loads``
  stubbed out): unpickling hostile bytes is unsafe by design and is never attempted.
- the real ``Channel`` (a ``Parent`` on a socket pair, in this process): random chunks end in
  messages, at most one 'error' ERR_IPC_BAD_MESSAGE, and exactly one 'disconnect'.

With ``--long`` (or CHILD_PROCESS_LONG_TESTS=1) every property runs twenty times as many
examples.  The longer, coverage-guided campaign is fuzz/fuzz_framers.py (atheris,
fuzz/README.md).
"""

from __future__ import annotations

import socket
import struct
import sys
import tracemalloc

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from child_process import _serialization, _wire
from child_process._ipc import Parent
from child_process._serialization import codec
from child_process._v8 import V8DecodeError, v8_decode

from ._util import run_until

from .conftest import LONG

#: --long / CHILD_PROCESS_LONG_TESTS=1: twenty times the examples
SCALE = 20 if LONG["enabled"] else 1
FAST = settings(max_examples=400 * SCALE, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=80 * SCALE, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

json_encode, json_decode, _ = codec("json")
v8_frame, _v8_decode, _ = codec("advanced")
pickle_frame, _pickle_decode, _ = codec("pickle")

#: values every mode can carry
PLAIN = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 31, 2 ** 31) | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)

#: bytes rich in what framers look at: newlines, quotes, brackets, length-prefix bytes
NOISY = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"\n", b'"', b"{", b"}", b"[", b"]", b"1", b"\x00", b"\xff", b"\x0f",
                     b"\xff\x0f", b"\x00\x00\x00\x03", b"o", b"\"a\":", b"\xc3", b"\xa9"]),
    max_size=80).map(b"".join)


def json_checked(line: bytes):
    try:
        return json_decode(line)
    except (ValueError, RecursionError):
        raise
    except Exception as exc:
        pytest.fail(f"json decoder raised {type(exc).__name__}: {exc!r}")


def v8_checked(payload: bytes):
    try:
        return v8_decode(payload)
    except V8DecodeError:
        raise
    except Exception as exc:
        pytest.fail(f"v8 decoder raised {type(exc).__name__}: {exc!r}")


def feed_all(framer, pieces, decode) -> tuple:
    """(messages, error type or None) from feeding ``pieces``; feed() must never raise."""
    messages = []
    for piece in pieces:
        got, err, ends = framer.feed(piece, decode)
        assert len(ends) == len(got)
        assert all(0 < e <= len(piece) for e in ends), (ends, len(piece))
        messages.extend(got)
        if err is not None:
            return messages, type(err)
    return messages, None


def cut(data: bytes, points) -> list:
    points = sorted({p % (len(data) + 1) for p in points})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return [p for p in pieces if p]


# =================================================================================================
# framers: random bytes, split equivalence
# =================================================================================================

@FAST
@given(data=NOISY, points=st.lists(st.integers(0, 400), max_size=12),
       limit=st.sampled_from([-1, 0, 5, 64, 4096]))
@example(data=b"[" * 900 + b"]" * 900 + b"\n", points=[450], limit=-1)
def test_line_framer_random_bytes_split_anywhere(data, points, limit):
    whole = feed_all(_wire.LineFramer(limit), [data] if data else [], json_checked)
    split = feed_all(_wire.LineFramer(limit), cut(data, points), json_checked)
    assert repr(split) == repr(whole)
    if whole[1] is not None:
        assert issubclass(whole[1], (ValueError, RecursionError))


@FAST
@given(data=NOISY, points=st.lists(st.integers(0, 400), max_size=12),
       limit=st.sampled_from([0, 3, 64, 1 << 16, 1 << 30]))
@example(data=b"\xff\xff\xff\xf0" + b"\x00" * 10, points=[1, 2, 3], limit=1 << 30)
@example(data=b"\x80\x00\x00\x00", points=[2], limit=1 << 30)
def test_length_framer_random_bytes_split_anywhere(data, points, limit):
    whole = feed_all(_wire.LengthFramer(limit), [data] if data else [], v8_checked)
    split = feed_all(_wire.LengthFramer(limit), cut(data, points), v8_checked)
    assert repr(split) == repr(whole)
    if whole[1] is not None:
        assert issubclass(whole[1], ValueError)


@pytest.mark.parametrize("mode", ["json", "advanced", "pickle"])
def test_every_single_split_point_of_a_valid_stream(mode):
    """A stream of several frames (multi-byte UTF-8, a 70 KiB message, empty containers), cut
    at each of its byte offsets in turn: always the same messages, in order, no error."""
    encode, decode, line = codec(mode)
    messages = [{"a": 1}, "é€😀\u2028", [], {}, 0, None, True, {"big": "ß" * 35000}, [1, [2, [3]]],
                {"cmd": "NODE_X"}, "tail"]
    stream = b"".join(encode(m) for m in messages)
    framer_cls = _wire.LineFramer if line else _wire.LengthFramer
    limit = 1 << 20
    step = 1 if len(stream) < 5000 else 97       # every offset around the small frames ...
    offsets = set(range(0, 400)) | set(range(0, len(stream), step)) | set(
        range(len(stream) - 400, len(stream) + 1))   # ... and the end of the big one
    for at in sorted(offsets):
        got, err = feed_all(framer_cls(limit), [stream[:at], stream[at:]], decode)
        assert err is None and got == messages, at


@SLOW
@given(messages=st.lists(PLAIN, min_size=1, max_size=8),
       points=st.lists(st.integers(0, 10 ** 6), max_size=20),
       mode=st.sampled_from(["json", "advanced", "pickle"]))
def test_valid_streams_cut_anywhere_round_trip(messages, points, mode):
    encode, decode, line = codec(mode)
    stream = b"".join(encode(m) for m in messages)
    framer = (_wire.LineFramer if line else _wire.LengthFramer)(1 << 20)
    got, err = feed_all(framer, cut(stream, points), decode)
    assert err is None
    assert framer.buffering is False
    if mode == "json":     # json has no tuples; floats like 1e16 stay floats
        assert got == messages
    else:
        assert got == messages


@pytest.mark.parametrize("framer", ["line", "length"])
def test_framers_never_allocate_for_what_is_only_announced(framer):
    """0xFFFFFFF0 announced, or a line that never ends: nothing close to it is allocated."""
    tracemalloc.start()
    try:
        if framer == "length":
            f = _wire.LengthFramer(256 << 20)
            got, err, _ = f.feed(b"\xff\xff\xff\xf0" + b"\x00" * 100, v8_checked)
            assert err is not None and not got
            f = _wire.LengthFramer(256 << 20)
            for _ in range(64):       # 0x0FFFFFF0 is under the limit: held bytes = bytes sent
                got, err, _ = f.feed(b"\x0f\xff\xff\xf0" if _ == 0 else b"\x00" * 4096, v8_checked)
                assert err is None and not got
        else:
            f = _wire.LineFramer(1 << 20)
            for i in range(600):  # noqa: B007 - the count is checked below
                got, err, _ = f.feed(b"x" * 4096, json_checked)
                if err is not None:
                    break
            assert err is not None and i < 300
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


# =================================================================================================
# decoders
# =================================================================================================

@FAST
@given(NOISY)
@example(b"[" * 100000)
@example(b'{"a":' * 3000)
@example(b"1e999999")
@example(b"-" + b"9" * 5000)
@example(b'"\\ud800"')
@example(b"NaN")
def test_json_decoder_raises_only_valueerror(data):
    try:
        json_decode(data)
    except (ValueError, RecursionError):
        pass


@FAST
@given(NOISY)
def test_v8_decoder_raises_only_v8decodeerror(data):
    for payload in (data, b"\xff\x0f" + data, b"\xff\x0f" + data[::-1]):
        try:
            _v8_decode(payload)
        except V8DecodeError:
            pass


class _NoPickle:
    """Replaces the pickle module inside pickle_decode: records, never unpickles."""
    loads_calls: list = []  # noqa: RUF012 - a record shared on purpose

    @staticmethod
    def loads(body, buffers=()):
        _NoPickle.loads_calls.append((bytes(body), [bytes(b) for b in buffers]))
        return "stub"


@FAST
@given(count=st.integers(0, 2 ** 32 - 1) | st.integers(0, 5),
       lengths=st.lists(st.integers(0, 2 ** 64 - 1) | st.integers(0, 40), max_size=6),
       tail=st.binary(max_size=60))
def test_pickle_frame_header_is_checked_before_unpickling(count, lengths, tail):
    """The pickle frame header (buffer count, buffer lengths) of a hostile peer: a header that
    does not fit the frame is a ValueError/struct.error; one that fits hands pickle.loads
    exactly the body and buffers it describes, inside the frame."""
    payload = struct.pack(">I", count) + b"".join(struct.pack(">Q", n) for n in lengths) + tail
    _NoPickle.loads_calls.clear()
    real = sys.modules["pickle"]
    sys.modules["pickle"] = _NoPickle      # pickle_decode imports it at each call
    try:
        _serialization.pickle_decode(payload)
    except (ValueError, struct.error):
        assert not _NoPickle.loads_calls
        return
    finally:
        sys.modules["pickle"] = real
    (body, buffers), = _NoPickle.loads_calls
    assert len(buffers) == count
    header = 4 + 8 * count
    assert len(body) + sum(map(len, buffers)) == len(payload) - header
    assert payload.endswith(b"".join(buffers))


@SLOW
@given(frames=st.lists(st.binary(max_size=50), max_size=6),
       lie=st.one_of(st.none(), st.integers(4, 2 ** 32 - 1)),   # more than the 3 bytes sent
       points=st.lists(st.integers(0, 1000), max_size=8),
       limit=st.sampled_from([10, 1000, 1 << 30]))
def test_length_framer_boundaries_and_limit(frames, lie, points, limit):
    """Frames of any content (pickle's framing, with a recording decoder): payloads come back
    exactly; a final lying prefix is either waited for or refused against the limit."""
    stream = b"".join(_wire.frame_length_prefix(f) for f in frames)
    if lie is not None:
        stream += struct.pack(">I", lie) + b"\x00" * 3
    got, err = feed_all(_wire.LengthFramer(limit), cut(stream, points), lambda p: p)
    expected = []
    for f in frames:
        if len(f) > limit:
            break
        expected.append(f)
    assert got == expected
    over = len(expected) < len(frames) or (lie is not None and lie > limit)
    assert (err is not None) == over


# =================================================================================================
# the real channel, in this process
# =================================================================================================

def _channel_events(mode: str, chunks: list) -> list:
    """A Parent channel on one end of a socket pair; ``chunks`` written to the other end, which
    is then closed; every event, until 'disconnect'."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    fd = ours.detach()
    parent = Parent(fd, mode)
    events = []
    parent.on("message", lambda m: events.append(("message", m)))
    parent.on("error", lambda e: events.append(("error", getattr(e, "code", None))))
    parent.on("disconnect", lambda: events.append(("disconnect",)))
    try:
        for chunk in chunks:
            theirs.sendall(chunk)
            run_until(lambda: False, 0)
    except (BrokenPipeError, ConnectionResetError):
        pass                          # the channel refused our stream and closed
    finally:
        theirs.close()
    assert run_until(lambda: ("disconnect",) in events, 10)
    assert parent.channel is None
    return events


def _check_channel(events, reference):
    messages, err = reference
    assert events[-1] == ("disconnect",) and events.count(("disconnect",)) == 1
    errors = [e for e in events if e[0] == "error"]
    got = [e[1] for e in events if e[0] == "message"]
    if err is None:
        assert errors == [] and got == messages
    else:
        assert errors == [("error", "ERR_IPC_BAD_MESSAGE")]
        assert got == messages            # everything before the bad frame, nothing after


@SLOW
@given(data=NOISY, points=st.lists(st.integers(0, 400), max_size=6))
def test_json_channel_random_chunks(data, points):
    events = _channel_events("json", cut(data, points))
    _check_channel(events, feed_all(_wire.LineFramer(256 << 20), [data] if data else [],
                                    json_decode))


@SLOW
@given(data=NOISY, points=st.lists(st.integers(0, 400), max_size=6),
       good=st.lists(PLAIN, max_size=3))
def test_advanced_channel_random_chunks(data, points, good):
    stream = b"".join(v8_frame(m) for m in good) + data
    events = _channel_events("advanced", cut(stream, points))
    _check_channel(events, feed_all(_wire.LengthFramer(256 << 20), [stream], v8_decode))


@SLOW
@given(good=st.lists(PLAIN, max_size=4), points=st.lists(st.integers(0, 2000), max_size=6),
       tail=st.sampled_from(["none", "truncated", "lie", "count"]))
def test_pickle_channel_valid_frames_then_damage(good, points, tail):
    """pickle: valid frames of our own, then a truncated frame, a lying prefix (over the 256
    MiB limit) or a header whose buffer count runs past the frame -- framing damage only."""
    stream = b"".join(pickle_frame(m) for m in good)
    if tail == "truncated":
        stream += pickle_frame({"x": "y" * 100})[:-10]
    elif tail == "lie":
        stream += b"\xff\xff\xff\xf0" + b"\x00" * 16
    elif tail == "count":
        stream += _wire.frame_length_prefix(struct.pack(">I", 9) + b"\x00" * 8)
    events = _channel_events("pickle", cut(stream, points))
    expected_error = tail in ("lie", "count")
    _check_channel(events, (good, ValueError if expected_error else None))
