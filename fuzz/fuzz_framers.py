#!/usr/bin/env python3
"""atheris (libFuzzer) harness for the IPC channel's decoders and framers.

    python fuzz/fuzz_framers.py seeds fuzz/corpus        # write starting corpora
    python fuzz/fuzz_framers.py <target> [libFuzzer options] [corpus dirs]

targets:
  v8        child_process._v8.v8_decode on the raw input (Node's 'advanced' payload):
            only V8DecodeError may come out.
  line      _wire.LineFramer + the json decoder: the input is split into pieces at points
            taken from its first bytes; the messages (and whether an error ends the stream) must
            equal those of feeding the whole input at once; feed() itself never raises and the
            decoder only raises ValueError/RecursionError.
  length    _wire.LengthFramer + v8_decode, the same split-equivalence check, with a small
            max_frame so the over-limit path is exercised.
  pickle    _wire.LengthFramer + the pickle frame header (buffer count and lengths) with
            pickle.loads replaced by a stub: the framing and size limits only -- pickle.loads of
            hostile bytes is unsafe by design and is never fuzzed.
  all       one of the above per input, chosen by its first byte.

See fuzz/README.md for campaign command lines.  Coverage comes from the Python layer (atheris
instruments Python bytecode); the Cython modules are exercised as black boxes unless rebuilt
with -fsanitize=fuzzer-no-link (README).
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

import atheris  # noqa: E402

with atheris.instrument_imports():
    from child_process import _serialization, _wire
    from child_process._v8 import V8DecodeError, v8_decode

json_decode = _serialization.json_codec()[1]
atheris.instrument_all()        # every pure-Python function loaded so far (json, _serialization)


class Unexpected(Exception):
    pass


def _splits(data: bytes, salt: bytes) -> list:
    """Cut ``data`` at points derived from ``salt``."""
    points = sorted({b * 7 % (len(data) + 1) for b in salt}) if data else []
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return [p for p in pieces if p] or [b""]


def _run(framer_cls, limit, pieces, decode):
    framer = framer_cls(limit)
    messages, error = [], None
    for piece in pieces:
        if not piece:
            continue
        got, err, ends = framer.feed(piece, decode)
        if len(ends) != len(got):
            raise Unexpected(f"{len(got)} messages but {len(ends)} ends")
        messages.extend(got)
        if err is not None:
            error = type(err)
            break
    return messages, error


def _checked(decode, allowed):
    def wrapper(payload):
        try:
            return decode(payload)
        except allowed:
            raise
        except Exception as exc:                       # a finding: report it loudly
            raise SystemExit(f"decoder raised {type(exc).__name__}: {exc!r} "
                             f"on {payload[:80]!r}") from exc
    return wrapper


def target_v8(data: bytes) -> None:
    try:
        v8_decode(data)
    except V8DecodeError:
        pass


def _split_equivalence(framer_cls, limit, decode, data: bytes) -> None:
    salt, body = data[:8], data[8:]
    whole = _run(framer_cls, limit, [body], decode)
    split = _run(framer_cls, limit, _splits(body, salt), decode)
    if repr(whole) != repr(split):
        raise Unexpected(f"split changed the result: {whole!r} vs {split!r}")


def target_line(data: bytes) -> None:
    decode = _checked(json_decode, (ValueError, RecursionError))
    _split_equivalence(_wire.LineFramer, 4096, decode, data)


def target_length(data: bytes) -> None:
    decode = _checked(v8_decode, (V8DecodeError,))
    _split_equivalence(_wire.LengthFramer, 1 << 16, decode, data)


class _NoPickle:
    """Stands in for the pickle module inside pickle_decode: records what would be loaded."""

    @staticmethod
    def loads(body, buffers=()):
        return ("body", bytes(body), [bytes(b) for b in buffers])


def _pickle_decode_framing_only(payload: bytes):
    import pickle as real
    sys.modules["pickle"] = _NoPickle
    try:
        return _serialization.pickle_decode(payload)
    finally:
        sys.modules["pickle"] = real


def target_pickle(data: bytes) -> None:
    import struct
    decode = _checked(_pickle_decode_framing_only, (ValueError, struct.error))
    _split_equivalence(_wire.LengthFramer, 1 << 16, decode, data)


TARGETS = {"v8": target_v8, "line": target_line, "length": target_length,
           "pickle": target_pickle}


def target_all(data: bytes) -> None:
    if not data:
        return
    names = sorted(TARGETS)
    TARGETS[names[data[0] % len(names)]](data[1:])


def write_seeds(directory: str) -> None:
    """Valid frames of every format, the starting corpus (one directory per target)."""
    import array
    import datetime
    import re
    from child_process._v8 import v8_encode
    values = [{"a": 1}, "hi", 42, 1.5, True, None, [1, "x"], b"\x01\x02", {"k": [1, {"n": None}]},
              {1: b"x", "s": {2, 3}}, 2 ** 70, array.array("d", [0.5]), re.compile("a+"),
              datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc), "\u20ac" * 3,
              ValueError("boom"), [None] * 5, {"cmd": "NODE_HANDLE", "type": "net.Socket"}]
    enc_json = _serialization.json_codec()[0]
    seeds = {"v8": [], "line": [], "length": [], "pickle": []}
    for i, v in enumerate(values):
        payload = v8_encode(v)
        seeds["v8"].append(payload)
        seeds["length"].append(bytes([i] * 8) + _wire.frame_length_prefix(payload) * 2)
        try:
            seeds["line"].append(bytes([i] * 8) + enc_json(v) * 2)
        except TypeError:
            pass
        seeds["pickle"].append(bytes([i] * 8) + _serialization.pickle_encode({"v": repr(v)}))
    for name, items in seeds.items():
        os.makedirs(os.path.join(directory, name), exist_ok=True)
        for i, item in enumerate(items):
            with open(os.path.join(directory, name, f"seed{i}"), "wb") as f:
                f.write(item)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "seeds":
        write_seeds(sys.argv[2])
        return
    if len(sys.argv) < 2 or sys.argv[1] not in list(TARGETS) + ["all"]:
        sys.exit(__doc__)
    name = sys.argv.pop(1)
    fn = target_all if name == "all" else TARGETS[name]
    atheris.Setup(sys.argv, fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
