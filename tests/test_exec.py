"""exec and exec_file with real processes: SPEC §4 (exec, exec_file, their callback error) and the
Appendix, items 18-21.

The loop is driven with ``child.wait()`` or ``child_process.run()``; the callback runs on it.
Every test is checked for leaked descriptors, children and loop handles by conftest's autouse
fixture. Children that are meant to be killed ``exec`` their sleeper so that no grandchild keeps
a pipe open (except in the tests about exactly that).

Tests marked ``xfail(strict=True, reason="BUG: ...")`` document library bugs (SPEC or Node says
otherwise); they must start passing -- and lose the marker -- when the bug is fixed.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import child_process
from child_process import (AbortController, ChildProcess, ExecError, NodeTypeError,
                           NodeValueError, RangeError, SpawnError, exec, exec_file)

PY = sys.executable
MIB = 1024 * 1024
WAIT = 15.0
MAXBUF = "ERR_CHILD_PROCESS_STDIO_MAXBUFFER"

SMALL = settings(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def py(code: str) -> list:
    """Arguments that make ``PY`` run ``code`` quickly, ignoring PYTHON* variables and site."""
    return ["-I", "-S", "-c", code]


def py_line(code: str) -> str:
    """A shell command line that execs ``PY`` on ``code`` (no shell left behind to signal)."""
    return "exec " + " ".join(shlex.quote(a) for a in [PY] + py(code))


@pytest.fixture(scope="module", autouse=True)
def _warm_loop():
    """Create this thread's loop before the first leak-check snapshot."""
    child_process.spawn("true", stdio="ignore").wait(WAIT)
    yield


class Call:
    """What one callback invocation received, and when/where."""

    def __init__(self, err, stdout, stderr):
        self.err, self.stdout, self.stderr = err, stdout, stderr
        self.thread = threading.get_ident()
        self.at = time.monotonic()


def run_cb(fn, *args, **options):
    """Start ``fn(*args, callback=..., **options)``, drive the loop until the child closes and
    return (child, Call). Asserts the callback ran exactly once and not synchronously."""
    calls = []
    child = fn(*args, callback=lambda e, o, s: calls.append(Call(e, o, s)), **options)
    assert calls == [], "callback ran synchronously"
    try:
        child.wait(timeout=WAIT)
    except TimeoutError:
        child.kill("SIGKILL")
        child.wait(timeout=WAIT)
        raise
    assert len(calls) == 1
    return child, calls[0]


def writer(out: int = 0, err: int = 0, then_sleep: float = 0) -> str:
    """Python code writing ``out`` x's to stdout and ``err`` y's to stderr, then sleeping."""
    return ("import os, time\n"
            f"def put(fd, data):\n"
            f"    view = memoryview(data)\n"
            f"    while view:\n"
            f"        view = view[os.write(fd, view):]\n"
            f"put(1, b'x' * {out})\nput(2, b'y' * {err})\n"
            f"time.sleep({then_sleep})\n")


# ==========================================================================================
# success, callback, the returned ChildProcess
# ==========================================================================================

def test_exec_success():
    child, call = run_cb(exec, "echo hello; echo world >&2")
    assert call.err is None
    assert call.stdout == "hello\n"
    assert call.stderr == "world\n"
    assert isinstance(child, ChildProcess)
    assert isinstance(child.pid, int) and child.pid > 0
    assert (child.exit_code, child.signal_code) == (0, None)


def test_exec_returned_child_has_the_real_pid():
    child, call = run_cb(exec, "echo $$")
    assert call.err is None
    assert call.stdout == f"{child.pid}\n"


def test_exec_uses_bin_sh_by_default():
    child, call = run_cb(exec, "echo ${BASH_VERSION:-none}")
    assert child.spawnfile == "/bin/sh"
    assert child.spawnargs == ["/bin/sh", "-c", "echo ${BASH_VERSION:-none}"]
    assert call.stdout == "none\n"            # /bin/sh here is dash


def test_exec_with_bash_shell():
    child, call = run_cb(exec, "echo $BASH_VERSION", shell="/bin/bash")
    assert child.spawnfile == "/bin/bash"
    assert child.spawnargs == ["/bin/bash", "-c", "echo $BASH_VERSION"]
    assert call.err is None
    assert call.stdout.strip() != ""


