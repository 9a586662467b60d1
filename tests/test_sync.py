"""spawn_sync, exec_sync and exec_file_sync with real processes: SPEC §4 (the sync variants,
SpawnSyncResult) and the Appendix, items 23-27.

Every test is checked for leaked descriptors and children by conftest's autouse fixture. Children
that are meant to be killed ``exec`` their sleeper so that no grandchild keeps a pipe open.

Tests marked ``xfail(strict=True, reason="BUG: ...")`` document library bugs (SPEC or Node says
otherwise); they must start passing -- and lose the marker -- when the bug is fixed.
"""

from __future__ import annotations

import array
import errno
import gc
import os
import shlex
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import child_process
from child_process import (ExecError, NodeTypeError, NodeValueError, RangeError, SpawnError,
                           SpawnSyncResult, exec_file_sync, exec_sync, spawn_sync)

PY = sys.executable
MIB = 1024 * 1024
WAIT = 15.0

SMALL = settings(max_examples=25, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture,
                                        HealthCheck.too_slow])


def py(code: str) -> list:
    """Arguments that make ``PY`` run ``code`` quickly, ignoring PYTHON* variables and site."""
    return ["-I", "-S", "-c", code]


@pytest.fixture(scope="module", autouse=True)
def _warm_loop():
    """Create this thread's loop before the first leak-check snapshot (conftest's teardown
    calls get_loop(), and the loop's own descriptors live as long as the thread)."""
    child_process.spawn("true", stdio="ignore").wait(WAIT)
    yield


# ==========================================================================================
# SpawnSyncResult: fields and output slots (Appendix 23)
# ==========================================================================================

def test_result_fields_for_a_normal_exit():
    r = spawn_sync("sh", ["-c", "printf out; printf err >&2; exit 5"])
    assert isinstance(r, SpawnSyncResult)
    assert isinstance(r.pid, int) and r.pid > 0
    assert r.status == 5
    assert r.signal is None
    assert r.error is None
    assert r.stdout == b"out"
    assert r.stderr == b"err"
    assert r.output == [None, b"out", b"err"]
    assert r.output[1] is r.stdout and r.output[2] is r.stderr


def test_pid_is_the_childs_pid():
    r = spawn_sync("sh", ["-c", "echo $$"])
    assert r.status == 0
    assert r.stdout == f"{r.pid}\n".encode()


def test_exit_zero_and_empty_output():
    r = spawn_sync("true")
    assert (r.status, r.signal, r.error) == (0, None, None)
    assert r.output == [None, b"", b""]


def test_extra_pipe_slot_is_captured():
    r = spawn_sync("sh", ["-c", "echo out; echo err >&2; echo three >&3"],
                   stdio=["pipe", "pipe", "pipe", "pipe"])
    assert r.status == 0
    assert len(r.output) == 4
    assert r.output == [None, b"out\n", b"err\n", b"three\n"]
    assert r.stdout == b"out\n" and r.stderr == b"err\n"


def test_extra_slots_ignore_and_pipe():
    r = spawn_sync("sh", ["-c", "echo four >&4; echo three >&3 2>/dev/null; echo ok"],
                   stdio=["pipe", "pipe", "pipe", "ignore", "pipe"])
    assert len(r.output) == 5
    assert r.output[0] is None and r.output[3] is None
    assert r.output[1] == b"ok\n"
    assert r.output[4] == b"four\n"


def test_inherit_slot_gives_none(capfd):
    r = spawn_sync("sh", ["-c", "echo inherited; echo err >&2"],
                   stdio=["pipe", "inherit", "pipe"])
    assert r.output == [None, None, b"err\n"]
    assert r.stdout is None
    assert r.stderr == b"err\n"
    assert r.status == 0
    # the inherited stdout really is ours
    assert capfd.readouterr().out == "inherited\n"


def test_ignore_everything():
    r = spawn_sync("sh", ["-c", "echo a; echo b >&2"], stdio="ignore")
    assert r.output == [None, None, None]
    assert r.stdout is None and r.stderr is None
    assert r.status == 0 and r.error is None


def test_fd_slot_writes_to_that_descriptor(tmp_path):
    path = tmp_path / "out.txt"
    with open(path, "wb") as f:
        r = spawn_sync("sh", ["-c", "echo to-file; echo err >&2"],
                       stdio=["pipe", f.fileno(), "pipe"])
    assert r.output == [None, None, b"err\n"]
    assert path.read_bytes() == b"to-file\n"


