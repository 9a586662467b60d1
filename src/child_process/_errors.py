"""Error classes that carry Node's ``.code``: callers branch on the same strings as in Node."""

from __future__ import annotations

import errno as _errno
import os as _os


class NodeTypeError(TypeError):
    """A wrong type (Node's TypeError): ``ERR_INVALID_ARG_TYPE``, ``ERR_UNKNOWN_SIGNAL``, ..."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code

    def __str__(self) -> str:
        return f"{self.args[0]}"


class NodeValueError(ValueError):
    """A bad value (Node's TypeError or Error): ``ERR_INVALID_ARG_VALUE``, ``ERR_IPC_ONE_PIPE``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class RangeError(NodeValueError):
    """Node's RangeError (``ERR_OUT_OF_RANGE``, ``ERR_CHILD_PROCESS_STDIO_MAXBUFFER``)."""


class AbortError(Exception):
    """Raised or emitted when an ``AbortSignal`` cancels an operation (Node's ``ABORT_ERR``)."""

    code = "ABORT_ERR"
    name = "AbortError"

    def __init__(self, message: str = "The operation was aborted", *, cause: object = None):
        super().__init__(message)
        self.cause = cause
        if isinstance(cause, BaseException):
            self.__cause__ = cause


def errno_code(err: int) -> str:
    """The symbolic name Node uses for an errno value (``2`` -> ``'ENOENT'``)."""
    return _errno.errorcode.get(err, f"Unknown system error {err}")


class SpawnError(OSError):
    """A child could not be started, or a system call on it failed (Node's ErrnoException)."""

    strerror_text: str      # set by errno_exception(): the C library's text for the errno

    def __init__(self, err: int, syscall: str, path: object = None, spawnargs: object = None,
                 message: str | None = None):
        code = errno_code(err)
        if message is None:
            message = f"{syscall} {code}"
        super().__init__(err, message)
        self.code = code
        self.syscall = syscall
        self.path = path
        self.spawnargs = spawnargs

    def __str__(self) -> str:
        return self.strerror or ""

    def __reduce__(self) -> tuple[type[SpawnError], tuple[object, ...]]:
        return (SpawnError, (self.errno, self.syscall, self.path, self.spawnargs, self.strerror))


def errno_exception(err: int | None, syscall: str) -> SpawnError:
    """An errno failure of ``syscall`` (kill, write, ...), shaped like Node's errnoException.

    ``err`` is an ``OSError.errno``: None (an OSError raised without one) counts as EIO."""
    if err is None:
        err = _errno.EIO
    e = SpawnError(err, syscall, message=f"{syscall} {errno_code(err)}")
    e.strerror_text = _os.strerror(err)
    return e


def invalid_arg_type(name: str, expected: str, actual: object) -> NodeTypeError:
    return NodeTypeError(
        "ERR_INVALID_ARG_TYPE",
        f'The "{name}" argument must be {expected}. Received {_describe(actual)}')


def invalid_arg_value(name: str, value: object, reason: str = "is invalid") -> NodeValueError:
    return NodeValueError(
        "ERR_INVALID_ARG_VALUE", f"The argument '{name}' {reason}. Received {_describe(value)}")


def out_of_range(name: str, expected: str, value: object) -> RangeError:
    return RangeError(
        "ERR_OUT_OF_RANGE",
        f'The value of "{name}" is out of range. It must be {expected}. Received {value!r}')


def _describe(value: object) -> str:
    if value is None:
        return "None"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"type {type(value).__name__} ({text})"


class ExecError(Exception):
    """A command run by exec/exec_file/exec_sync/exec_file_sync failed: non-zero exit, a signal,
    a start failure, a timeout or too much output.

    ``code`` is the exit status (int) or Node's string code (``'ENOENT'``, ``'ETIMEDOUT'``,
    ``'ERR_CHILD_PROCESS_STDIO_MAXBUFFER'``, ``'ABORT_ERR'``); ``error`` is the underlying error
    when there is one (also the ``__cause__``).
    """

    def __init__(self, message: str, *, code: object = None, cmd: str = "", killed: bool = False,
                 signal: object = None, status: object = None, stdout: object = None,
                 stderr: object = None, output: object = None, pid: object = None,
                 error: object = None):
        super().__init__(message)
        self.code = code
        self.cmd = cmd
        self.killed = killed
        self.signal = signal
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.output = output
        self.pid = pid
        self.error = error
        if isinstance(error, BaseException):
            self.__cause__ = error

    @property
    def errno(self) -> object:
        return getattr(self.error, "errno", None)

    @property
    def syscall(self) -> object:
        return getattr(self.error, "syscall", None)

    @property
    def path(self) -> object:
        return getattr(self.error, "path", None)