def test_callbacks_run_on_the_loop_thread_via_run():
    calls = {}
    for i in range(8):
        # the outer lambda binds i now (B023 cannot see it)
        exec(f"echo {i}", callback=(lambda i: lambda e, o, s: calls.setdefault(
            i, (e, o, s, threading.get_ident())))(i))  # noqa: B023
    assert calls == {}
    child_process.run()
    assert sorted(calls) == list(range(8))
    for i, (e, o, s, thread) in calls.items():
        assert e is None and o == f"{i}\n" and s == ""
        assert thread == threading.get_ident()


def test_exec_without_callback():
    child = exec("echo quiet")
    assert child.wait(WAIT) == (0, None)


def test_exec_env_and_cwd(tmp_path):
    child, call = run_cb(exec, "echo $FOO; pwd", env={"FOO": "bar", "PATH": os.environ["PATH"]},
                         cwd=str(tmp_path))
    assert call.err is None
    assert call.stdout == f"bar\n{os.path.realpath(tmp_path)}\n"


def test_exec_missing_command_is_127_with_a_pid():
    child, call = run_cb(exec, "no_such_command_zz")
    assert isinstance(child.pid, int) and child.pid > 0
    assert isinstance(call.err, ExecError)
    assert call.err.code == 127
    assert call.err.killed is False
    assert call.err.signal is None
    assert "not found" in call.stderr
    assert str(call.err) == "Command failed: no_such_command_zz\n" + call.stderr


def test_exec_missing_cwd_is_enoent(tmp_path):
    child, call = run_cb(exec, "true", cwd=str(tmp_path / "nope"))
    assert child.pid is None
    assert call.err.code == "ENOENT"


# ==========================================================================================
# the callback error (Appendix 18-19)
# ==========================================================================================

@pytest.mark.parametrize("command, code, signal", [
    ("exit 1", 1, None),
    ("exit 255", 255, None),
    ("echo fine; exit 7", 7, None),
    ("kill -TERM $$", None, "SIGTERM"),
    ("kill -KILL $$", None, "SIGKILL"),
])
def test_err_is_set_for_any_failure(command, code, signal):
    child, call = run_cb(exec, command)
    assert isinstance(call.err, ExecError)
    assert call.err.code == code
    assert call.err.signal == signal
    assert call.err.killed is False          # we did not kill it
    assert call.err.cmd == command
    assert str(call.err) == f"Command failed: {command}\n"


@pytest.mark.parametrize("command", ["true", "exit 0", "echo x >&2"])
def test_err_is_none_for_exit_zero(command):
    child, call = run_cb(exec, command)
    assert call.err is None


def test_error_message_includes_stderr():
    command = "echo partial; echo bad >&2; exit 2"
    child, call = run_cb(exec, command)
    err = call.err
    assert str(err) == f"Command failed: {command}\nbad\n"
    assert err.code == 2
    assert err.cmd == command
    assert err.killed is False and err.signal is None
    assert err.stdout == "partial\n" and err.stderr == "bad\n"
    assert call.stdout == "partial\n" and call.stderr == "bad\n"


def test_error_message_in_buffer_mode():
    child, call = run_cb(exec, "echo bad >&2; exit 2", encoding=None)
    assert call.stderr == b"bad\n"
    assert str(call.err) == "Command failed: echo bad >&2; exit 2\nbad\n"


# ==========================================================================================
# exec_file (Appendix 19-20)
# ==========================================================================================

def test_exec_file_runs_without_shell():
    child, call = run_cb(exec_file, "echo", ["$HOME", "a  b", "*"])
    assert call.err is None
    assert call.stdout == "$HOME a  b *\n"
    assert child.spawnfile == "echo"
    assert child.spawnargs == ["echo", "$HOME", "a  b", "*"]


def test_exec_file_with_shell_true():
    child, call = run_cb(exec_file, "echo", ["$HOME"], shell=True)
    assert call.err is None
    assert call.stdout == os.environ["HOME"] + "\n"
    assert child.spawnfile == "/bin/sh"
    assert child.spawnargs == ["/bin/sh", "-c", "echo $HOME"]


def test_exec_file_with_shell_path():
    child, call = run_cb(exec_file, "echo", ["$BASH_VERSION"], shell="/bin/bash")
    assert child.spawnfile == "/bin/bash"
    assert call.stdout.strip() not in ("", "$BASH_VERSION")


