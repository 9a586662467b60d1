"""The message codecs of the IPC channel: Node's 'json' (one line of compact UTF-8 JSON per
message) and our 'pickle' (trusted peers only). 'advanced' (V8's format) lives in ``_v8``.

Each codec is a pair ``encode(message) -> frame bytes`` / ``decode(frame payload) -> message``;
framing (newline or length prefix) is split by ``_wire``.
"""

from __future__ import annotations

import struct
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    import pickle
    from typing import Any, Callable

from ._errors import NodeTypeError

# json, orjson and datetime are imported on first use: a forked child should start fast.


# -- json -------------------------------------------------------------------------------------

def _node_json_default(value: Any) -> Any:
    """What JSON.stringify would make of the Python types Node has counterparts for."""
    import datetime as _dt
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "Buffer", "data": list(bytes(value))}   # Buffer.prototype.toJSON
    if isinstance(value, _dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(_dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="milliseconds") + "Z"    # Date.prototype.toJSON
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    raise NodeTypeError("ERR_INVALID_ARG_TYPE",
                        f"Object of type {type(value).__name__} cannot be sent as JSON")


def _finite(value: Any) -> Any:
    """NaN and infinities become null, as JSON.stringify makes them (Node would crash on NaN)."""
    import math
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class _JsonCodec:
    """Node's JSON lines. ``encode``/``decode`` are whole; the Outbox and the framers call the
    fast pieces themselves (orjson, when installed) and fall back only when those refuse."""

    __slots__ = ("encode", "decode", "fast_encode", "encode_args", "encode_fallback",
                 "fast_decode", "decode_fallback")

    def __init__(self) -> None:
        import json as _json
        dumps = _json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                                  default=_node_json_default).encode
        dumps_ascii = _json.JSONEncoder(ensure_ascii=True, separators=(",", ":"),
                                        allow_nan=False, default=_node_json_default).encode

        def stdlib_encode(message: Any) -> bytes:
            try:
                text = dumps(message)
            except ValueError as exc:
                if "Out of range float" not in str(exc):
                    raise
                text = dumps(_finite(message))
            try:
                return text.encode("utf-8") + b"\n"
            except UnicodeEncodeError:     # lone surrogates: escaped, as JSON.stringify does
                return dumps_ascii(_finite(message)).encode("ascii") + b"\n"

        def stdlib_decode(line: bytes) -> Any:
            # Node's decoder makes invalid UTF-8 U+FFFD; NaN/Infinity tokens and huge ints load
            return _json.loads(line.decode("utf-8", "replace"))

        self.encode: Callable[[Any], bytes] = stdlib_encode
        self.decode: Callable[[bytes], Any] = stdlib_decode
        self.fast_encode: Callable[..., bytes] = stdlib_encode
        self.encode_args: tuple[Any, ...] = ()
        self.encode_fallback: Callable[[Any], bytes] | None = None
        self.fast_decode: Callable[[bytes], Any] = stdlib_decode
        self.decode_fallback: Callable[[bytes], Any] | None = None
        try:  # the fastest encoder available; optional
            import orjson
        except ImportError:  # pragma: no cover - depends on the environment
            return
        options = (orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
                   | orjson.OPT_APPEND_NEWLINE)
        orjson_dumps, orjson_loads = orjson.dumps, orjson.loads

        def encode(message: Any) -> bytes:
            try:
                frame: bytes = orjson_dumps(message, _node_json_default, options)
            except TypeError:
                # lone surrogates, ints beyond 64 bits, subclasses orjson refuses: stdlib can
                return stdlib_encode(message)
            return frame

        def decode(line: bytes) -> Any:
            try:
                return orjson_loads(line)
            except orjson.JSONDecodeError:
                return stdlib_decode(line)

        self.encode, self.decode = encode, decode
        # orjson.dumps(message, default, option), called by the Outbox without a wrapper
        self.fast_encode, self.encode_args = orjson_dumps, (_node_json_default, options)
        self.encode_fallback = stdlib_encode
        self.fast_decode, self.decode_fallback = orjson_loads, stdlib_decode


_json_codec: _JsonCodec | None = None


def _json() -> _JsonCodec:
    global _json_codec
    if _json_codec is None:
        _json_codec = _JsonCodec()
    return _json_codec


def json_codec() -> tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    codec = _json()
    return codec.encode, codec.decode


def encoders(serialization: str) -> tuple[Callable[..., bytes], Callable[[Any], bytes] | None,
                                          tuple[Any, ...]]:
    """(encode, fallback, args) for a channel's Outbox: the fastest encoder, called as
    ``encode(message, *args)``, and what to try when it raises TypeError."""
    if serialization == "json":
        json = _json()
        return json.fast_encode, json.encode_fallback, json.encode_args
    return codec(serialization)[0], None, ()


