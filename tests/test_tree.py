"""Beyond Node (issue 9): ``kill_tree=True`` (the child leads its own process group and kill(),
timeout and abort signal all of it) and ``die_with_parent`` (PR_SET_PDEATHSIG, Linux), for
spawn, exec, exec_file, fork and the sync family."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import START_PATHS, hang_guard, start_path
from child_process import (AbortController, NodeTypeError, NodeValueError, exec, exec_file_sync,
                           fork, spawn, spawn_sync)
from child_process._loop import get_loop

get_loop()
PY = sys.executable
LINUX = sys.platform.startswith("linux")
_spawned: list = []

#: a shell that starts two grandchildren, prints their pids, and waits
TREE = 'sleep 60 & a=$!; sleep 60 & echo "$a $!"; wait'


@pytest.fixture(autouse=True)
def _reap_children():
    with hang_guard(_spawned):
        yield


def sp(*args, **kwargs):
    child = spawn(*args, **kwargs)
    _spawned.append(child)
    return child


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that is not us counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_dead(pids, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def cleanup(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def grandchildren_of(child) -> list:
    """The two pids the TREE shell prints on its stdout."""
    out = []
    child.stdout.on("data", out.append)
    get_loop().run_until(lambda: b"\n" in b"".join(out), 10)
    return [int(p) for p in b"".join(out).split()]


# ----------------------------------------------------------------------------------------------
# kill_tree
# ----------------------------------------------------------------------------------------------

def test_kill_tree_child_leads_its_own_group_and_kill_reaches_every_member():
    child = sp("sh", ["-c", TREE], kill_tree=True, stdio=["ignore", "pipe", "ignore"])
    pids = grandchildren_of(child)
    try:
        assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
        assert all(os.getpgid(p) == child.pid for p in pids)
        assert child.kill() is True
        assert child.wait(10) == (None, "SIGTERM")
        assert wait_dead(pids)
        assert child.killed
    finally:
        cleanup(pids)


def test_without_kill_tree_only_the_child_is_signalled():
    child = sp("sh", ["-c", TREE], stdio=["ignore", "pipe", "ignore"])
    pids = grandchildren_of(child)
    try:
        assert os.getpgid(child.pid) == os.getpgid(0)      # Node's default: our group
        exits = []
        child.on("exit", lambda *a: exits.append(a))
        child.kill()
        get_loop().run_until(lambda: exits, 10)
        assert exits == [(None, "SIGTERM")]
        time.sleep(0.1)
        assert all(alive(p) for p in pids)
    finally:
        cleanup(pids)
        child.wait(10)          # 'close' once the grandchildren let go of stdout


def test_kill_tree_after_the_leader_exited_reaches_what_it_left_behind():
    child = sp("sh", ["-c", "sleep 60 >/dev/null & echo $!; exit 0"], kill_tree=True,
               stdio=["ignore", "pipe", "ignore"])
    out = []
    child.stdout.on("data", out.append)
    assert child.wait(10) == (0, None)
    orphan = int(b"".join(out))
    try:
        assert alive(orphan)
        assert child.kill("SIGKILL") is True
        assert wait_dead([orphan])
    finally:
        cleanup([orphan])


def test_kill_tree_timeout_kills_the_group():
    child = sp("sh", ["-c", TREE], kill_tree=True, timeout=0.5, kill_signal="SIGKILL",
               stdio=["ignore", "pipe", "ignore"])
    pids = grandchildren_of(child)
    try:
        assert child.wait(10) == (None, "SIGKILL")
        assert wait_dead(pids)
    finally:
        cleanup(pids)


def test_kill_tree_abort_kills_the_group():
    controller = AbortController()
    child = sp("sh", ["-c", TREE], kill_tree=True, signal=controller.signal,
               stdio=["ignore", "pipe", "ignore"])
    errors = []
    child.on("error", errors.append)
    pids = grandchildren_of(child)
    try:
        controller.abort()
        assert child.wait(10) == (None, "SIGTERM")
        assert errors and errors[0].code == "ABORT_ERR"
        assert wait_dead(pids)
    finally:
        cleanup(pids)


def test_exec_with_kill_tree_and_timeout_kills_grandchildren():
    results = []
    child = exec(TREE, kill_tree=True, timeout=0.5,
                 callback=lambda err, out, errout: results.append((err, out)))
    _spawned.append(child)
    child.wait(10)
    err, out = results[0]
    pids = [int(p) for p in out.split()]
    try:
        assert err is not None and err.killed and err.signal == "SIGTERM"
        assert len(pids) == 2 and wait_dead(pids)
    finally:
        cleanup(pids)


def test_spawn_sync_with_kill_tree_and_timeout_kills_grandchildren():
    result = spawn_sync("sh", ["-c", TREE], kill_tree=True, timeout=0.5)
    pids = [int(p) for p in result.stdout.split()]
    try:
        assert result.error is not None and result.error.code == "ETIMEDOUT"
        assert result.signal == "SIGTERM"
        assert len(pids) == 2 and wait_dead(pids)
    finally:
        cleanup(pids)


def test_spawn_sync_without_kill_tree_leaves_grandchildren():
    # the grandchildren hold stdout open: Node's rule closes the pipes after the kill anyway
    result = spawn_sync("sh", ["-c", TREE], timeout=0.5)
    pids = [int(p) for p in result.stdout.split()]
    try:
        assert result.error.code == "ETIMEDOUT"
        assert all(alive(p) for p in pids)
    finally:
        cleanup(pids)


def test_kill_tree_with_detached_uses_the_new_session_as_the_group():
    child = sp("sh", ["-c", TREE], kill_tree=True, detached=True,
               stdio=["ignore", "pipe", "ignore"])
    pids = grandchildren_of(child)
    try:
        assert os.getsid(child.pid) == child.pid == os.getpgid(child.pid)
        child.kill("SIGKILL")
        child.wait(10)
        assert wait_dead(pids)
    finally:
        cleanup(pids)


@pytest.mark.parametrize("path", START_PATHS)
def test_kill_tree_on_every_start_path(path):
    with start_path(path) as extra:
        child = sp("sh", ["-c", TREE], kill_tree=True, stdio=["ignore", "pipe", "ignore"],
                   **extra)
    pids = grandchildren_of(child)
    try:
        assert os.getpgid(child.pid) == child.pid
        child.kill()
        child.wait(10)
        assert wait_dead(pids)
    finally:
        cleanup(pids)


@pytest.mark.parametrize("bad, code", [("yes", "ERR_INVALID_ARG_TYPE"), (1, "ERR_INVALID_ARG_TYPE")])
def test_kill_tree_is_validated_before_anything_starts(bad, code):
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(NodeTypeError) as info:
        spawn("true", kill_tree=bad)
    assert info.value.code == code
    with pytest.raises(NodeTypeError):
        spawn_sync("true", kill_tree=bad)
    assert len(os.listdir("/proc/self/fd")) == before


# ----------------------------------------------------------------------------------------------
# die_with_parent
# ----------------------------------------------------------------------------------------------

PRINT_PDEATHSIG = textwrap.dedent("""
    import ctypes, sys
    libc = ctypes.CDLL(None, use_errno=True)
    value = ctypes.c_int(-1)
    libc.prctl(2, ctypes.byref(value), 0, 0, 0)      # PR_GET_PDEATHSIG
    print(value.value)