def test_exec_file_error_cmd_is_file_and_args():
    child, call = run_cb(exec_file, "sh", ["-c", "echo no >&2; exit 3"])
    err = call.err
    assert err.cmd == "sh -c echo no >&2; exit 3"
    assert err.code == 3
    assert str(err) == "Command failed: sh -c echo no >&2; exit 3\nno\n"


def test_exec_file_bytes_args():
    child, call = run_cb(exec_file, "sh", [b"-c", b"exit 4"])
    assert call.err.code == 4
    assert call.err.cmd == "sh -c exit 4"


def test_exec_file_enoent():
    calls = []
    child = exec_file("no-such-command-zz", ["a", "b"], callback=lambda *a: calls.append(a))
    assert child.pid is None
    assert calls == []                       # reported on a later loop turn, not in the call
    assert child.wait(WAIT) == (-2, None)
    assert len(calls) == 1
    err, stdout, stderr = calls[0]
    assert isinstance(err, ExecError)
    assert err.code == "ENOENT"
    assert err.syscall == "spawn no-such-command-zz"
    assert err.path == "no-such-command-zz"
    assert err.cmd == "no-such-command-zz a b"
    assert isinstance(err.error, SpawnError) and err.error.spawnargs == ["a", "b"]
    assert str(err) == "spawn no-such-command-zz ENOENT"
    assert (stdout, stderr) == ("", "")


def test_exec_file_enoent_absolute_path_buffer_mode(tmp_path):
    missing = str(tmp_path / "missing")
    child, call = run_cb(exec_file, missing, encoding=None)
    assert child.pid is None
    assert call.err.code == "ENOENT"
    assert (call.stdout, call.stderr) == (b"", b"")


@SMALL
@given(data=st.binary(max_size=300).filter(lambda b: b"\0" not in b))
def test_hypothesis_bytes_args_come_back(data):
    child, call = run_cb(exec_file, "printf", ["%s", data], encoding=None)
    assert call.err is None
    assert call.stdout == data


# ==========================================================================================
# encoding (Appendix 18)
# ==========================================================================================

@pytest.mark.parametrize("encoding", [None, "buffer", "no-such-codec-zz"])
def test_encoding_gives_bytes(encoding):
    child, call = run_cb(exec, r"printf 'a\351'; printf 'e' >&2", encoding=encoding)
    assert call.err is None
    assert call.stdout == b"a\xe9"
    assert call.stderr == b"e"


def test_default_encoding_utf8_replaces_invalid_bytes():
    child, call = run_cb(exec, r"printf '\377ok\303\251'; printf '\303' >&2")
    assert call.stdout == "\ufffdok\u00e9"
    assert call.stderr == "\ufffd"


def test_encoding_latin1():
    child, call = run_cb(exec_file, "printf", [r"\351\377"], encoding="latin-1")
    assert call.stdout == "\u00e9\u00ff"


def test_utf8_character_split_across_reads():
    code = ("import os, time\nos.write(1, b'a\\xc3')\ntime.sleep(0.2)\n"
            "os.write(1, b'\\xa9b')\n")
    child, call = run_cb(exec_file, PY, py(code))
    assert call.err is None
    assert call.stdout == "a\u00e9b"


# ==========================================================================================
# max_buffer (Appendix 21)
# ==========================================================================================

@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_max_buffer_truncates_exactly_and_kills(stream):
    code = writer(out=100000 if stream == "stdout" else 0,
                  err=100000 if stream == "stderr" else 0, then_sleep=30)
    t0 = time.monotonic()
    child, call = run_cb(exec_file, PY, py(code), max_buffer=1000, encoding=None)
    assert time.monotonic() - t0 < 10
    err = call.err
    assert isinstance(err, ExecError)
    assert err.code == MAXBUF
    assert str(err) == f"{stream} maxBuffer length exceeded"
    assert isinstance(err.error, RangeError)
    assert err.killed is True
    assert err.signal == "SIGTERM"
    assert child.killed is True
    assert child.signal_code == "SIGTERM"
    data = call.stdout if stream == "stdout" else call.stderr
    assert len(data) == 1000
    assert data == (b"x" if stream == "stdout" else b"y") * 1000