def decoders(serialization: str) -> tuple[Callable[[bytes], Any], Callable[[bytes], Any] | None]:
    """(decode, fallback) for a channel's framer: the fastest decoder, and what to try when it
    raises (orjson refuses NaN tokens, huge ints and invalid UTF-8, which Node's JSON allows)."""
    if serialization == "json":
        json = _json()
        return json.fast_decode, json.decode_fallback
    return codec(serialization)[1], None


def json_encode(message: Any) -> bytes:
    return json_codec()[0](message)


def json_decode(line: bytes) -> Any:
    return json_codec()[1](line)


_JSON_TOP_TYPES = frozenset((dict, list, str, int, float, bool, type(None), tuple, bytes))


def json_check_message(message: Any) -> None:
    """Node's top-level type rule for send(): strings, objects, numbers, booleans, null."""
    if type(message) in _JSON_TOP_TYPES:
        return
    if message is None or isinstance(message, (str, int, float, bool, dict, list, tuple, bytes,
                                               bytearray, memoryview)):
        return
    import datetime as _dt
    if isinstance(message, _dt.date):
        return
    raise NodeTypeError("ERR_INVALID_ARG_TYPE",
                        'The "message" argument must be one of type string, object, number, or '
                        f"boolean. Received type {type(message).__name__}")


#: Beyond this magnitude an int travels as a BigInt, which Node refuses as a whole message.
_MAX_SAFE_INT = 2 ** 53


def advanced_check_message(message: Any) -> None:
    """Node's top-level type rule in 'advanced' mode: no bigint (an int beyond ±2**53 would be
    one), no function; anything else goes to the encoder, which raises TypeError for a type
    V8's format cannot carry."""
    if type(message) is int and -_MAX_SAFE_INT <= message <= _MAX_SAFE_INT:
        return
    if isinstance(message, int) and not isinstance(message, bool) and (
            message > _MAX_SAFE_INT or message < -_MAX_SAFE_INT):
        kind = "bigint"
    elif callable(message) and not isinstance(message, BaseException):
        kind = "function"
    else:
        return
    raise NodeTypeError("ERR_INVALID_ARG_TYPE",
                        'The "message" argument must be one of type string, object, number, or '
                        f"boolean. Received type {kind} ({message!r:.40})")


def check_message(serialization: str, message: Any) -> None:
    """The type check send() makes before anything else, per mode (pickle: none)."""
    if serialization == "json":
        json_check_message(message)
    elif serialization == "advanced":
        advanced_check_message(message)


# -- pickle -----------------------------------------------------------------------------------
# frame payload: u32 count of out-of-band buffers, u64 length of each, the pickle, the buffers

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


def pickle_encode(message: Any) -> bytes:
    import pickle
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    header = _U32.pack(len(raws)) + b"".join(_U64.pack(r.nbytes) for r in raws)
    payload = header + data + b"".join(bytes(r) for r in raws) if raws else header + data
    if len(payload) > 0xFFFFFFFF:
        raise ValueError("message too large for one frame (4 GiB)")
    return _U32.pack(len(payload)) + payload


def pickle_decode(payload: bytes) -> Any:
    import pickle
    view = memoryview(payload)
    (count,) = _U32.unpack_from(view, 0)
    offset = 4
    lengths = []
    for _ in range(count):
        (n,) = _U64.unpack_from(view, offset)
        lengths.append(n)
        offset += 8
    total = sum(lengths)
    body_end = len(view) - total
    if body_end < offset:
        raise ValueError("corrupt pickle frame")
    buffers = []
    position = body_end
    for n in lengths:
        buffers.append(view[position:position + n])
        position += n
    return pickle.loads(view[offset:body_end], buffers=buffers)


def codec(serialization: str) -> tuple[Callable[[Any], bytes], Callable[[bytes], Any], bool]:
    """(encode, decode, line_framed) for a serialization mode."""
    if serialization == "json":
        encode, decode = json_codec()
        return encode, decode, True
    if serialization == "pickle":
        return pickle_encode, pickle_decode, False
    if serialization == "advanced":
        try:
            from ._v8 import v8_decode, v8_encode_frame
        except ImportError:
            from ._errors import NodeValueError
            raise NodeValueError("ERR_FEATURE_UNAVAILABLE",
                                 "serialization 'advanced' (V8's format) is not implemented "
                                 "yet in this version; use 'json' or 'pickle'") from None
        return v8_encode_frame, v8_decode, False
    raise ValueError(serialization)
