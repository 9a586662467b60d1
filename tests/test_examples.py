"""The examples in ``examples/`` run as documented: ``python examples/x.py`` prints its result
and exits 0 (issue 7: Node's documented handle-passing patterns)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name: str) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.join(ROOT, "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name)], env=env,
                          capture_output=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert proc.stderr == b""
    return proc.stdout.decode()


def test_worker_sockets_example():
    out = run_example("worker_sockets.py")
    lines = out.splitlines()
    assert lines[-1] == "ok"
    replies = [line for line in lines if line.startswith("client ")]
    assert len(replies) == 5
    for line in replies:
        source, reply = re.fullmatch(r"client \d from ([\d.]+): (.*)", line).groups()
        want = "special" if source == "127.0.0.2" else "normal"
        assert reply == f"Request handled with {want} priority"


def test_shared_server_example():
    out = run_example("shared_server.py")
    lines = out.splitlines()
    assert lines[-1] == "ok"
    counts = [re.fullmatch(r"handled by (parent|child \d+): (\d+) connection\(s\)", line)
              for line in lines[:-1]]
    assert all(counts), lines
    assert sum(int(m.group(2)) for m in counts) == 30
