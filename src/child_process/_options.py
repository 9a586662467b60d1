"""Every option is checked here, with Node's error codes, before anything is opened or started.

The result is a plain ``SpawnSpec``: the layers below never validate again.
"""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: importing typing costs a forked child ~8 ms
    from typing import Any
    from collections.abc import Iterable

    from ._abort import AbortSignal

from . import _signals
from ._errors import (NodeTypeError, NodeValueError, invalid_arg_type, invalid_arg_value,
                      out_of_range)

_STDIO_NAMES = ("pipe", "overlapped", "ignore", "inherit")
_SERIALIZATIONS = ("json", "advanced", "pickle")
IPC_ENV_KEYS = (b"NODE_CHANNEL_FD", b"NODE_CHANNEL_SERIALIZATION_MODE")
_SIGTERM = _signals.NUMBERS["SIGTERM"]


class StdioSlot:
    """What one child descriptor is: ``kind`` is 'pipe', 'ignore', 'inherit', 'fd' or 'ipc'."""

    __slots__ = ("kind", "fd", "source")

    def __init__(self, kind: str, fd: int = -1, source: Any = None):
        self.kind = kind
        self.fd = fd            # for 'fd': the parent's descriptor
        self.source = source    # for 'fd': the object it came from (one of our streams, a file)

    def __repr__(self) -> str:
        return f"StdioSlot({self.kind!r}, {self.fd})"


class SpawnSpec:
    """A validated, normalised spawn request."""

    __slots__ = ("file", "args", "spawnfile", "spawnargs", "env", "path_env", "cwd", "stdio",
                 "detached", "uid", "gid", "serialization", "timeout", "kill_signal", "signal",
                 "ipc_index", "kill_tree", "pdeathsig")

    file: bytes                         # what is executed (looked up on path_env)
    args: list[bytes]                   # argv, argv[0] included
    spawnfile: str
    spawnargs: list[str | bytes]
    env: list[bytes]                    # KEY=VALUE
    path_env: bytes | None
    cwd: bytes | None
    stdio: list[StdioSlot]
    detached: bool
    uid: int                            # -1: unchanged
    gid: int
    serialization: str
    timeout: float                      # 0: none
    kill_signal: int
    signal: AbortSignal | None
    ipc_index: int                      # the 'ipc' slot, -1 if none

    def __init__(self) -> None:
        self.ipc_index = -1
        self.kill_tree = False
        self.pdeathsig = 0


# -- scalar validators ---------------------------------------------------------------------

def check_string(value: Any, name: str, *, allow_bytes: bool = False) -> Any:
    """A str or PathLike (or bytes if allowed) without NUL; returned as a str or bytes."""
    if isinstance(value, str):
        pass
    elif allow_bytes and isinstance(value, (bytes, bytearray)):
        value = bytes(value)
    elif isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, bytes) and not allow_bytes:
            value = os.fsdecode(value)
    else:
        kinds = ("of type string, bytes or os.PathLike" if allow_bytes
                 else "of type string or os.PathLike")
        raise invalid_arg_type(name, kinds, value)
    if ("\0" in value) if isinstance(value, str) else (b"\0" in value):
        raise invalid_arg_value(name, value, "must be a string without null bytes")
    return value


_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def to_bytes(value: Any, name: str = "argument") -> bytes:
    try:
        if type(value) is str:        # os.fsencode's work, without its checks (the common case)
            return value.encode(_FS_ENCODING, _FS_ERRORS)
        if isinstance(value, bytes):
            return value
        return os.fsencode(value)
    except UnicodeEncodeError:
        raise invalid_arg_value(name, value, "cannot be encoded for the operating system") from None


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_arg_type(name, "of type boolean", value)
    return value


def check_id(value: Any, name: str) -> int:
    """uid/gid: None (unchanged) or a non-negative int32."""
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_arg_type(name, "of type int", value)
    if not 0 <= value <= 0x7FFFFFFF:
        raise out_of_range(name, ">= 0 && <= 2147483647", value)
    return value


