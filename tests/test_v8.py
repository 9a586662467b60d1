"""The 'advanced' format (V8's value serialization, Node 20's advanced IPC mode): the codec
(``child_process._v8``) byte by byte against node-ipc-protocol.md §3, round trips, hostile input,
and the channel between Python processes. docs/v8.md is the mapping under test.

Interop with the real ``node`` binary is in test_v8_interop.py.
"""

from __future__ import annotations

import array
import datetime
import math
import os
import re
import struct
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from child_process import NodeTypeError, fork
from child_process._loop import get_loop
from child_process._serialization import codec
from child_process._v8 import V8DecodeError, v8_decode, v8_encode, v8_encode_frame
from child_process._v8types import JSError, JSRegExp
from child_process import _wire

UTC = datetime.timezone.utc
PY = sys.executable
WAIT = 15.0
MIB = 1024 * 1024


def hx(text: str) -> bytes:
    """Bytes from the hex notation of node-ipc-protocol.md (``'boom'`` quoted ASCII allowed)."""
    out = b""
    for part in re.findall(r"'[^']*'|\S+", text):
        out += part[1:-1].encode() if part.startswith("'") else bytes.fromhex(part)
    return out


# =================================================================================================
# node-ipc-protocol.md §3: the observed payloads
# =================================================================================================

#: (Python value, payload observed from Node 20) where our encoder must write the same bytes.
ENCODED = [
    ({"a": 1}, "ff 0f 6f 22 01 61 49 02 7b 01"),
    ("hi", "ff 0f 22 02 68 69"),
    (42, "ff 0f 49 54"),
    (1.5, "ff 0f 4e 00 00 00 00 00 00 f8 3f"),
    (True, "ff 0f 54"),
    (None, "ff 0f 30"),
    ([1, "x"], "ff 0f 41 02 49 02 22 01 78 24 00 02"),
    (b"\x01\x02\x03", "ff 0f 5c 00 0a 03 01 02 03"),
    (array.array("d", [1.0]), "ff 0f 5c 00 08 08 00 00 00 00 00 00 f0 3f"),
    ({1: "k"}, "ff 0f 3b 49 02 22 01 6b 3a 02"),                 # Map: a non-str key
    ({1}, "ff 0f 27 49 02 2c 01"),
    (datetime.datetime(1970, 1, 1, tzinfo=UTC), "ff 0f 44 00 00 00 00 00 00 00 00"),
    (JSRegExp("ab", 1), "ff 0f 52 22 02 61 62 01"),
    ("\u20ac", "ff 0f 63 02 ac 20"),
    ("a\u20ac", "ff 0f 63 04 61 00 ac 20"),
    # the advanced NODE_HANDLE_ACK (§6.2), without its length prefix
    ({"cmd": "NODE_HANDLE_ACK"}, "ff 0f 6f 22 03 63 6d 64 22 0f 'NODE_HANDLE_ACK' 7b 01"),
]

#: (payload observed from Node 20, what Python gets back) for every row of §3's table.
DECODED = [
    ("ff 0f 6f 22 01 61 49 02 7b 01", {"a": 1}),
    ("ff 0f 22 02 68 69", "hi"),
    ("ff 0f 49 54", 42),
    ("ff 0f 4e 00 00 00 00 00 00 f8 3f", 1.5),
    ("ff 0f 54", True),
    ("ff 0f 30", None),
    ("ff 0f 41 02 49 02 22 01 78 24 00 02", [1, "x"]),
    ("ff 0f 5c 00 0a 03 01 02 03", b"\x01\x02\x03"),
    ("ff 0f 5c 00 01 02 09 08", b"\x09\x08"),
    ("ff 0f 5c 00 08 08 00 00 00 00 00 00 f0 3f", array.array("d", [1.0])),
    ("ff 0f 5c 00 09 02 00 00", bytearray(2)),
    ("ff 0f 3b 22 01 6b 49 02 3a 02", {"k": 1}),
    ("ff 0f 27 49 02 2c 01", {1}),
    ("ff 0f 44 00 00 00 00 00 00 00 00", datetime.datetime(1970, 1, 1, tzinfo=UTC)),
    ("ff 0f 6f 22 01 62 5a 10 0a 00 00 00 00 00 00 00 7b 01", {"b": 10}),
    ("ff 0f 52 22 02 61 62 01", re.compile("ab")),
    ("ff 0f 6f 22 01 75 5f 7b 01", {"u": None}),
    ("ff 0f 63 02 ac 20", "\u20ac"),
    ("ff 0f 63 04 61 00 ac 20", "a\u20ac"),
    ("ff 0f 6f 22 03 'cmd' 22 0b 'NODE_HANDLE' 22 04 'type' 22 0a 'net.Server' 22 03 'msg' "
     "22 03 'srv' 7b 03", {"cmd": "NODE_HANDLE", "type": "net.Server", "msg": "srv"}),
]


