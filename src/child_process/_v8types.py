"""Policy of the 'advanced' (V8) format for the values that are not plain data: which Python
type a Date, RegExp, Error or typed array becomes, and what a Python object is sent as.

The Cython codec (``_v8``) handles None, bools, numbers, strings, bytes, lists, dicts and sets
itself; for everything else it calls ``describe()`` (encoding) or one of the ``make_*``
functions (decoding). These run rarely, so they stay readable Python; the mapping is the table
in docs/v8.md.
"""

from __future__ import annotations

import builtins as _builtins

# datetime, re, array and traceback are imported on first use: a forked child starts fast.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import array
    import datetime
    import re

#: ArrayBufferView type indexes of Node's channel serializer -> array.array typecode (None:
#: handled elsewhere). 1 (Uint8Array) and 10 (Buffer) are bytes; 9 (DataView) is a bytearray.
_VIEW_TYPECODES = {0: "b", 2: "B", 3: "h", 4: "H", 5: "i", 6: "I", 7: "f", 8: "d",
                   11: "q", 12: "Q"}
DATAVIEW = 9
BUFFER = 10

#: V8's error prototype tags (the byte after 'r') <-> the JS constructor names.
_ERROR_TAGS = {"E": "EvalError", "R": "RangeError", "F": "ReferenceError", "S": "SyntaxError",
               "T": "TypeError", "U": "URIError"}
_ERROR_TAG_OF = {name: ord(tag) for tag, name in _ERROR_TAGS.items()}

#: RegExp flag bits as V8 stores them.
RE_GLOBAL, RE_IGNORECASE, RE_MULTILINE, RE_STICKY, RE_UNICODE, RE_DOTALL = 1, 2, 4, 8, 16, 32
RE_HAS_INDICES, RE_UNICODE_SETS = 128, 256
_FLAG_LETTERS = [(RE_HAS_INDICES, "d"), (RE_GLOBAL, "g"), (RE_IGNORECASE, "i"),
                 (RE_MULTILINE, "m"), (RE_DOTALL, "s"), (RE_UNICODE, "u"),
                 (RE_UNICODE_SETS, "v"), (RE_STICKY, "y")]

#: Kinds returned by describe() to the encoder.
KIND_VIEW, KIND_DATE, KIND_REGEXP, KIND_ERROR = 0, 1, 2, 3


class JSError(Exception):
    """A JavaScript error with no Python builtin of the same name (``Error``, ``RangeError``,
    ``EvalError``, ``ReferenceError``, ``URIError``, or a custom name). ``name``, ``message``
    and ``stack`` are JavaScript's; sent back, it becomes the same JS error type again."""

    def __init__(self, message: str = "", name: str = "Error", stack: object = None):
        super().__init__(message)
        self.message = message
        self.name = name
        self.stack = stack

    def __repr__(self) -> str:
        return f"JSError({self.message!r}, name={self.name!r})"

    def __str__(self) -> str:
        return self.message


class JSRegExp:
    """A JavaScript RegExp that Python's ``re`` cannot compile (JS-only syntax such as
    ``\\u{…}`` or ``(?<name>…)``): its ``source`` and V8 ``flags`` bits, sent back unchanged."""

    __slots__ = ("source", "flags")

    def __init__(self, source: str, flags: int = 0):
        self.source = source
        self.flags = flags

    @property
    def flag_letters(self) -> str:
        return "".join(letter for bit, letter in _FLAG_LETTERS if self.flags & bit)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, JSRegExp) and self.source == other.source
                and self.flags == other.flags)

    def __hash__(self) -> int:
        return hash((self.source, self.flags))

    def __repr__(self) -> str:
        return f"JSRegExp(/{self.source}/{self.flag_letters})"


# -- decoding ---------------------------------------------------------------------------------

def make_view(type_index: int, data: bytes) -> object:
    """A typed array (other than Uint8Array/Buffer, which are bytes) or a DataView."""
    if type_index == DATAVIEW:
        return bytearray(data)
    code = _VIEW_TYPECODES.get(type_index)
    if code is None:
        raise ValueError(f"unknown ArrayBufferView type index {type_index}")
    import array
    if code == "i" and array.array("i").itemsize != 4:     # pragma: no cover - exotic ABIs
        code = "l"
    elif code == "I" and array.array("I").itemsize != 4:   # pragma: no cover
        code = "L"
    result = array.array(code)
    if len(data) % result.itemsize:
        raise ValueError(f"typed array of {len(data)} bytes is not a whole number of "
                         f"{result.itemsize}-byte elements")
    result.frombytes(data)
    return result


def make_date(ms: float) -> object:
    """A Date: an aware UTC datetime (millisecond precision); an invalid Date is None."""
    if ms != ms:
        return None
    import datetime as _dt
    try:
        return _epoch() + _dt.timedelta(milliseconds=ms)
    except OverflowError:
        raise ValueError(f"Date {ms!r} ms is outside Python's datetime range") from None


def _epoch() -> datetime.datetime:
    import datetime as _dt
    return _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def make_regexp(source: str, flags: int) -> object:
    """re.Pattern when Python's re compiles the source (flags i, m, s kept; g, y, u, d, v have no
    meaning for a Python pattern and are dropped); else a JSRegExp."""
    import re
    pyflags = 0
    if flags & RE_IGNORECASE:
        pyflags |= re.IGNORECASE
    if flags & RE_MULTILINE:
        pyflags |= re.MULTILINE
    if flags & RE_DOTALL:
        pyflags |= re.DOTALL
    try:
        return re.compile(source, pyflags)
    except (re.error, ValueError, OverflowError, RecursionError):
        return JSRegExp(source, flags)