def check_timeout(value: Any, name: str = "timeout") -> float:
    """Seconds; None or 0 mean no timeout. Returns 0.0 for none."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_arg_type(name, "of type number", value)
    if value != value or value < 0:
        raise out_of_range(name, "a non-negative number", value)
    return float(value)


def check_signal(value: Any, name: str = "signal", *, allow_zero: bool = False) -> int:
    """A signal name (any case) or number -> its number; unknown -> ERR_UNKNOWN_SIGNAL."""
    if isinstance(value, str):
        number = _signals.NUMBERS.get(value.upper())
        if number is None or (number == 0 and not allow_zero):
            raise NodeTypeError("ERR_UNKNOWN_SIGNAL", f"Unknown signal: {value}")
        return number
    if isinstance(value, int) and not isinstance(value, bool):
        if value == 0 and allow_zero:
            return 0
        if 0 < value < _signals.NSIG:
            return int(value)
        raise NodeTypeError("ERR_UNKNOWN_SIGNAL", f"Unknown signal: {value}")
    raise invalid_arg_type(name, "of type string or number", value)


def check_die_with_parent(value: Any, name: str = "options.die_with_parent") -> int:
    """False/None: 0; True: SIGKILL; a signal name or number: that signal (Linux only)."""
    if value is None or value is False:
        return 0
    number = 9 if value is True else check_signal(value, name)
    if not sys.platform.startswith("linux"):
        raise NodeValueError("ERR_FEATURE_UNAVAILABLE_ON_PLATFORM",
                             "die_with_parent needs Linux's PR_SET_PDEATHSIG")
    return number


def check_abort_signal(value: Any, name: str = "options.signal") -> AbortSignal | None:
    if value is None:
        return None
    if not (hasattr(value, "aborted") and hasattr(value, "add_event_listener")):
        raise invalid_arg_type(name, "an instance of AbortSignal", value)
    signal: AbortSignal = value
    return signal


def check_serialization(value: Any) -> str:
    if value not in _SERIALIZATIONS:
        raise invalid_arg_value("options.serialization", value,
                                "must be one of: 'json', 'advanced', 'pickle'")
    mode: str = value
    return mode


# -- compound options ------------------------------------------------------------------------

_env_cache: tuple[dict[bytes, bytes], list[bytes]] | None = None


def build_env(env: Any) -> list[bytes]:
    """``KEY=VALUE`` byte strings for the child; None means the parent's environment now.

    NODE_CHANNEL_FD / NODE_CHANNEL_SERIALIZATION_MODE never pass through, whatever the source:
    a child with a channel gets ours, and one without must not mistake a stdio descriptor for
    a channel. (Decision: Node passes them on to children without 'ipc'.)
    """
    if env is None:
        # os.environ keeps its data encoded in ``_data``: reading it directly skips a Python-level
        # encode per variable, and an unchanged environment reuses the list built last time
        raw = getattr(os.environ, "_data", None)
        if isinstance(raw, dict):
            global _env_cache
            cached = _env_cache
            if cached is not None and cached[0] == raw:
                return cached[1]
            envp = [k + b"=" + v for k, v in raw.items() if k not in IPC_ENV_KEYS]
            _env_cache = (dict(raw), envp)
            return envp
        items: Iterable[tuple[bytes, bytes]] = (raw.items() if isinstance(raw, dict)
                                                else os.environb.items())
    else:
        if not hasattr(env, "items"):
            raise invalid_arg_type("options.env", "of type dict", env)
        pairs: list[tuple[bytes, bytes]] = []
        items = pairs
        for key, value in env.items():
            if value is None:
                continue
            k = to_bytes(check_string(key, "options.env key", allow_bytes=True), "options.env key")
            if b"=" in k:
                raise invalid_arg_value("options.env key", key, "must not contain '='")
            name = f"options.env['{key}']"
            v = to_bytes(check_string(value, name, allow_bytes=True), name)
            pairs.append((k, v))
    return [k + b"=" + v for k, v in items if k not in IPC_ENV_KEYS]


def path_of(envp: list[bytes]) -> bytes | None:
    for entry in envp:
        if entry.startswith(b"PATH="):
            return entry[5:]
    return None


def normalize_stdio(stdio: Any, *, sync: bool = False) -> list[StdioSlot]:
    """Node's stdio rules: a name for 0-2, or a list (padded to 3 with pipes; None = default)."""
    if stdio is None:
        stdio = "pipe"
    if isinstance(stdio, str):
        named = _NAMED_STDIO.get(stdio)
        if named is not None:
            return list(named)
        if stdio not in _STDIO_NAMES:
            raise invalid_arg_value("stdio", stdio)
        stdio = [stdio] * 3
    elif not isinstance(stdio, (list, tuple)):
        raise invalid_arg_value("stdio", stdio)
    slots: list[StdioSlot] = []
    saw_ipc = False
    for index, item in enumerate(list(stdio) + [None] * max(0, 3 - len(stdio))):
        if item is None:
            slots.append(StdioSlot("pipe" if index < 3 else "ignore"))
        elif isinstance(item, str):
            if item in ("pipe", "overlapped"):
                slots.append(StdioSlot("pipe"))
            elif item == "ignore":
                slots.append(StdioSlot("ignore"))
            elif item == "inherit":
                slots.append(StdioSlot("inherit", index) if index < 3 else StdioSlot("ignore"))
            elif item == "ipc":
                if sync:
                    raise NodeValueError("ERR_IPC_SYNC_FORK",
                                         "IPC cannot be used with synchronous forks")
                if saw_ipc:
                    raise NodeValueError("ERR_IPC_ONE_PIPE",
                                         "Child process can have only one IPC pipe")
                saw_ipc = True
                slots.append(StdioSlot("ipc"))
            else:
                raise invalid_arg_value("stdio", item)
        elif isinstance(item, bool):
            raise invalid_arg_value("stdio", item)
        elif isinstance(item, int):
            if item < 0:
                raise invalid_arg_value("stdio", item)
            slots.append(StdioSlot("fd", item))
        elif hasattr(item, "fileno"):
            try:
                fd = item.fileno()
            except (OSError, ValueError) as exc:
                raise invalid_arg_value("stdio", item,
                                        f"has no usable descriptor ({exc})") from None
            if isinstance(fd, bool) or not isinstance(fd, int) or fd < 0:
                raise invalid_arg_value("stdio", item)
            slots.append(StdioSlot("fd", fd, item))
        else:
            raise invalid_arg_value("stdio", item)
    return slots