def same(a, b) -> bool:
    """Equal *and* of the same types all the way down (NaN equals NaN, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and
                                                     math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, array.array):
        return a.typecode == b.typecode and a.tobytes() == b.tobytes()
    if isinstance(a, BaseException):
        return a.args == b.args
    return a == b


@pytest.mark.parametrize("value,payload", ENCODED, ids=[p for _, p in ENCODED])
def test_encoding_is_byte_exact_with_node(value, payload):
    assert v8_encode(value) == hx(payload)
    frame = v8_encode_frame(value)
    assert frame[:4] == struct.pack(">I", len(hx(payload))) and frame[4:] == hx(payload)


@pytest.mark.parametrize("payload,value", DECODED, ids=[p for p, _ in DECODED])
def test_decoding_of_node_payloads(payload, value):
    got = v8_decode(hx(payload))
    assert same(got, value), (got, value)


def test_decoding_of_a_node_error():
    stack = "Error: boom\n    at Object.<anonymous> (/tmp/x.js:1:7)"
    payload = hx("ff 0f 72 6d 22 04 'boom' 73 22") + bytes([len(stack)]) + stack.encode() + b"."
    err = v8_decode(payload)
    assert isinstance(err, JSError) and not isinstance(err, ValueError)
    assert (err.name, err.message, err.stack, str(err)) == ("Error", "boom", stack, "boom")
    # and back: the same bytes Node wrote
    assert v8_encode(err) == payload


def test_the_channel_codec_is_v8():
    encode, decode, line_framed = codec("advanced")
    assert (encode, decode, line_framed) == (v8_encode_frame, v8_decode, False)


# =================================================================================================
# the mapping, docs/v8.md
# =================================================================================================

@pytest.mark.parametrize("value,expected", [
    (2 ** 31 - 1, "ff 0f 49 fe ff ff ff 0f"),
    (-2 ** 31, "ff 0f 49 ff ff ff ff 0f"),
    (2 ** 31, "ff 0f 4e 00 00 00 00 00 00 e0 41"),           # beyond int32: a double
    (2 ** 53, "ff 0f 4e 00 00 00 00 00 00 40 43"),
    (-2 ** 53, "ff 0f 4e 00 00 00 00 00 00 40 c3"),
    (2 ** 53 + 1, "ff 0f 5a 10 01 00 00 00 00 00 20 00"),     # beyond: a BigInt
    (-(2 ** 70), "ff 0f 5a 21 00 00 00 00 00 00 00 00 40 00 00 00 00 00 00 00"),
    (0.0, "ff 0f 4e 00 00 00 00 00 00 00 00"),                # a float stays a double
    (-0.0, "ff 0f 4e 00 00 00 00 00 00 00 80"),
    (False, "ff 0f 46"),
    ("\xe9", "ff 0f 22 01 e9"),                               # Latin-1: one byte
    ("\U0001f600", "ff 0f 63 04 3d d8 00 de"),                # astral: a surrogate pair
    (["x", "\u20ac"], "ff 0f 41 02 22 01 78 00 63 02 ac 20 24 00 02"),   # padding byte
    ({"b": 1, "1": 2}, "ff 0f 6f 22 01 62 49 02 49 02 49 04 7b 02"),      # index key: number
    ({"3000000000": 1}, "ff 0f 6f 4e 00 00 00 c0 0b 5a e6 41 49 02 7b 01"),
    ({"01": 1, "-1": 2}, "ff 0f 6f 22 02 30 31 49 02 22 02 2d 31 49 04 7b 02"),
    ((), "ff 0f 41 00 24 00 00"),
    (frozenset(), "ff 0f 27 2c 00"),
    (bytearray(b"a"), "ff 0f 5c 00 0a 01 61"),
    (memoryview(b"ab")[1:], "ff 0f 5c 00 0a 01 62"),
    (array.array("b", [-1]), "ff 0f 5c 00 00 01 ff"),
    (array.array("B", [1]), "ff 0f 5c 00 02 01 01"),          # Uint8ClampedArray
    (array.array("h", [1]), "ff 0f 5c 00 03 02 01 00"),
    (array.array("H", [1]), "ff 0f 5c 00 04 02 01 00"),
    (array.array("i", [1]), "ff 0f 5c 00 05 04 01 00 00 00"),
    (array.array("I", [1]), "ff 0f 5c 00 06 04 01 00 00 00"),
    (array.array("f", [1]), "ff 0f 5c 00 07 04 00 00 80 3f"),
    (array.array("q", [1]), "ff 0f 5c 00 0b 08 01 00 00 00 00 00 00 00"),
    (array.array("Q", [1]), "ff 0f 5c 00 0c 08 01 00 00 00 00 00 00 00"),
    (datetime.datetime(1970, 1, 1, 0, 0, 0, 1999), "ff 0f 44 00 00 00 00 00 00 f0 3f"),  # naive=UTC
    (datetime.date(1970, 1, 2), "ff 0f 44 00 00 00 00 70 99 94 41"),
    (re.compile("a.", re.I | re.M | re.S), "ff 0f 52 22 02 61 2e 26"),
    (TypeError("t"), "ff 0f 72 54 6d 22 01 74 73 22 0c 'TypeError: t' 2e"),
    (JSError("r", "RangeError", "S"), "ff 0f 72 52 6d 22 01 72 73 22 01 53 2e"),
])
def test_encoding_of_each_type(value, expected):
    assert v8_encode(value) == hx(expected)


def test_error_with_a_cause_and_a_traceback():
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise ValueError("outer") from inner
    except ValueError as exc:
        err = exc
    got = v8_decode(v8_encode(err))
    assert type(got) is ValueError and got.args == ("outer",)
    assert got.stack.startswith("ValueError: outer\n") and "raise ValueError" in got.stack
    assert type(got.__cause__) is KeyError and got.__cause__.args == ("inner",)
    assert got.cause is got.__cause__


def test_error_names_come_back_as_builtins_else_jserror():
    for cls in (ValueError, KeyError, OSError, ZeroDivisionError, TypeError, SyntaxError):
        got = v8_decode(v8_encode(cls("m")))
        assert type(got) is cls and got.args == ("m",)
    # a name that is no builtin (here a JS-only one) keeps its JS name and V8 prototype tag
    for name in ("EvalError", "RangeError", "URIError", "Error", "MyError"):
        got = v8_decode(v8_encode(JSError("m", name, f"{name}: m")))
        assert type(got) is JSError and (got.name, got.message) == (name, "m")
    # a name that Python has too is that builtin, whatever the JS meaning (docs/v8.md)
    got = v8_decode(v8_encode(JSError("m", "ReferenceError", "ReferenceError: m")))
    assert type(got) is ReferenceError and got.stack == "ReferenceError: m"
    assert v8_encode(got)[:4] == hx("ff 0f 72 46")             # and back: V8's tag F
    # a builtin whose constructor needs other arguments
    err = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")
    got = v8_decode(v8_encode(err))
    assert type(got) is JSError and got.name == "UnicodeDecodeError"


def test_regexps():
    assert v8_decode(v8_encode(re.compile("x", re.I))) == re.compile("x", re.I)
    got = v8_decode(hx("ff 0f 52 22 01 61 bf 01"))        # /a/dgimsuy: g, y, u, d dropped
    assert got == re.compile("a", re.I | re.M | re.S)
    js_only = v8_decode(hx("ff 0f 52 22 07 '(?<n>a)' 01"))  # named group: JS syntax
    assert js_only == JSRegExp("(?<n>a)", 1) and js_only.flag_letters == "g"
    assert v8_encode(js_only) == hx("ff 0f 52 22 07 '(?<n>a)' 01")
    for bad in (re.compile("a", re.X), re.compile("a", re.A), re.compile(b"a")):
        with pytest.raises(TypeError):
            v8_encode(bad)


def test_dates():
    aware = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2)))
    got = v8_decode(v8_encode(aware))
    assert got == aware.replace(microsecond=123000) and got.tzinfo is UTC
    assert v8_decode(hx("ff 0f 44 00 00 00 00 00 00 f8 7f")) is None     # Invalid Date
    with pytest.raises(V8DecodeError, match="datetime range"):
        v8_decode(b"\xff\x0f\x44" + struct.pack("<d", 8.64e15))
    before_epoch = datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert v8_decode(v8_encode(before_epoch)) == before_epoch


def test_numbers_python_gets_back():
    # ints round-trip exactly at every size; V8 doubles beyond int32 that are integral
    # (what Node sends for 2**40) come back as int
    for n in (0, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 31, 2 ** 40, -2 ** 53, 2 ** 53, 2 ** 53 + 1,
              2 ** 64, -(2 ** 200)):
        assert same(v8_decode(v8_encode(n)), n)
    for f in (0.5, -0.0, 3.0, 1e21, 2.0 ** 60, float("inf"), float("-inf"), float("nan")):
        assert same(v8_decode(v8_encode(f)), f)
    assert same(v8_decode(v8_encode(3e9)), 3000000000)        # documented: integral, > int32
    assert same(v8_decode(hx("ff 0f 55 80 80 80 80 08")), 2 ** 31)  # legacy uint32 tag


def test_containers_python_gets_back():
    assert same(v8_decode(v8_encode((1, (2,)))), [1, [2]])
    assert same(v8_decode(v8_encode(frozenset({1}))), {1})
    assert same(v8_decode(v8_encode({})), {})
    assert same(v8_decode(v8_encode({1: {"a": [None]}})), {1: {"a": [None]}})
    assert same(v8_decode(v8_encode({"1": 1, "b": 2})), {"1": 1, "b": 2})
    assert same(v8_decode(v8_encode(bytearray(b"x"))), b"x")
    assert same(v8_decode(v8_encode(array.array("B", b"ab"))), array.array("B", b"ab"))
    assert same(v8_decode(v8_encode(array.array("l", [1]))), array.array("q", [1]))
    # sparse arrays: holes are None; extra named properties of arrays are dropped
    assert v8_decode(hx("ff 0f 61 06 49 0a 49 02 40 01 06")) == [None] * 5 + [1]
    assert v8_decode(hx("ff 0f 61 03 49 00 49 02 49 04 49 06 40 02 03")) == [1, None, 3]
    assert v8_decode(hx("ff 0f 41 01 49 02 22 01 78 49 04 24 01 01")) == [1]
    assert v8_decode(hx("ff 0f 41 02 2d 49 02 24 00 02")) == [None, 1]      # hole tag
    # wrapper objects are their primitives; ArrayBuffer (and a view on it) from V8 itself
    assert v8_decode(hx("ff 0f 41 03 6e 00 00 00 00 00 00 f0 3f 79 7a 10 01 00 00 00 00 00 00 "
                        "00 24 00 03")) == [1.0, True, 1]
    assert v8_decode(hx("ff 0f 73 22 02 61 62")) == "ab"
    assert v8_decode(hx("ff 0f 42 03 00 01 02")) == b"\x00\x01\x02"
    assert v8_decode(hx("ff 0f 42 04 00 01 02 03 56 77 02 02 00")) == array.array("h", [0x302])
    assert v8_decode(hx("ff 0f 53 03 e2 82 ac")) == "\u20ac"              # UTF-8 string tag


def test_lone_surrogates_round_trip():
    for s in ("\ud800", "a\udfff", "\udc00\ud800", "x\ud83d"):
        assert v8_decode(v8_encode(s)) == s
    assert v8_encode("\ud800") == hx("ff 0f 63 02 00 d8")


def test_back_references_in_v8_order():
    shared = {"k": 1}
    assert v8_encode([shared, shared]) == hx("ff 0f 41 02 6f 22 01 6b 49 02 7b 01 5e 01 24 00 02")
    circular = {}
    circular["self"] = circular
    assert v8_encode(circular) == hx("ff 0f 6f 22 04 73 65 6c 66 5e 00 7b 01")
    got = v8_decode(v8_encode(circular))
    assert got["self"] is got
    # Date, Buffer and Error are objects too: each takes an id (Node: [d,d,o,o], [b,b,o])
    d = datetime.datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    o = {}
    assert v8_encode([d, d, o, o]) == hx("ff 0f 41 04 44 00 00 00 00 00 00 f0 3f 5e 01 6f 7b 00 "
                                         "5e 02 24 00 04")
    b = b"a"
    assert v8_encode([b, b, o]) == hx("ff 0f 41 03 5c 00 0a 01 61 5e 01 6f 7b 00 24 00 03")
    # strings and numbers take none
    s = "same"
    assert v8_encode([s, s, o, o]).count(b"same") == 2
    items = [o, [o], (o,), o]
    got = v8_decode(v8_encode(items))
    assert got[0] is got[1][0] is got[2][0] is got[3]
    loop = []
    loop.append([loop])
    got = v8_decode(v8_encode(loop))
    assert got[0][0] is got


def test_unserializable_values_raise_typeerror_naming_the_type():
    for value in (object(), lambda: 0, [1, {"f": print}], {1: Ellipsis}, 1j, array.array("u")):
        with pytest.raises(TypeError) as info:
            v8_encode(value)
        assert "cannot" in str(info.value) or "no JavaScript" in str(info.value)
    with pytest.raises(TypeError, match="complex"):
        v8_encode(1j)


def test_nesting_limit_both_ways():
    deep = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested"):
        v8_encode(deep)
    with pytest.raises(V8DecodeError, match="nested"):
        v8_decode(b"\xff\x0f" + b"\x41\x01" * 100000)
    with pytest.raises(V8DecodeError, match="nested"):
        v8_decode(b"\xff\x0f" + b"\x6f\x22\x01a" * 100000)
    ok = []
    for _ in range(900):
        ok = [ok]
    assert v8_decode(v8_encode(ok)) == ok


# =================================================================================================
# hostile input
# =================================================================================================

@pytest.mark.parametrize("payload,message", [
    ("", "no FF header"),
    ("ff", "no FF header"),
    ("00 0f 30", "no FF header"),
    ("ff 10 30", "version"),
    ("ff 0f", "truncated"),
    ("ff 0f 30 30", "trailing"),
    ("ff 0f 22 05 61", "past the end"),
    ("ff 0f 22 ff ff ff ff 0f", "past the end"),              # 4 GiB string: refused first
    ("ff 0f 63 03 61 00 62", "odd"),
    ("ff 0f 41 ff ff ff ff 0f", "past the end"),              # 4 G elements: refused first
    ("ff 0f 61 ff ff ff ff 0f", "beyond the limit"),          # sparse, 4 G slots
    ("ff 0f 5a ff ff ff ff 0f", "truncated"),                 # BigInt of 2 GiB
    ("ff 0f 5c 00 0a ff ff ff ff 0f", "past the end"),        # Buffer of 4 GiB
    ("ff 0f 5c 07 01 00", "host object kind"),
    ("ff 0f 5c 00 07 03 00 00 00", "whole number"),           # Float32Array of 3 bytes
    ("ff 0f 5c 00 0d 00", "type index"),
    ("ff 0f 49 80 80 80 80 80 80 80 80 80 80 01", "varint"),
    ("ff 0f 5e 00", "back-reference"),
    ("ff 0f 6f 7b 01", "count"),
    ("ff 0f 6f 6f 7b 00 49 02 7b 01", "key of type dict"),
    ("ff 0f 41 01 30 24 00 02", "counts"),
    ("ff 0f 3b 6f 7b 00 30 3a 02", "not hashable"),
    ("ff 0f 27 41 00 24 00 00 2c 01", "not hashable"),
    ("ff 0f 72 6d 49 02 2e", "string was expected"),
    ("ff 0f 72 7a 2e", "Error field"),
    ("ff 0f 2d", "unknown"),
    ("ff 0f 01", "unknown"),
    ("ff 0f 42 02 00 00 56 77 00 04 00", "outside its buffer"),
    ("ff 0f 3f 01 3f 01", "truncated"),
])
def test_malformed_payloads_are_v8decodeerror(payload, message):
    with pytest.raises(V8DecodeError, match=message):
        v8_decode(hx(payload))


def test_decode_error_is_a_valueerror_with_a_position():
    with pytest.raises(ValueError) as info:
        v8_decode(b"\xff\x0f\x22\x05ab")
    assert isinstance(info.value, V8DecodeError) and "at byte 4 of 6" in str(info.value)


def test_huge_lengths_are_refused_before_any_allocation():
    import tracemalloc
    tracemalloc.start()
    try:
        for payload in ("ff 0f 41 fe ff ff ff 0f", "ff 0f 61 fe ff ff ff 0f",
                        "ff 0f 22 fe ff ff ff 0f", "ff 0f 5a fe ff ff ff 0f 00",
                        "ff 0f 5c 00 0a fe ff ff ff 0f"):
            with pytest.raises(V8DecodeError):
                v8_decode(hx(payload))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024
    # a legitimate sparse array (Node's new Array(1000)) of a small message still decodes
    assert v8_decode(hx("ff 0f 61 e8 07 40 00 e8 07")) == [None] * 1000


#: Values whose encodings make the corpus of the mutation fuzz.
CORPUS = [
    {"i": 1, "s": "hello", "l": [1, 2.5, None, True, "\u20ac\U0001f600"]},
    {1: b"\x00\x01", "x": {2, 3}, "d": datetime.datetime(2000, 1, 1, tzinfo=UTC)},
    [re.compile("a+", re.I), JSRegExp("(?<n>x)", 1), ValueError("v"), JSError("e", "RangeError")],
    [array.array("h", [1, 2]), array.array("d", [0.5]), 2 ** 70, -(2 ** 40), frozenset({"a"})],
]


def _decode_or_v8error(data: bytes) -> None:
    try:
        v8_decode(data)
    except V8DecodeError:
        pass


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_bytes_never_crash(data):
    _decode_or_v8error(data)
    _decode_or_v8error(b"\xff\x0f" + data)


@settings(max_examples=1000, deadline=None)
@given(st.data())
def test_mutated_valid_payloads_never_crash(data):
    corpus = [v8_encode(v) for v in CORPUS]
    payload = bytearray(data.draw(st.sampled_from(corpus)))
    for _ in range(data.draw(st.integers(1, 4))):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = data.draw(st.integers(0, len(payload)))
        if kind == "flip" and at < len(payload):
            payload[at] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and at < len(payload):
            payload[at] = data.draw(st.sampled_from([0, 0x7F, 0x80, 0xFF, 0x5E, 0x41, 0x6F]))
        elif kind == "insert":
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del payload[at:at + data.draw(st.integers(1, 4))]
        elif kind == "truncate":
            del payload[at:]
    _decode_or_v8error(bytes(payload))


def test_every_truncation_and_byte_flip_of_the_corpus():
    for value in CORPUS:
        payload = v8_encode(value)
        for cut in range(len(payload)):
            with pytest.raises(V8DecodeError):
                v8_decode(payload[:cut])
        for at in range(len(payload)):
            for bit in range(8):
                mutated = bytearray(payload)
                mutated[at] ^= 1 << bit
                _decode_or_v8error(bytes(mutated))


# =================================================================================================
# round trips (hypothesis)
# =================================================================================================

def expected(value):
    """What Python gets back for ``value`` (docs/v8.md: tuple -> list, frozenset -> set,
    bytearray -> bytes, integral floats beyond int32 within 2**53 -> int, ...)."""
    if isinstance(value, float):
        if 2 ** 31 - 1 < abs(value) <= 2 ** 53 and value == int(value):
            return int(value)
        return value
    if isinstance(value, (list, tuple)):
        return [expected(v) for v in value]
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return {expected(v) for v in value}
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return value


scalars = (st.none() | st.booleans() | st.integers() | st.floats()
           | st.text(max_size=20) | st.text(st.characters(max_codepoint=255), max_size=20)
           | st.binary(max_size=20)
           | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(
               microsecond=d.microsecond // 1000 * 1000))
           | st.lists(st.integers(-2 ** 15, 2 ** 15 - 1)).map(lambda xs: array.array("h", xs))
           | st.lists(st.floats(width=32)).map(lambda xs: array.array("f", xs)))
hashable = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
values = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=5)
                   | st.tuples(inner, inner)
                   | st.dictionaries(st.text(max_size=8), inner, max_size=5)
                   | st.dictionaries(st.integers(), inner, min_size=1, max_size=5)
                   | st.frozensets(hashable, max_size=5)),
    max_leaves=30)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
@example({"i": 1, "s": "hello"})
@example([float("nan"), -0.0, 2 ** 53, -(2 ** 53) - 1, 2.0 ** 40, "\u20ac", b""])
def test_round_trip(value):
    got = v8_decode(v8_encode(value))
    assert same(got, expected(value)), (value, got)


@settings(max_examples=200, deadline=None)
@given(st.lists(values, min_size=1, max_size=6), st.data())
def test_frames_split_at_every_position_decode_identically(messages, data):
    stream = b"".join(v8_encode_frame(m) for m in messages)
    want = [expected(m) for m in messages]
    # one cut anywhere, then a random cutting into many pieces, through the channel's framer
    cut = data.draw(st.integers(0, len(stream)))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(stream)), max_size=12))))
    for pieces in ([stream[:cut], stream[cut:]],
                   [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]):
        framer = _wire.LengthFramer(256 * MIB)
        got = []
        for piece in pieces:
            if piece:
                messages_out, error, _ = framer.feed(piece, v8_decode)
                assert error is None
                got += messages_out
        assert not framer.buffering
        assert len(got) == len(want) and all(same(a, b) for a, b in zip(got, want))


def test_frames_split_at_every_single_position():
    messages = [{"i": 1, "s": "hello"}, ["\u20ac", b"\x00" * 5, {1: {2}}], 2 ** 64, "x"]
    stream = b"".join(v8_encode_frame(m) for m in messages)
    want = [expected(m) for m in messages]
    for cut in range(len(stream) + 1):
        framer = _wire.LengthFramer(256 * MIB)
        got = []
        for piece in (stream[:cut], stream[cut:]):
            if piece:
                out, error, _ = framer.feed(piece, v8_decode)
                assert error is None
                got += out
        assert len(got) == len(want) and all(same(a, b) for a, b in zip(got, want)), cut


def test_framer_refuses_a_huge_prefix_before_allocating():
    framer = _wire.LengthFramer(256 * MIB)
    out, error, _ = framer.feed(b"\xff\xff\xff\xf0", v8_decode)
    assert out == [] and "larger than the channel's limit" in str(error)
    framer = _wire.LengthFramer(256 * MIB)
    out, error, _ = framer.feed(v8_encode_frame(1) + b"\x80\x00", v8_decode)
    assert out == [1] and error is None
    out, error, _ = framer.feed(b"\x00\x00", v8_decode)       # 0x80000000: unsigned, too big
    assert out == [] and error is not None


# =================================================================================================
# between Python processes
# =================================================================================================

PRELUDE = """\
import child_process, json, os, sys
p = child_process.parent
def out(*args):
    sys.stdout.write(json.dumps(list(args), ensure_ascii=True, default=repr) + "\\n")
    sys.stdout.flush()