def test_killed_by_signal():
    r = spawn_sync("sh", ["-c", "kill -9 $$"])
    assert r.status is None
    assert r.signal == "SIGKILL"
    assert r.error is None
    assert r.pid > 0
    assert r.output == [None, b"", b""]


def test_sigterm_from_itself():
    r = spawn_sync("sh", ["-c", "echo before; kill -TERM $$"])
    assert (r.status, r.signal) == (None, "SIGTERM")
    assert r.stdout == b"before\n"


def test_enoent():
    r = spawn_sync("no-such-command-zz", ["a", "b"])
    assert r.pid == 0
    assert r.status is None
    assert r.signal is None
    assert r.output is None
    assert r.stdout is None
    assert r.stderr is None
    assert isinstance(r.error, SpawnError) and isinstance(r.error, OSError)
    assert r.error.code == "ENOENT"
    assert r.error.errno == errno.ENOENT
    assert r.error.syscall == "spawnSync no-such-command-zz"
    assert r.error.path == "no-such-command-zz"
    assert r.error.spawnargs == ["a", "b"]


#: stdin not piped (a piped stdin is covered by test_failed_exec_leaks_no_fd)
NO_STDIN = ["ignore", "pipe", "pipe"]


def test_enoent_absolute_path(tmp_path):
    missing = str(tmp_path / "missing")
    r = spawn_sync(missing, stdio=NO_STDIN)
    assert (r.pid, r.status, r.output) == (0, None, None)
    assert r.error.code == "ENOENT"
    assert r.error.syscall == f"spawnSync {missing}"


def test_missing_cwd_is_enoent(tmp_path):
    r = spawn_sync("sh", ["-c", "true"], cwd=str(tmp_path / "nope"), stdio=NO_STDIN)
    assert r.pid == 0 and r.status is None and r.output is None
    assert r.error.code == "ENOENT"
    assert r.error.syscall == "spawnSync sh"