""")


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("option, expected", [(True, 9), ("SIGTERM", 15), (10, 10),
                                              (False, 0), (None, 0)])
def test_die_with_parent_sets_the_death_signal(option, expected):
    result = spawn_sync(PY, ["-c", PRINT_PDEATHSIG], die_with_parent=option)
    assert result.error is None and int(result.stdout) == expected
    child = sp(PY, ["-c", PRINT_PDEATHSIG], die_with_parent=option)
    out = []
    child.stdout.on("data", out.append)
    assert child.wait(20) == (0, None)
    assert int(b"".join(out)) == expected


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("die", [True, False])
def test_a_child_dies_with_its_killed_parent_only_when_asked(die):
    middle_code = textwrap.dedent(f"""
        import sys, time, child_process
        c = child_process.spawn("sleep", ["60"], stdio="ignore", die_with_parent={die!r})
        print(c.pid, flush=True)
        c.unref()
        time.sleep(60)
    """)
    middle = subprocess.Popen([PY, "-c", middle_code], stdout=subprocess.PIPE)
    try:
        grandchild = int(middle.stdout.readline())
        assert alive(grandchild)
        middle.kill()
        middle.wait(10)
        if die:
            assert wait_dead([grandchild], 10)
        else:
            time.sleep(0.3)
            assert alive(grandchild)
    finally:
        middle.kill()
        middle.wait()
        middle.stdout.close()
        cleanup([grandchild])


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's")
def test_die_with_parent_in_a_forked_python_child():
    code = PRINT_PDEATHSIG.replace("print(value.value)",
                                   "import child_process; child_process.parent.send(value.value)")
    child = fork_py(code, die_with_parent="SIGHUP")
    got = []
    child.on("message", got.append)
    assert child.wait(20) == (0, None)
    assert got == [signal.SIGHUP]


def fork_py(code: str, **kwargs):
    import tempfile
    fd, path = tempfile.mkstemp(suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(code)
    try:
        child = fork(path, **kwargs)
    finally:
        pass
    _spawned.append(child)
    child.once("close", lambda *a: os.unlink(path))
    return child


@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's")
def test_exec_file_sync_takes_both_options():
    out = exec_file_sync(PY, ["-c", PRINT_PDEATHSIG], die_with_parent=True, kill_tree=True)
    assert int(out) == 9


@pytest.mark.parametrize("bad, error, code", [
    ("SIGNOPE", NodeTypeError, "ERR_UNKNOWN_SIGNAL"),
    (0.5, NodeTypeError, "ERR_INVALID_ARG_TYPE"),
    (1000, NodeTypeError, "ERR_UNKNOWN_SIGNAL"),
])
def test_die_with_parent_is_validated_before_anything_starts(bad, error, code):
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(error) as info:
        spawn("true", die_with_parent=bad)
    assert info.value.code == code
    assert len(os.listdir("/proc/self/fd")) == before


def test_die_with_parent_is_refused_where_the_platform_lacks_it(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(NodeValueError) as info:
        spawn("true", die_with_parent=True)
    assert info.value.code == "ERR_FEATURE_UNAVAILABLE_ON_PLATFORM"
    spawn_sync("true", die_with_parent=False)      # off is fine everywhere
