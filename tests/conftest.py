"""Every test that spawns is checked for leaks: no descriptor, no child (zombie or alive) and no
referenced loop handle may outlive it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

import pytest

from child_process import _spawn, _sync
from child_process._loop import get_loop

NODE = shutil.which("node")

# The library keeps descriptors on /dev/null for 'ignore' slots (a pair per compiled module that
# spawns), opened on first use and kept for the process's life: open them before any leak check
# records the open descriptors.
_spawn.devnull_descriptors()
_sync.devnull_descriptors()


def open_fds() -> set:
    return set(int(n) for n in os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


def fd_details(fds: set) -> dict:
    out = {}
    for fd in fds:
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            out[fd] = "?"
    return out


def my_children() -> dict:
    """pid -> state letter for every process whose parent is this process."""
    me = os.getpid()
    found = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if len(rest) > 1 and int(rest[1]) == me:
            found[int(name)] = rest[0]
    return found


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail a test that leaves a descriptor, a child process or a live loop handle behind."""
    if request.node.get_closest_marker("no_leak_check"):
        yield
        return
    loop = get_loop()          # the loop's own epoll descriptor is not a leak
    before_fds = open_fds()
    before_children = set(my_children())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        # let callbacks already queued (a 'close' on the next turn) run
        for _ in range(5):
            if loop.has_ready:
                loop.run_once(0)
        leaked_fds = open_fds() - before_fds
        leaked_children = {p: s for p, s in my_children().items() if p not in before_children}
        alive = loop.refs > 0
        if not leaked_fds and not leaked_children and not alive:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    problems = []
    if leaked_fds:
        problems.append(f"leaked descriptors: {fd_details(leaked_fds)}")
    if leaked_children:
        problems.append(f"leaked children (pid: state): {leaked_children}")
    if alive:
        problems.append(f"the loop still has {loop.refs} referenced handle(s)")
    # clean up so one failure does not cascade into every later test
    for pid in leaked_children:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except OSError:
            pass
    pytest.fail("; ".join(problems))


def pytest_configure(config):
    config.addinivalue_line("markers", "no_leak_check: skip the descriptor/child leak check")
    config.addinivalue_line("markers", "node: needs the node binary")


#: The ways a child is started, for tests that must hold on each: the vfork path (Linux's
#: default), posix_spawn (the default elsewhere; CHILD_PROCESS_SPAWNER=posix_spawn here), and
#: the vfork path switching uid/gid (root only: to our own ids).
START_PATHS = [
    pytest.param("vfork", id="vfork"),
    pytest.param("posix_spawn", id="posix_spawn"),
    pytest.param("uid", id="uid", marks=pytest.mark.skipif(
        os.geteuid() != 0, reason="uid/gid switching needs root")),
]


@contextlib.contextmanager
def start_path(path: str):
    """Start children of this process on ``path`` (one of START_PATHS) for a while; yields the
    spawn() keywords the path needs. In a child process: ``start_path_env``."""
    previous = _spawn.spawner()
    name = "posix_spawn" if path == "posix_spawn" else "vfork"
    _spawn.set_spawner(name)
    _sync.set_spawner(name)
    try:
        yield {"uid": os.getuid(), "gid": os.getgid()} if path == "uid" else {}
    finally:
        _spawn.set_spawner(previous)
        _sync.set_spawner(previous)


def start_path_env(path: str) -> dict:
    """The environment entries that choose ``path`` in a fresh Python (uid/gid aside)."""
    return {"CHILD_PROCESS_SPAWNER": "posix_spawn" if path == "posix_spawn" else "vfork"}


def python_child(code: str) -> list:
    """argv running ``code`` in a fresh Python (for children with precise behaviour)."""
    return [sys.executable, "-c", code]


class Hang(Exception):
    """A test ran past its time limit (raised from SIGALRM)."""


def _on_alarm(signum, frame):
    raise Hang("test took too long: the loop is probably stuck")


@contextlib.contextmanager
def hang_guard(spawned: list, seconds: float = 30):
    """Fail a test that hangs; then kill and reap what it left in ``spawned`` (a failing test's
    children), before the leak check looks."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        while spawned:
            child = spawned.pop()
            if child.pid is not None and child.exit_code is None and child.signal_code is None:
                try:
                    child.kill("SIGKILL")
                except Exception:
                    pass
            try:
                child.wait(timeout=1)
            except Exception:
                for stream in child.stdio:
                    if stream is not None and not stream.destroyed:
                        stream.destroy()
                try:
                    child.wait(timeout=5)
                except Exception:
                    pass


@pytest.fixture
def reap():
    """Register ChildProcess objects; at teardown each is killed if still running and waited
    for (a listener's exception leaving wait() does not stop the wait)."""
    children: list = []
    yield children.append
    for child in children:
        if child.pid is not None and child.exit_code is None and child.signal_code is None:
            child.kill("SIGKILL")
        for _ in range(10):
            try:
                child.wait(30.0)
                break
            except TimeoutError:
                break
            except Exception:
                continue


@pytest.fixture
def raw_parent():
    """Make ``ipc_peers.RawParent``s (the test as a child's parent on a raw socket pair); each
    is killed if still running and closed at teardown."""
    from ipc_peers import RawParent
    made = []

    def make(*args, **kwargs) -> RawParent:
        peer = RawParent(*args, **kwargs)
        made.append(peer)
        return peer
    yield make
    for peer in made:
        peer.close()