#: the slots of the named forms, built once (slots are never changed after normalising)
_NAMED_STDIO = {name: tuple(normalize_stdio([name] * 3)) for name in ("pipe", "ignore", "inherit")}


#: Specs of recent calls that gave only a command, str arguments and stdio by name, by
#: (command, stdio, sync, args). A program that runs the same command again and again (a worker
#: pool, a build tool) gets the spec it already had: validation runs on a cache that the
#: child's start has just made cold, where it costs several times what it costs in a loop. A
#: cached spec is shared, so nothing may change a spec after normalising; it stays valid while
#: ``build_env(None)`` returns the very list it holds (the environment has not changed).
_spec_cache: dict[tuple[Any, ...], SpawnSpec] = {}
_SPEC_CACHE_SIZE = 64


def _cache_key(command: Any, args: Any, stdio: Any, sync: bool) -> tuple[Any, ...] | None:
    """The key of a call that can be cached (exact str everywhere), else None."""
    if type(command) is not str:
        return None
    if type(stdio) is not str:
        # a list of names (``['ignore', 'pipe', 'ignore']``); descriptors and streams are not
        # cached: what they refer to may have changed
        if type(stdio) is not list and type(stdio) is not tuple:
            return None
        for item in stdio:
            if type(item) is not str and item is not None:
                return None
        stdio = tuple(stdio)
    if args is None:
        args = ()
    elif type(args) is not tuple:
        if type(args) is not list:
            return None
        args = tuple(args)
    for arg in args:
        if type(arg) is not str:
            return None
    return (command, stdio, sync, args)


def normalize_spawn(command: Any, args: Any, *, cwd: Any = None, env: Any = None,
                    argv0: Any = None, stdio: Any = "pipe", detached: Any = False,
                    uid: Any = None, gid: Any = None, serialization: Any = "json",
                    shell: Any = False, signal: Any = None, timeout: Any = None,
                    kill_signal: Any = "SIGTERM", kill_tree: Any = False,
                    die_with_parent: Any = False, sync: bool = False) -> SpawnSpec:
    """Validate spawn()'s arguments (Node's order and codes) into a SpawnSpec (never to be
    changed afterwards: it may be shared by later calls with the same arguments)."""
    key = None
    if (cwd is None and env is None and argv0 is None and shell is False and detached is False
            and uid is None and gid is None and serialization == "json" and timeout is None
            and kill_signal == "SIGTERM" and signal is None and kill_tree is False
            and die_with_parent is False):
        key = _cache_key(command, args, stdio, sync)
        if key is not None:
            cached = _spec_cache.get(key)
            if cached is not None and cached.env is build_env(None):
                return cached
    spec = _normalize(command, args, cwd, env, argv0, stdio, detached, uid, gid, serialization,
                      shell, signal, timeout, kill_signal, kill_tree, die_with_parent, sync)
    if key is not None and spec.ipc_index < 0:
        if len(_spec_cache) >= _SPEC_CACHE_SIZE:
            _spec_cache.clear()
        _spec_cache[key] = spec
    return spec