def test_max_buffer_through_exec_with_kill_signal():
    child, call = run_cb(exec, py_line(writer(out=50000, then_sleep=30)), max_buffer=10,
                         encoding=None, kill_signal="SIGKILL")
    assert call.err.code == MAXBUF
    assert call.err.signal == "SIGKILL"
    assert call.err.killed is True
    assert call.stdout == b"x" * 10


def test_max_buffer_string_mode_ascii():
    child, call = run_cb(exec_file, PY, py(writer(out=5000, then_sleep=30)), max_buffer=100)
    assert call.err.code == MAXBUF
    assert call.stdout == "x" * 100


def test_max_buffer_string_mode_cuts_characters():
    child, call = run_cb(exec, "printf '\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9'",
                         max_buffer=5)
    assert call.err.code == MAXBUF
    assert "\ufffd" not in call.stdout
    assert call.stdout == "\u00e9" * 5


def test_output_of_exactly_max_buffer_is_fine():
    child, call = run_cb(exec, "head -c 1000 /dev/zero; head -c 1000 /dev/zero >&2",
                         max_buffer=1000, encoding=None)
    assert call.err is None
    assert call.stdout == b"\0" * 1000 and call.stderr == b"\0" * 1000


def test_default_max_buffer_is_one_mib():
    child, call = run_cb(exec, f"head -c {MIB} /dev/zero", encoding=None)
    assert call.err is None and len(call.stdout) == MIB
    child, call = run_cb(exec_file, PY, py(writer(out=MIB + 1, then_sleep=30)))
    assert call.err.code == MAXBUF
    assert call.stdout == "x" * MIB


@pytest.mark.parametrize("limit", [None, float("inf")])
def test_max_buffer_disabled(limit):
    child, call = run_cb(exec, f"head -c {3 * MIB} /dev/zero; head -c {2 * MIB} /dev/zero >&2",
                         max_buffer=limit, encoding=None)
    assert call.err is None
    assert len(call.stdout) == 3 * MIB and len(call.stderr) == 2 * MIB


def test_max_buffer_zero_with_no_output():
    child, call = run_cb(exec, "true", max_buffer=0)
    assert call.err is None