"""

_counter = [0]


def script(tmp_path, code: str) -> str:
    _counter[0] += 1
    path = tmp_path / f"child_{_counter[0]}.py"
    path.write_text(PRELUDE + textwrap.dedent(code))
    return str(path)


def record(child) -> list:
    events = []
    child.on("message", lambda m: events.append(("message", m)))
    child.on("error", lambda e: events.append(("error", getattr(e, "code", None))))
    child.on("disconnect", lambda: events.append(("disconnect",)))
    return events


RICH = {"none": None, "bools": [True, False], "ints": [0, -1, 2 ** 31, 2 ** 53, 2 ** 100],
        "floats": [1.5, -0.0, float("inf")], "text": ["", "\xe9", "\u20ac\U0001f600", "\ud800"],
        "bytes": b"\x00\xff", "map": {1: "one", 2.5: "x"},
        "set": {1, "a"}, "date": datetime.datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=UTC),
        "re": re.compile("^a.b$", re.M), "err": KeyError("k"),
        "typed": array.array("i", [1, -1]), "nested": [[[]], {"x": [{}]}]}


def test_fork_advanced_messages_both_ways(tmp_path, reap):
    child = fork(script(tmp_path, """
        def on_message(m):
            if m == "bye":
                p.disconnect()
            else:
                p.send(m)
        p.on("message", on_message)
        p.send({"from": "child", "big": 2 ** 64, "t": (1, 2)})
    """), serialization="advanced")
    reap(child)
    events = record(child)
    shared = {"k": [1]}
    child.send(RICH)
    child.send([shared, shared])
    child.send("bye")
    assert child.wait(WAIT) == (0, None)
    messages = [e[1] for e in events if e[0] == "message"]
    assert messages[0] == {"from": "child", "big": 2 ** 64, "t": [1, 2]}
    echo = messages[1]
    assert echo.keys() == RICH.keys()
    for key in RICH:
        if key == "err":
            assert type(echo[key]) is KeyError and echo[key].args == ("k",)
        else:
            assert same(echo[key], expected(RICH[key])), key
    assert messages[2][0] is messages[2][1] and messages[2][0] == shared
    assert events[-1] == ("disconnect",) and len(messages) == 3


def test_python_child_writes_v8_frames_to_its_parent(tmp_path):
    """A child started with NODE_CHANNEL_SERIALIZATION_MODE=advanced by any parent (here raw
    bytes on a socket pair) writes frames of 4-byte length + V8 payload."""
    import socket
    import subprocess
    ours, theirs = socket.socketpair()
    path = script(tmp_path, """
        p.send({"a": 1})
        p.send(["x", "\\u20ac"])
        p.send(b"\\x01\\x02\\x03")
        p.disconnect()
    """)
    env = dict(os.environ, NODE_CHANNEL_FD=str(theirs.fileno()),
               NODE_CHANNEL_SERIALIZATION_MODE="advanced")
    try:
        proc = subprocess.Popen([PY, path], pass_fds=(theirs.fileno(),), env=env)
    finally:
        theirs.close()
    ours.settimeout(WAIT)
    data = b""
    while True:
        chunk = ours.recv(65536)
        if not chunk:
            break
        data += chunk
    ours.close()
    assert proc.wait(WAIT) == 0
    assert data == (v8_encode_frame({"a": 1}) + v8_encode_frame(["x", "\u20ac"])
                    + v8_encode_frame(b"\x01\x02\x03"))
    assert data[:14] == hx("00 00 00 0a ff 0f 6f 22 01 61 49 02 7b 01")


def test_malformed_frame_to_the_parent_is_an_error_after_earlier_messages(tmp_path, reap):
    child = fork(script(tmp_path, """
        from child_process._v8 import v8_encode_frame
        frame = v8_encode_frame({"ok": 1}) + b"\\x00\\x00\\x00\\x03\\xff\\x0f\\x01"
        os.write(p.channel.fd, frame)
        p.on("disconnect", lambda: None)
    """), serialization="advanced")
    reap(child)
    events = record(child)
    errors = []
    child.on("error", errors.append)
    assert child.wait(WAIT) == (0, None)
    assert events == [("message", {"ok": 1}), ("error", "ERR_IPC_BAD_MESSAGE"), ("disconnect",)]
    assert "unknown or unsupported tag 0x01" in str(errors[0])
    assert isinstance(errors[0].__cause__, V8DecodeError)
    assert child.connected is False


def test_malformed_frame_to_the_child_is_an_error_and_closes_its_channel(tmp_path, reap):
    child = fork(script(tmp_path, """
        p.on("message", lambda m: out("message", m))
        p.on("error", lambda e: out("error", e.code, str(e), p.connected))
        p.on("disconnect", lambda: out("disconnect"))
    """), serialization="advanced", stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    chunks = []
    child.stdout.on("data", chunks.append)
    child.send({"first": [1]})
    child.send("second")
    # then raw bytes on the same socket: a frame whose payload is no V8 value
    get_loop().run_until(lambda: not child.channel._queued, WAIT)
    os.write(child.channel.fd, b"\x00\x00\x00\x04\xff\x0f\x41\x05")
    assert child.wait(WAIT) == (0, None)
    import json
    lines = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    assert lines[:2] == [["message", {"first": [1]}], ["message", "second"]]
    assert lines[2][0:2] == ["error", "ERR_IPC_BAD_MESSAGE"] and lines[2][3] is False
    assert "runs past the end" in lines[2][2]
    assert lines[3] == ["disconnect"] and len(lines) == 4


LIMIT_CHILD = """
import resource
def rss_kib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
with open("/proc/self/status") as f:
    vm = next(int(l.split()[1]) for l in f if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, ((vm + 600 * 1024) * 1024, resource.RLIM_INFINITY))