def _stack_name(stack: object) -> object:
    """The error name a stack starts with (``Name: message`` on the first line), if any."""
    if not isinstance(stack, str):
        return None
    first = stack.split("\n", 1)[0]
    head = first.split(":", 1)[0].strip() if ":" in first else first.strip()
    return head if head.isidentifier() else None


def make_error(tag: int, message: object, stack: object, cause: object,
               has_cause: bool) -> BaseException:
    """An Error: the Python builtin exception its stack names (how a Python exception survives
    a round trip), else TypeError/SyntaxError from V8's prototype tag, else JSError."""
    js_name = _ERROR_TAGS.get(chr(tag), "Error") if tag else "Error"
    if message is None:
        message = ""
    name = _stack_name(stack)
    exc: BaseException | None = None
    for candidate in (name, js_name):
        cls = getattr(_builtins, candidate, None) if isinstance(candidate, str) else None
        if isinstance(cls, type) and issubclass(cls, BaseException):
            try:
                exc = cls(message)
                break
            except Exception:
                continue
    if exc is None:     # V8's prototype tag names it; without one, the stack's first line
        exc = JSError(str(message), js_name if tag else str(name or "Error"), stack)
    elif stack is not None:
        exc.stack = stack           # type: ignore[attr-defined]  # Node's err.stack, kept
    if has_cause:
        exc.cause = cause           # type: ignore[attr-defined]  # Node's err.cause, kept
        if isinstance(cause, BaseException):
            exc.__cause__ = cause
    return exc


# -- encoding ---------------------------------------------------------------------------------

def describe(value: object) -> tuple[object, ...]:
    """What a value the encoder has no fast path for is sent as: (KIND_VIEW, type index, buffer),
    (KIND_DATE, ms), (KIND_REGEXP, source, flags), (KIND_ERROR, tag, message, stack[, cause]).
    Anything else raises TypeError naming the type."""
    import datetime as _dt
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=_dt.timezone.utc)      # naive = UTC, as in 'json'
        delta = value - _epoch()
        return KIND_DATE, float(delta.days * 86400000 + delta.seconds * 1000
                                + delta.microseconds // 1000)
    if isinstance(value, _dt.date):
        return KIND_DATE, float((value - _dt.date(1970, 1, 1)).days * 86400000)
    if isinstance(value, BaseException):
        return _describe_error(value)
    if isinstance(value, JSRegExp):
        return KIND_REGEXP, value.source, value.flags
    import re
    if isinstance(value, re.Pattern):
        return _describe_pattern(value)
    import array
    if isinstance(value, array.array):
        return KIND_VIEW, _view_index(value), value
    raise TypeError(f"Object of type {type(value).__name__} cannot be serialized in the "
                    "'advanced' (V8) format")


def _view_index(value: array.array[Any]) -> int:
    code, size = value.typecode, value.itemsize
    if code in "fd":
        return 7 if size == 4 else 8
    if code in "bhilq":
        index = {1: 0, 2: 3, 4: 5, 8: 11}.get(size)
    elif code in "BHILQ":
        index = {1: 2, 2: 4, 4: 6, 8: 12}.get(size)
    else:
        index = None
    if index is None:
        raise TypeError(f"array.array of typecode {code!r} has no JavaScript typed array")
    return index


def _describe_pattern(pattern: re.Pattern[Any]) -> tuple[object, ...]:
    import re
    if not isinstance(pattern.pattern, str):
        raise TypeError("a bytes re.Pattern has no JavaScript RegExp counterpart")
    unsupported = pattern.flags & (re.VERBOSE | re.ASCII | re.LOCALE | re.DEBUG)
    if unsupported:
        raise TypeError(f"re.Pattern flag {re.RegexFlag(unsupported)!r} has no JavaScript "
                        "RegExp counterpart")
    flags = 0
    if pattern.flags & re.IGNORECASE:
        flags |= RE_IGNORECASE
    if pattern.flags & re.MULTILINE:
        flags |= RE_MULTILINE
    if pattern.flags & re.DOTALL:
        flags |= RE_DOTALL
    return KIND_REGEXP, pattern.pattern, flags


def _describe_error(exc: BaseException) -> tuple[object, ...]:
    if isinstance(exc, JSError):
        name, message = exc.name, exc.message
    else:
        name = type(exc).__name__
        args = exc.args
        message = args[0] if len(args) == 1 and isinstance(args[0], str) else str(exc)
    tag = _ERROR_TAG_OF.get(name, 0)
    if not tag:
        if isinstance(exc, TypeError):
            tag = _ERROR_TAG_OF["TypeError"]
        elif isinstance(exc, SyntaxError):
            tag = _ERROR_TAG_OF["SyntaxError"]
    stack = getattr(exc, "stack", None)
    if not isinstance(stack, str):
        stack = f"{name}: {message}" if message else name
        if exc.__traceback__ is not None:
            import traceback
            stack += "\n" + "".join(traceback.format_tb(exc.__traceback__)).rstrip("\n")
    if exc.__cause__ is not None:
        return KIND_ERROR, tag, message, stack, exc.__cause__
    cause = getattr(exc, "__dict__", {}).get("cause")   # a JS error's cause, or AbortError's
    if cause is not None:
        return KIND_ERROR, tag, message, stack, cause
    return KIND_ERROR, tag, message, stack