def test_large_outputs_on_stdout_and_stderr_at_once():
    n = 20 * MIB
    code = (
        "import os, threading\n"
        f"a = bytes(range(256)) * ({n} // 256)\n"
        f"b = bytes(reversed(range(256))) * ({n} // 256)\n"
        "def pump(fd, data):\n"
        "    view = memoryview(data)\n"
        "    while view:\n"
        "        view = view[os.write(fd, view[:1 << 16]):]\n"
        "t = threading.Thread(target=pump, args=(2, b))\n"
        "t.start(); pump(1, a); t.join()\n")
    t0 = time.monotonic()
    child, call = run_cb(exec_file, PY, py(code), max_buffer=None, encoding=None)
    assert time.monotonic() - t0 < 20
    assert call.err is None
    assert len(call.stdout) == n and len(call.stderr) == n
    assert call.stdout == bytes(range(256)) * (n // 256)
    assert call.stderr == bytes(reversed(range(256))) * (n // 256)


# ==========================================================================================
# timeout, kill_signal, AbortSignal
# ==========================================================================================

def test_timeout_kills_with_sigterm():
    t0 = time.monotonic()
    child, call = run_cb(exec, "echo started; exec sleep 10", timeout=0.3)
    elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 5
    err = call.err
    assert isinstance(err, ExecError)
    assert err.killed is True
    assert err.signal == "SIGTERM"
    assert err.code is None
    assert err.cmd == "echo started; exec sleep 10"
    assert str(err) == "Command failed: echo started; exec sleep 10\n"
    assert call.stdout == "started\n"


@pytest.mark.parametrize("kill_signal", ["SIGKILL", 9])
def test_timeout_with_kill_signal(kill_signal):
    child, call = run_cb(exec_file, "sh", ["-c", "trap '' TERM; exec sleep 10"], timeout=0.3,
                         kill_signal=kill_signal)
    assert call.err.killed is True
    assert call.err.signal == "SIGKILL"
    assert child.signal_code == "SIGKILL"


def test_timeout_not_reached():
    child, call = run_cb(exec, "sleep 0.05; echo ok", timeout=5)
    assert call.err is None and call.stdout == "ok\n"


def test_abort_signal():
    ac = AbortController()
    calls = []
    child = exec("exec sleep 10", signal=ac.signal, callback=lambda *a: calls.append(a))
    child.on("spawn", ac.abort)
    t0 = time.monotonic()
    child.wait(WAIT)
    assert time.monotonic() - t0 < 5
    assert len(calls) == 1
    err = calls[0][0]
    assert err is not None
    assert err.code == "ABORT_ERR"
    assert child.killed is True
    assert child.signal_code == "SIGTERM"


def test_abort_signal_already_aborted():
    ac = AbortController()
    ac.abort()
    child, call = run_cb(exec_file, "sleep", ["10"], signal=ac.signal, kill_signal="SIGKILL")
    assert call.err.code == "ABORT_ERR"
    assert child.signal_code == "SIGKILL"


def test_abort_after_exit_does_nothing():
    ac = AbortController()
    child, call = run_cb(exec, "echo done", signal=ac.signal)
    ac.abort()
    assert call.err is None
    assert child.killed is False


@pytest.mark.parametrize("trigger", ["timeout", "max_buffer", "abort"])
def test_kill_does_not_wait_for_grandchildren_holding_the_pipes(trigger):
    ac = AbortController()
    options = {}
    if trigger == "timeout":
        command, options = "sleep 2 & wait", {"timeout": 0.2}
    elif trigger == "max_buffer":
        command, options = "sleep 2 & head -c 5000 /dev/zero; wait", {"max_buffer": 100}
    else:
        command, options = "sleep 2 & wait", {"signal": ac.signal}
    calls = []
    t0 = time.monotonic()
    child = exec(command, callback=lambda e, o, s: calls.append((e, time.monotonic())), **options)
    if trigger == "abort":
        with pytest.raises(TimeoutError):
            child.wait(0.2)
        ac.abort()
    child.wait(WAIT)
    assert len(calls) == 1
    err, at = calls[0]
    assert err is not None
    assert err.code == {"timeout": None, "max_buffer": MAXBUF, "abort": "ABORT_ERR"}[trigger]
    assert at - t0 < 1.5, f"callback after {at - t0:.2f} s"


# ==========================================================================================
# validation: before anything starts
# ==========================================================================================

BAD_OPTIONS = [
    ({"max_buffer": -1}, RangeError, "ERR_OUT_OF_RANGE"),
    ({"max_buffer": float("nan")}, RangeError, "ERR_OUT_OF_RANGE"),
    ({"max_buffer": "big"}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"timeout": -1}, RangeError, "ERR_OUT_OF_RANGE"),
    ({"timeout": "1"}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"kill_signal": "SIGNOPE"}, NodeTypeError, "ERR_UNKNOWN_SIGNAL"),
    ({"callback": 5}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"signal": object()}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"shell": 5}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"cwd": 5}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"env": {"A=B": "x"}}, NodeValueError, "ERR_INVALID_ARG_VALUE"),
    ({"uid": -1}, RangeError, "ERR_OUT_OF_RANGE"),
]


@pytest.mark.parametrize("options, exc_type, code", BAD_OPTIONS)
def test_exec_rejects_bad_options_before_starting(tmp_path, options, exc_type, code):
    marker = tmp_path / "started"
    with pytest.raises(exc_type) as info:
        exec(f"touch {shlex.quote(str(marker))}", **options)
    assert info.value.code == code
    child_process.run()                  # nothing to run: returns at once
    assert not marker.exists()


@pytest.mark.parametrize("options, exc_type, code", BAD_OPTIONS)
def test_exec_file_rejects_bad_options_before_starting(tmp_path, options, exc_type, code):
    marker = tmp_path / "started"
    with pytest.raises(exc_type) as info:
        exec_file("touch", [str(marker)], **options)
    assert info.value.code == code
    child_process.run()
    assert not marker.exists()


@pytest.mark.parametrize("fn, args, exc_type, code", [
    (exec, (123,), NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    (exec, ("echo \0",), NodeValueError, "ERR_INVALID_ARG_VALUE"),
    (exec_file, (None,), NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    (exec_file, ("echo", "not a list"), NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    (exec_file, ("echo", [1]), NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    (exec_file, ("echo", ["a\0b"]), NodeValueError, "ERR_INVALID_ARG_VALUE"),
])
def test_bad_command_or_args_rejected(fn, args, exc_type, code):
    with pytest.raises(exc_type) as info:
        fn(*args, callback=lambda *a: None)
    assert info.value.code == code