before = rss_kib()
p.on("message", lambda m: out("message", m))
p.on("error", lambda e: out("error", e.code, rss_kib() - before))
p.on("disconnect", lambda: out("disconnect"))
"""


def test_huge_length_prefix_is_refused_before_allocating(tmp_path, reap):
    """A frame announcing 0xFFFFFFF0 bytes: an error at once, no 4 GiB allocation (the child
    runs under an address-space limit that such an attempt would hit)."""
    child = fork(script(tmp_path, LIMIT_CHILD), serialization="advanced",
                 stdio=["ignore", "pipe", "inherit", "ipc"])
    reap(child)
    chunks = []
    child.stdout.on("data", chunks.append)
    child.send("before")
    get_loop().run_until(lambda: not child.channel._queued, WAIT)
    os.write(child.channel.fd, b"\xff\xff\xff\xf0")
    assert child.wait(WAIT) == (0, None)
    import json
    lines = [json.loads(line) for line in b"".join(chunks).decode().splitlines()]
    assert lines[0] == ["message", "before"]
    assert lines[1][:2] == ["error", "ERR_IPC_BAD_MESSAGE"] and lines[1][2] < 20 * 1024
    assert lines[2] == ["disconnect"]


def test_send_of_an_unserializable_value_raises_and_the_channel_goes_on(tmp_path, reap):
    child = fork(script(tmp_path, """
        p.on("message", lambda m: p.disconnect() if m == "bye" else p.send(m))
    """), serialization="advanced")
    reap(child)
    events = record(child)
    with pytest.raises(TypeError, match="object"):
        child.send({"x": object()})
    for bad, kind in ((print, "function"), (2 ** 53 + 1, "bigint"), (-(2 ** 60), "bigint")):
        with pytest.raises(NodeTypeError) as info:
            child.send(bad)
        assert info.value.code == "ERR_INVALID_ARG_TYPE" and kind in str(info.value)
    child.send([2 ** 53 + 1])          # inside a value a BigInt is fine, as in Node
    child.send("bye")
    assert child.wait(WAIT) == (0, None)
    assert [e for e in events if e[0] == "message"] == [("message", [2 ** 53 + 1])]


def test_child_send_of_an_unserializable_value_raises(tmp_path, reap):
    child = fork(script(tmp_path, """
        try:
            p.send({"f": len})
        except TypeError as e:
            p.send(["TypeError", "builtin_function_or_method" in str(e)])
        try:
            p.send(2 ** 80)
        except TypeError as e:
            p.send(["NodeTypeError", e.code])
        p.disconnect()
    """), serialization="advanced")
    reap(child)
    events = record(child)
    assert child.wait(WAIT) == (0, None)
    assert [e[1] for e in events if e[0] == "message"] == [["TypeError", True],
                                                           ["NodeTypeError",
                                                            "ERR_INVALID_ARG_TYPE"]]


def test_internal_messages_in_advanced_mode(tmp_path, reap):
    child = fork(script(tmp_path, """
        p.send({"cmd": "NODE_X", "n": 1})
        p.send({"cmd": "NODE_"})
        p.disconnect()
    """), serialization="advanced")
    reap(child)
    internal, messages = [], []
    child.on("internalMessage", internal.append)
    child.on("message", messages.append)
    assert child.wait(WAIT) == (0, None)
    assert internal == [{"cmd": "NODE_X", "n": 1}] and messages == [{"cmd": "NODE_"}]


def test_eight_megabyte_buffer_both_ways(tmp_path, reap):
    child = fork(script(tmp_path, """
        p.on("message", lambda m: (p.send(m), p.disconnect()))
    """), serialization="advanced")
    reap(child)
    events = record(child)
    payload = os.urandom(8 * MIB)
    child.send({"buf": payload, "n": 1})
    assert child.wait(WAIT) == (0, None)
    assert events[0] == ("message", {"buf": payload, "n": 1})
