"""Helpers shared by the reliability tests."""

from __future__ import annotations

import os
import sys
import textwrap
import time

from child_process._loop import get_loop

PY = sys.executable
WAIT = 20.0
MIB = 1024 * 1024
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__import__("child_process").__file__)))

#: Prepended to every Python child script that uses the library: ``p`` is the channel and
#: ``out(...)`` reports one event as a JSON line on stdout.
PRELUDE = """\
import child_process, json, os, sys
p = child_process.parent
def out(*args):
    sys.stdout.write(json.dumps(list(args), ensure_ascii=True, default=repr) + "\\n")
    sys.stdout.flush()
"""


def child_env(**extra) -> dict:
    """os.environ with this checkout's sources first on PYTHONPATH (children import the library
    under test, not some other copy)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra)
    return env


_counter = [0]


def script(tmp_path, code: str, name: str | None = None) -> str:
    _counter[0] += 1
    path = tmp_path / (name or f"child_{_counter[0]}.py")
    path.write_text(textwrap.dedent(code))
    return str(path)


def run_until(cond, timeout: float = WAIT) -> bool:
    return get_loop().run_until(cond, timeout)


def spin(seconds: float) -> None:
    get_loop().run_until(lambda: False, seconds)


def rss_kib(pid: str = "self") -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def fd_count(pid: str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def zombies_of(pid: int | None = None) -> list:
    """Zombie children of ``pid`` (default: this process)."""
    me = os.getpid() if pid is None else pid
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if int(rest[1]) == me and rest[0] == "Z":
            found.append(int(name))
    return found


def record(child) -> list:
    """Every channel/process event of ``child`` in order."""
    events = []
    child.on("message", lambda m, h=None: events.append(("message", m)))
    child.on("internalMessage", lambda m: events.append(("internal", m)))
    child.on("error", lambda e: events.append(("error", getattr(e, "code", None))))
    child.on("disconnect", lambda: events.append(("disconnect",)))
    child.on("exit", lambda code, sig: events.append(("exit", code, sig)))
    child.on("close", lambda code, sig: events.append(("close", code, sig)))
    return events


class Stopwatch:
    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return round(time.monotonic() - self.t0, 3)


class RawParent:
    """A Python child (using the library) on a socket pair whose other end is ``self.sock``: the
    test is its parent and reads/writes the channel byte by byte.  The child reports events as
    JSON lines on its stdout (PRELUDE's ``out``)."""

    def __init__(self, path: str, mode: str = "json", args=()):
        import socket
        import subprocess
        self.sock, theirs = socket.socketpair()
        env = child_env(NODE_CHANNEL_FD=str(theirs.fileno()),
                        NODE_CHANNEL_SERIALIZATION_MODE=mode)
        try:
            self.proc = subprocess.Popen([PY, path, *args], pass_fds=(theirs.fileno(),), env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finally:
            theirs.close()
        self.sock.settimeout(WAIT)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until_eof(self) -> bytes:
        chunks = []
        while True:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)

    def finish(self):
        """Close our end; (returncode, events, stderr text)."""
        import json
        import subprocess
        self.sock.close()
        try:
            out, err = self.proc.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        events = [json.loads(line) for line in out.decode().split("\n") if line.startswith("[")]
        return self.proc.returncode, events, err.decode(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self.sock.close()