def _normalize(command: Any, args: Any, cwd: Any, env: Any, argv0: Any, stdio: Any,
               detached: Any, uid: Any, gid: Any, serialization: Any, shell: Any, signal: Any,
               timeout: Any, kill_signal: Any, kill_tree: Any, die_with_parent: Any,
               sync: bool) -> SpawnSpec:
    file = check_string(command, "file")
    if not file:
        raise invalid_arg_value("file", file, "cannot be empty")
    if args is None:
        args = ()
    if not isinstance(args, (list, tuple)):
        raise invalid_arg_type("args", "an instance of list or tuple", args)
    arglist = [check_string(a, f"args[{i}]", allow_bytes=True) for i, a in enumerate(args)]

    spec = SpawnSpec()
    spec.cwd = (None if cwd is None else
                to_bytes(check_string(cwd, "options.cwd", allow_bytes=True), "options.cwd"))
    if (detached is False and uid is None and gid is None and serialization == "json"
            and timeout is None and kill_signal == "SIGTERM" and signal is None
            and kill_tree is False and die_with_parent is False):
        # every one at its default (most calls): nothing to check
        spec.detached = False
        spec.uid = spec.gid = -1
        spec.serialization = "json"
        spec.timeout = 0.0
        spec.kill_signal = _SIGTERM
        spec.signal = None
    else:
        spec.detached = check_bool(detached, "options.detached")
        spec.uid = check_id(uid, "options.uid")
        spec.gid = check_id(gid, "options.gid")
        spec.serialization = check_serialization(serialization)
        spec.timeout = check_timeout(timeout)
        spec.kill_signal = check_signal(kill_signal, "options.killSignal")
        spec.signal = check_abort_signal(signal)
        spec.kill_tree = check_bool(kill_tree, "options.kill_tree")
        spec.pdeathsig = check_die_with_parent(die_with_parent)
    if argv0 is not None:
        argv0 = check_string(argv0, "options.argv0", allow_bytes=True)
    if not isinstance(shell, (bool, str)) and not isinstance(shell, os.PathLike):
        raise invalid_arg_type("options.shell", "of type boolean or string", shell)
    spec.stdio = normalize_stdio(stdio, sync=sync)
    for index, slot in enumerate(spec.stdio):
        if slot.kind == "ipc":
            spec.ipc_index = index
    if spec.ipc_index >= 0:
        from ._serialization import codec
        codec(spec.serialization)       # a format we cannot speak fails here, before any start

    if shell:
        line = " ".join([file] + [os.fsdecode(a) if isinstance(a, bytes) else a for a in arglist])
        file = "/bin/sh" if shell is True else check_string(shell, "options.shell")
        arglist = ["-c", line]
    spec.spawnfile = file
    spec.spawnargs = [argv0 if argv0 is not None else file] + arglist
    spec.file = to_bytes(file, "file")
    spec.args = [to_bytes(a, "args") for a in spec.spawnargs]
    spec.env = build_env(env)
    if env is None:
        raw = getattr(os.environ, "_data", None)
        spec.path_env = raw.get(b"PATH") if isinstance(raw, dict) else os.environb.get(b"PATH")
    else:
        # SPEC: the child's PATH, or the parent's when the given env has none
        spec.path_env = path_of(spec.env)
        if spec.path_env is None:
            spec.path_env = os.environb.get(b"PATH")
    return spec


def check_max_buffer(value: Any, name: str = "options.maxBuffer") -> int:
    """Bytes per stream; None or infinity mean no limit (-1)."""
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid_arg_type(name, "of type number", value)
    if value != value or value < 0:
        raise out_of_range(name, "a positive number", value)
    if value == float("inf"):
        return -1
    return int(value)


def check_encoding(value: Any) -> str | None:
    """A codec name, or None for bytes ('buffer' and unknown names give bytes, as in Node)."""
    if value is None or value == "buffer":
        return None
    if not isinstance(value, str):
        raise invalid_arg_type("options.encoding", "of type string", value)
    import codecs
    try:
        return codecs.lookup(value).name
    except LookupError:
        return None


def check_input(value: Any) -> bytes | bytearray | memoryview | None:
    """spawn_sync's ``input``: str (UTF-8), bytes or any buffer."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return value
    try:
        return memoryview(value)
    except TypeError:
        raise invalid_arg_type("options.input", "of type string or an instance of bytes, "
                               "bytearray or memoryview", value) from None