def test_not_executable_is_eacces(tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    r = spawn_sync(str(script), stdio=NO_STDIN)
    if os.geteuid() == 0 and os.access(script, os.X_OK):
        pytest.skip("root may execute anything")
    assert r.pid == 0 and r.status is None and r.output is None
    assert r.error.code == "EACCES"


def test_shell_option():
    r = spawn_sync("echo", ["a", "b"], shell=True)
    assert r.stdout == b"a b\n"
    r = spawn_sync("echo $BASH_VERSION", shell="/bin/bash")
    assert r.status == 0 and len(r.stdout.strip()) > 0


def test_env_and_cwd(tmp_path):
    r = spawn_sync("/bin/sh", ["-c", "echo $FOO; pwd"], env={"FOO": "bar"}, cwd=str(tmp_path))
    assert r.stdout == f"bar\n{os.path.realpath(tmp_path)}\n".encode()


# ==========================================================================================
# encoding
# ==========================================================================================

def test_encoding_utf8_replaces_invalid_bytes():
    r = spawn_sync("sh", ["-c", r"printf '\377ab\303\251'; printf '\303' >&2"],
                   encoding="utf-8")
    assert r.stdout == "\ufffdab\u00e9"
    assert r.stderr == "\ufffd"
    assert r.output == [None, "\ufffdab\u00e9", "\ufffd"]


def test_encoding_latin1():
    r = spawn_sync("printf", [r"\351\377"], encoding="latin-1")
    assert r.stdout == "\u00e9\u00ff"
    assert r.stderr == ""


@pytest.mark.parametrize("encoding", [None, "buffer", "no-such-codec-zz"])
def test_encoding_gives_bytes(encoding):
    r = spawn_sync("printf", [r"a\351"], encoding=encoding)
    assert r.stdout == b"a\xe9"
    assert isinstance(r.stderr, bytes)


def test_encoding_on_extra_slots():
    r = spawn_sync("sh", ["-c", "printf x >&3"], stdio=["pipe"] * 4, encoding="utf-8")
    assert r.output == [None, "", "", "x"]


# ==========================================================================================
# input (Appendix 26)
# ==========================================================================================

@pytest.mark.parametrize("value, expected", [
    (b"bytes\x00\xff", b"bytes\x00\xff"),
    ("h\u00e9llo", "h\u00e9llo".encode("utf-8")),
    (bytearray(b"bytearray"), b"bytearray"),
    (memoryview(b"xmemoryview")[1:], b"memoryview"),
    (array.array("B", [1, 2, 3]), b"\x01\x02\x03"),
    (array.array("H", [0x4142]), array.array("H", [0x4142]).tobytes()),
    (b"", b""),
    ("", b""),
])
def test_input_kinds(value, expected):
    r = spawn_sync("cat", input=value)
    assert r.error is None and r.status == 0
    assert r.stdout == expected


@SMALL
@given(data=st.binary(max_size=200_000))
def test_hypothesis_arbitrary_bytes_through_cat(data):
    r = spawn_sync("cat", input=data, max_buffer=None)
    assert r.error is None
    assert r.status == 0
    assert r.stdout == data


def test_input_with_stdin_not_piped_is_ignored():
    r = spawn_sync("sh", ["-c", "cat; echo done"], input=b"ignored", stdio=["ignore", "pipe", "pipe"])
    assert r.stdout == b"done\n"


def test_input_to_a_child_that_does_not_read():
    # the child exits without reading 10 MB of input: no SIGPIPE in us, no hang
    t0 = time.monotonic()
    r = spawn_sync("true", input=b"x" * (10 * MIB))
    assert time.monotonic() - t0 < 5
    assert r.status == 0 and r.signal is None


def test_large_input_through_cat():
    data = os.urandom(MIB) * 20
    r = spawn_sync("cat", input=data, max_buffer=None)
    assert r.error is None and r.status == 0
    assert len(r.stdout) == len(data)
    assert r.stdout == data


def test_large_output_on_stdout_and_stderr_at_once():
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
    r = spawn_sync(PY, py(code), max_buffer=None)
    assert time.monotonic() - t0 < 20
    assert r.error is None and r.status == 0
    assert len(r.stdout) == n and len(r.stderr) == n
    assert r.stdout == bytes(range(256)) * (n // 256)
    assert r.stderr == bytes(reversed(range(256))) * (n // 256)


def test_large_input_and_both_outputs_at_once():
    # 8 MiB in, the same 8 MiB out on stdout and stderr: feeding and reading interleave
    data = os.urandom(8 * MIB)
    r = spawn_sync("sh", ["-c", "tee /dev/stderr"], input=data, max_buffer=None)
    assert r.error is None and r.status == 0
    assert r.stdout == data
    assert r.stderr == data


# ==========================================================================================
# timeout (Appendix 24)
# ==========================================================================================

def test_timeout_kills_with_sigterm_and_reports_etimedout():
    t0 = time.monotonic()
    r = spawn_sync("sh", ["-c", "echo before; exec sleep 10"], timeout=0.3)
    elapsed = time.monotonic() - t0
    assert 0.25 <= elapsed < 5
    assert isinstance(r.error, SpawnError)
    assert r.error.code == "ETIMEDOUT"
    assert r.error.errno == errno.ETIMEDOUT
    assert r.error.syscall == "spawnSync sh"
    assert r.status is None
    assert r.signal == "SIGTERM"
    assert r.pid > 0
    assert r.stdout == b"before\n"
    assert r.output == [None, b"before\n", b""]


@pytest.mark.parametrize("kill_signal", ["SIGKILL", 9, "sigkill"])
def test_timeout_with_kill_signal_sigkill(kill_signal):
    # the child ignores SIGTERM, so only the kill_signal can end it
    t0 = time.monotonic()
    r = spawn_sync("sh", ["-c", "trap '' TERM; exec sleep 10"], timeout=0.3,
                   kill_signal=kill_signal)
    assert time.monotonic() - t0 < 5
    assert r.error.code == "ETIMEDOUT"
    assert r.status is None
    assert r.signal == "SIGKILL"


def test_timeout_not_reached():
    r = spawn_sync("sleep", ["0.05"], timeout=5)
    assert (r.status, r.signal, r.error) == (0, None, None)


@pytest.mark.parametrize("timeout", [0, None])
def test_zero_or_none_timeout_means_none(timeout):
    r = spawn_sync("sleep", ["0.1"], timeout=timeout)
    assert (r.status, r.error) == (0, None)


def test_timeout_with_continuous_output():
    # a child that never stops writing is still stopped by the timeout
    # (about 64 MB/s, so that memory stays bounded whatever happens)
    code = "import os, time\nb = b'x' * 65536\nwhile True:\n    os.write(1, b)\n    time.sleep(0.001)"
    t0 = time.monotonic()
    r = spawn_sync(PY, py(code), timeout=0.5, max_buffer=None)
    assert time.monotonic() - t0 < 3
    assert r.error is not None and r.error.code == "ETIMEDOUT"
    assert r.signal == "SIGTERM"
    assert len(r.stdout) > 0 and r.stdout.count(b"x") == len(r.stdout)


# ==========================================================================================
# max_buffer (Appendix 25)
# ==========================================================================================

@pytest.mark.parametrize("fd", [1, 2])
def test_max_buffer_exceeded_is_enobufs(fd):
    t0 = time.monotonic()
    r = spawn_sync("sh", ["-c", f"head -c 100000 /dev/zero >&{fd}; exec sleep 10"],
                   max_buffer=1000)
    assert time.monotonic() - t0 < 5
    assert isinstance(r.error, SpawnError)
    assert r.error.code == "ENOBUFS"
    assert r.error.errno == errno.ENOBUFS
    assert r.error.syscall == "spawnSync sh"
    assert r.status is None
    assert r.signal == "SIGTERM"
    captured = r.output[fd]
    # all the data read so far, not truncated (Node: more than max_buffer)
    assert 1000 < len(captured) <= 100000
    assert captured == b"\0" * len(captured)


def test_max_buffer_exactly_reached_is_fine():
    r = spawn_sync("sh", ["-c", "head -c 1000 /dev/zero; head -c 1000 /dev/zero >&2"],
                   max_buffer=1000)
    assert r.error is None and r.status == 0
    assert r.stdout == b"\0" * 1000 and r.stderr == b"\0" * 1000


def test_default_max_buffer_is_one_mib():
    r = spawn_sync("head", ["-c", str(MIB), "/dev/zero"])
    assert r.error is None and len(r.stdout) == MIB
    r = spawn_sync("sh", ["-c", f"head -c {MIB + 1} /dev/zero; exec sleep 10"])
    assert r.error is not None and r.error.code == "ENOBUFS"
    assert r.signal == "SIGTERM"
    assert len(r.stdout) > MIB


@pytest.mark.parametrize("limit", [None, float("inf")])
def test_max_buffer_disabled(limit):
    r = spawn_sync("head", ["-c", str(3 * MIB), "/dev/zero"], max_buffer=limit)
    assert r.error is None and r.status == 0
    assert len(r.stdout) == 3 * MIB


def test_max_buffer_on_extra_pipe_slot():
    r = spawn_sync("sh", ["-c", "head -c 5000 /dev/zero >&3; exec sleep 10"],
                   stdio=["pipe"] * 4, max_buffer=100)
    assert r.error is not None and r.error.code == "ENOBUFS"
    assert r.signal == "SIGTERM"


# ==========================================================================================
# threads: the GIL is released, descriptors never cross children
# ==========================================================================================

def test_gil_released_four_sleeps_in_parallel():
    results = []
    errors = []

    def worker():
        try:
            results.append(spawn_sync("sleep", ["0.5"]))
        except BaseException as exc:      # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    elapsed = time.monotonic() - t0
    assert errors == []
    assert len(results) == 4
    assert all(r.status == 0 and r.error is None for r in results)
    assert elapsed < 1.5, f"4 x sleep 0.5 in threads took {elapsed:.2f} s: GIL held?"


def test_gil_released_python_runs_while_waiting():
    done = threading.Event()
    box = []

    def worker():
        box.append(spawn_sync("sleep", ["0.6"]))
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    ticks = 0
    t0 = time.monotonic()
    while not done.is_set() and time.monotonic() - t0 < WAIT:
        ticks += 1
    t.join(WAIT)
    assert box and box[0].status == 0
    # the main thread kept running Python the whole time (a held GIL gives ~0 ticks)
    assert ticks > 10000


def test_eight_threads_distinct_inputs_and_descriptors():
    nthreads, per_thread = 8, 25
    barrier = threading.Barrier(nthreads)
    failures = []

    def worker(t):
        try:
            barrier.wait(WAIT)
            for i in range(per_thread):
                data = (f"<thread {t} call {i}>".encode() * (1 + (i * 311) % 6000))
                r = spawn_sync("sh", ["-c", "cat; ls /proc/self/fd"], input=data,
                               max_buffer=None, timeout=WAIT)
                # ls itself holds descriptor 3 (its directory); anything more came from
                # another thread's spawn
                expected = data + b"0\n1\n2\n3\n"
                if r.status != 0 or r.error is not None or r.stdout != expected or r.stderr != b"":
                    failures.append((t, i, r.status, r.error, r.stdout[-40:], r.stderr[:200]))
        except BaseException as exc:      # pragma: no cover - reported below
            failures.append((t, repr(exc)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []


def test_threads_with_large_outputs():
    # each thread's capture grows (which takes the GIL back briefly) while others run
    failures = []

    def worker(t):
        try:
            data = bytes([t]) * (3 * MIB + t)
            r = spawn_sync("cat", input=data, max_buffer=None)
            if r.stdout != data:
                failures.append((t, len(r.stdout)))
        except BaseException as exc:      # pragma: no cover
            failures.append((t, repr(exc)))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []


# ==========================================================================================
# validation: before anything starts (SPEC §4, §8)
# ==========================================================================================

BAD_OPTIONS = [
    ({"input": 5}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"input": [1, 2]}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"input": 1.5}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"input": {"a": 1}}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"stdio": ["pipe", "pipe", "pipe", "ipc"]}, NodeValueError, "ERR_IPC_SYNC_FORK"),
    ({"stdio": ["ipc", "pipe", "pipe"]}, NodeValueError, "ERR_IPC_SYNC_FORK"),
    ({"stdio": ["pipe", "bogus"]}, NodeValueError, "ERR_INVALID_ARG_VALUE"),
    ({"max_buffer": -1}, RangeError, "ERR_OUT_OF_RANGE"),
    ({"max_buffer": float("nan")}, RangeError, "ERR_OUT_OF_RANGE"),
    ({"max_buffer": "1024"}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"timeout": -1}, RangeError, "ERR_OUT_OF_RANGE"),
    ({"timeout": "1"}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"kill_signal": "SIGNOPE"}, NodeTypeError, "ERR_UNKNOWN_SIGNAL"),
    ({"kill_signal": 1000}, NodeTypeError, "ERR_UNKNOWN_SIGNAL"),
    ({"cwd": 5}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"cwd": "a\0b"}, NodeValueError, "ERR_INVALID_ARG_VALUE"),
    ({"env": {"A=B": "x"}}, NodeValueError, "ERR_INVALID_ARG_VALUE"),
    ({"env": {"A": 5}}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ({"uid": -1}, RangeError, "ERR_OUT_OF_RANGE"),
    ({"gid": "root"}, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
]


def _marker_cmd(marker):
    return ["-c", f"touch {shlex.quote(str(marker))}"]


@pytest.mark.parametrize("options, exc_type, code", BAD_OPTIONS)
def test_spawn_sync_rejects_bad_options_before_starting(tmp_path, options, exc_type, code):
    marker = tmp_path / "started"
    with pytest.raises(exc_type) as info:
        spawn_sync("sh", _marker_cmd(marker), **options)
    assert info.value.code == code
    assert not marker.exists()


@pytest.mark.parametrize("options, exc_type, code", BAD_OPTIONS)
def test_exec_sync_rejects_bad_options_before_starting(tmp_path, options, exc_type, code):
    marker = tmp_path / "started"
    with pytest.raises(exc_type) as info:
        exec_sync(f"touch {shlex.quote(str(marker))}", **options)
    assert info.value.code == code
    assert not marker.exists()


@pytest.mark.parametrize("options, exc_type, code", BAD_OPTIONS)
def test_exec_file_sync_rejects_bad_options_before_starting(tmp_path, options, exc_type, code):
    marker = tmp_path / "started"
    with pytest.raises(exc_type) as info:
        exec_file_sync("sh", _marker_cmd(marker), **options)
    assert info.value.code == code
    assert not marker.exists()


@pytest.mark.parametrize("command, args, exc_type, code", [
    (123, [], NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    (None, [], NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ("", [], NodeValueError, "ERR_INVALID_ARG_VALUE"),
    ("sh\0x", [], NodeValueError, "ERR_INVALID_ARG_VALUE"),
    ("sh", "-c true", NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ("sh", ["-c", 5], NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    ("sh", ["-c", "a\0b"], NodeValueError, "ERR_INVALID_ARG_VALUE"),
])
def test_spawn_sync_rejects_bad_command_and_args(command, args, exc_type, code):
    with pytest.raises(exc_type) as info:
        spawn_sync(command, args)
    assert info.value.code == code


def test_shell_of_wrong_type_rejected(tmp_path):
    marker = tmp_path / "started"
    with pytest.raises(NodeTypeError) as info:
        spawn_sync("sh", _marker_cmd(marker), shell=5)
    assert info.value.code == "ERR_INVALID_ARG_TYPE"
    with pytest.raises(NodeTypeError) as info:
        exec_sync(f"touch {shlex.quote(str(marker))}", shell=5)
    assert info.value.code == "ERR_INVALID_ARG_TYPE"
    assert not marker.exists()


def test_options_are_not_mutated():
    stdio = ["pipe", "pipe"]
    env = {"FOO": "1", "DROP": None}
    spawn_sync("/bin/sh", ["-c", "true"], stdio=stdio, env=env)
    assert stdio == ["pipe", "pipe"]
    assert env == {"FOO": "1", "DROP": None}


# ==========================================================================================
# exec_sync / exec_file_sync (Appendix 27)
# ==========================================================================================

def test_exec_sync_returns_stdout(capfd):
    assert exec_sync("echo hello; echo ignored >&2") == b"hello\n"
    assert exec_sync("echo hello", encoding="utf-8") == "hello\n"
    capfd.readouterr()


def test_exec_sync_uses_sh_by_default_and_given_shell():
    assert exec_sync("echo ${BASH_VERSION:-none}") == b"none\n"     # /bin/sh here is not bash
    out = exec_sync("echo $BASH_VERSION", shell="/bin/bash", encoding="utf-8")
    assert out.strip() != ""


def test_exec_sync_input():
    assert exec_sync("cat", input="h\u00e9") == "h\u00e9".encode()
    assert exec_sync("tr a-z A-Z", input=b"abc") == b"ABC"


def test_exec_sync_exit_3_without_stderr():
    with pytest.raises(ExecError) as info:
        exec_sync("exit 3")
    e = info.value
    assert str(e) == "Command failed: exit 3"
    assert e.status == 3
    assert e.signal is None
    assert e.stdout == b"" and e.stderr == b""
    assert e.output == [None, b"", b""]
    assert isinstance(e.pid, int) and e.pid > 0
    assert e.error is None


def test_exec_sync_failure_message_has_stderr(capfd):
    with pytest.raises(ExecError) as info:
        exec_sync("echo partial; echo oops >&2; exit 4")
    e = info.value
    assert str(e) == "Command failed: echo partial; echo oops >&2; exit 4\noops\n"
    assert e.status == 4
    assert e.stdout == b"partial\n"
    assert e.stderr == b"oops\n"
    assert e.output == [None, b"partial\n", b"oops\n"]
    capfd.readouterr()


def test_exec_sync_failure_with_encoding(capfd):
    with pytest.raises(ExecError) as info:
        exec_sync("echo \u00e9 >&2; exit 1", encoding="utf-8")
    assert info.value.stderr == "\u00e9\n"
    assert str(info.value) == "Command failed: echo \u00e9 >&2; exit 1\n\u00e9\n"
    capfd.readouterr()


def test_exec_sync_killed_by_signal():
    with pytest.raises(ExecError) as info:
        exec_sync("kill -9 $$")
    e = info.value
    assert e.status is None
    assert e.signal == "SIGKILL"
    assert str(e) == "Command failed: kill -9 $$"


def test_exec_sync_missing_command_is_127(capfd):
    with pytest.raises(ExecError) as info:
        exec_sync("no_such_command_zz")
    e = info.value
    assert e.status == 127
    assert b"not found" in e.stderr
    assert e.pid > 0
    capfd.readouterr()


def test_exec_sync_timeout():
    t0 = time.monotonic()
    with pytest.raises(ExecError) as info:
        exec_sync("echo partial; exec sleep 10", timeout=0.3)
    assert time.monotonic() - t0 < 5
    e = info.value
    assert e.code == "ETIMEDOUT"
    assert isinstance(e.error, SpawnError) and e.error.code == "ETIMEDOUT"
    assert e.status is None
    assert e.signal == "SIGTERM"
    assert e.stdout == b"partial\n"
    assert e.pid > 0


def test_exec_file_sync_timeout_with_sigkill():
    with pytest.raises(ExecError) as info:
        exec_file_sync("sh", ["-c", "trap '' TERM; exec sleep 10"], timeout=0.3,
                       kill_signal="SIGKILL")
    assert info.value.code == "ETIMEDOUT"
    assert info.value.signal == "SIGKILL"


def test_exec_sync_max_buffer():
    with pytest.raises(ExecError) as info:
        exec_sync("head -c 5000 /dev/zero; exec sleep 10", max_buffer=100)
    e = info.value
    assert e.code == "ENOBUFS"
    assert e.error.code == "ENOBUFS"
    assert e.signal == "SIGTERM"
    assert len(e.stdout) > 100


def test_exec_file_sync_returns_stdout_without_shell():
    assert exec_file_sync("echo", ["$HOME", "a  b"]) == b"$HOME a  b\n"
    assert exec_file_sync("echo", ["x"], encoding="utf-8") == "x\n"
    assert exec_file_sync("cat", input=b"in") == b"in"


def test_exec_file_sync_with_shell():
    out = exec_file_sync("echo", ["$HOME"], shell=True, encoding="utf-8")
    assert out == os.environ["HOME"] + "\n"


def test_exec_file_sync_failure_message_is_file_and_args():
    with pytest.raises(ExecError) as info:
        exec_file_sync("sh", ["-c", "exit 3"])
    e = info.value
    assert str(e) == "Command failed: sh -c exit 3"
    assert e.status == 3
    assert e.output == [None, b"", b""]


def test_exec_file_sync_enoent():
    with pytest.raises(ExecError) as info:
        exec_file_sync("no-such-command-zz", ["x"])
    e = info.value
    assert e.code == "ENOENT"
    assert e.pid == 0
    assert e.status is None
    assert e.signal is None
    assert e.stdout is None and e.stderr is None and e.output is None
    assert isinstance(e.error, SpawnError)
    assert e.error.code == "ENOENT"
    assert e.error.syscall == "spawnSync no-such-command-zz"
    assert e.syscall == "spawnSync no-such-command-zz"
    assert e.error.path == "no-such-command-zz"


def test_exec_sync_missing_cwd(tmp_path):
    with pytest.raises(ExecError) as info:
        exec_sync("true", cwd=str(tmp_path / "nope"), stdio=NO_STDIN)
    assert info.value.code == "ENOENT"
    assert info.value.pid == 0


def test_exec_sync_stdio_inherit_for_stdout_returns_none(capfd):
    assert exec_sync("echo through", stdio=["pipe", "inherit", "pipe"]) is None
    assert capfd.readouterr().out == "through\n"


# -- stderr forwarding, checked in a separate Python whose stderr we capture ---------------

FORWARD_SCRIPT = r"""
import sys
import child_process as cp
mode = sys.argv[1]
try:
    if mode == "exec_sync":
        out = cp.exec_sync("echo to-out; echo to-err >&2")
    elif mode == "exec_sync_utf8":
        out = cp.exec_sync("echo to-out; echo to-err >&2", encoding="utf-8")
    elif mode == "exec_file_sync":
        out = cp.exec_file_sync("sh", ["-c", "echo to-out; echo to-err >&2"])
    elif mode == "exec_sync_fail":
        out = cp.exec_sync("echo to-out; echo to-err >&2; exit 2")
    elif mode == "exec_sync_stdio_pipe":
        out = cp.exec_sync("echo to-out; echo to-err >&2", stdio="pipe")
    elif mode == "exec_file_sync_stdio_pipe":
        out = cp.exec_file_sync("sh", ["-c", "echo to-out; echo to-err >&2"], stdio="pipe")
    elif mode == "exec_sync_stdio_list":
        out = cp.exec_sync("echo to-out; echo to-err >&2", stdio=["pipe", "pipe", "pipe"])
    elif mode == "exec_sync_stdio_inherit_err":
        out = cp.exec_sync("echo to-out; echo to-err >&2", stdio=["pipe", "pipe", "inherit"])
    print("RESULT", repr(out))
except cp.ExecError as e:
    print("ERROR", e.status, repr(e.stderr))
"""


def _forward(mode):
    proc = subprocess.run([PY, "-c", FORWARD_SCRIPT, mode], capture_output=True, timeout=60)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


@pytest.mark.parametrize("mode, result", [
    ("exec_sync", "RESULT b'to-out\\n'"),
    ("exec_sync_utf8", "RESULT 'to-out\\n'"),
    ("exec_file_sync", "RESULT b'to-out\\n'"),
    ("exec_sync_fail", "ERROR 2 b'to-err\\n'"),
])
def test_stderr_forwarded_to_parent_without_stdio(mode, result):
    code, out, err = _forward(mode)
    assert code == 0, err
    assert out.strip() == result
    assert err == "to-err\n"


@pytest.mark.parametrize("mode", ["exec_sync_stdio_pipe", "exec_file_sync_stdio_pipe",
                                  "exec_sync_stdio_list"])
def test_stderr_not_forwarded_with_stdio(mode):
    code, out, err = _forward(mode)
    assert code == 0, err
    assert out.strip() == "RESULT b'to-out\\n'"
    assert err == ""


def test_stderr_inherited_appears_once():
    code, out, err = _forward("exec_sync_stdio_inherit_err")
    assert code == 0, err
    assert out.strip() == "RESULT b'to-out\\n'"
    assert err == "to-err\n"


# ==========================================================================================
# leaks: buffers released, captures freed, descriptors closed (plus conftest's check)
# ==========================================================================================

@pytest.mark.parametrize("command, options", [
    (["cat"], {}),
    (["sh", "-c", "exec sleep 10"], {"timeout": 0.1}),
    (["sh", "-c", "cat >/dev/null; head -c 5000 /dev/zero; exec sleep 10"], {"max_buffer": 100}),
    (["true"], {}),
    (["no-such-command-zz"], {}),
])
def test_input_buffer_released(command, options):
    data = bytearray(b"y" * 300_000)
    spawn_sync(command[0], command[1:], input=data, **options)
    data.extend(b"more")                   # BufferError if a buffer export was leaked
    assert len(data) == 300_004
    view_source = bytearray(b"abc")
    spawn_sync(command[0], command[1:], input=memoryview(view_source), **options)
    view_source.extend(b"d")
    assert view_source == bytearray(b"abcd")


def test_captured_output_is_not_leaked():
    def once():
        spawn_sync("head", ["-c", str(MIB), "/dev/zero"])
        spawn_sync("sh", ["-c", "head -c 300000 /dev/zero; exec sleep 10"], max_buffer=1000)
        spawn_sync("sh", ["-c", "head -c 300000 /dev/zero >&2; exec sleep 10"], timeout=0.05)
        spawn_sync("cat", input=b"z" * MIB, stdio=["pipe"] * 4)

    once()
    gc.collect()
    tracemalloc.start()
    try:
        once()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10):
            once()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 2 * MIB, f"grew by {after - before} bytes"


def _fds() -> set:
    return {n for n in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{n}")}


@pytest.mark.parametrize("case", ["absolute-path", "missing-cwd", "not-executable",
                                  "exec_sync-missing-cwd", "exec_file_sync-absolute-path"])
def test_failed_exec_leaks_no_fd(tmp_path, case):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    before = _fds()
    if case == "absolute-path":
        r = spawn_sync(str(tmp_path / "missing"))
        assert r.error.code == "ENOENT"
    elif case == "missing-cwd":
        r = spawn_sync("sh", ["-c", "true"], cwd=str(tmp_path / "nope"))
        assert r.error.code == "ENOENT"
    elif case == "not-executable":
        r = spawn_sync(str(script))
        assert r.error is not None
    elif case == "exec_sync-missing-cwd":
        with pytest.raises(ExecError):
            exec_sync("true", cwd=str(tmp_path / "nope"))
    else:
        with pytest.raises(ExecError):
            exec_file_sync(str(tmp_path / "missing"))
    leaked = {n: os.readlink(f"/proc/self/fd/{n}") for n in _fds() - before
              if os.path.exists(f"/proc/self/fd/{n}")}
    for n in leaked:                       # keep later tests clean
        os.close(int(n))
    assert leaked == {}


def test_many_runs_leave_no_descriptors_or_zombies():
    fds_before = _fds()
    for i in range(60):
        kind = i % 4
        if kind == 0:
            r = spawn_sync("sh", ["-c", "echo x >&3"], stdio=["pipe"] * 4)
            assert r.output[3] == b"x\n"
        elif kind == 1:
            r = spawn_sync("no-such-command-zz")
            assert r.error.code == "ENOENT"
        elif kind == 2:
            r = spawn_sync("cat", input=b"q" * 70000)
            assert len(r.stdout) == 70000
        else:
            r = spawn_sync("sh", ["-c", "exec sleep 5"], timeout=0.01)
            assert r.error.code == "ETIMEDOUT"
    assert _fds() == fds_before


def test_input_the_child_never_reads_is_epipe_like_node():
    # Node 20: spawnSync('true', {input: <10 MB>}) gives status 0 and error.code 'EPIPE'
    r = spawn_sync("true", input=b"x" * 10_000_000)
    assert r.status == 0
    assert r.error is not None and r.error.code == "EPIPE"
    with pytest.raises(ExecError) as info:
        exec_file_sync("true", input=b"x" * 10_000_000)
    assert info.value.code == "EPIPE"
