"""A workload run while signals arrive at a high rate (test_faults.py's storm tests).

Importable (the in-process test) and runnable as a script (the CHILD_PROCESS_EXIT_WATCHER=sigchld
variant in a fresh interpreter: ``python _storm.py <tmpdir>`` prints the figures as JSON).

The storm is a thread that ``pthread_kill``s the main thread with SIGUSR1 (a Python handler is
installed, without SA_RESTART, as Python always does: every blocking system call of the main
thread can fail with EINTR) and SIGCHLD (spurious: no child of ours changed state), about every
0.2 ms.  The workload checks every result; an EINTR that surfaced would be an exception.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

ECHO = """\
import child_process
p = child_process.parent
def on_message(m):
    if m == "bye":
        p.disconnect()
    else:
        p.send(m)
p.on("message", on_message)
"""


class Storm:
    def __init__(self, pause: float = 0.0002):
        self.pause = pause
        self.handled = 0
        self.sent = 0
        self._stop = threading.Event()
        self._main = threading.main_thread().ident

    def _on_usr1(self, signum, frame):
        self.handled += 1

    def __enter__(self):
        self._previous = signal.signal(signal.SIGUSR1, self._on_usr1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        sigs = (signal.SIGUSR1, signal.SIGUSR1, signal.SIGCHLD)
        while not self._stop.is_set():
            signal.pthread_kill(self._main, sigs[self.sent % 3])
            self.sent += 1
            time.sleep(self.pause)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        time.sleep(0.01)            # let a signal still pending run its handler
        signal.signal(signal.SIGUSR1, self._previous)


def workload(tmpdir: str) -> dict:
    import child_process as cp
    from child_process import exec, exec_file_sync, fork, spawn, spawn_sync
    figures = {"spawn_sync": 0, "spawn": 0, "messages": 0, "bytes": 0}
    data = os.urandom(4 << 20)

    # --- spawn_sync: big input and output, exit status, a timeout -------------------------------
    for _ in range(4):
        r = spawn_sync("cat", input=data, max_buffer=64 << 20)
        assert r.error is None and r.status == 0 and r.stdout == data, (r.error, r.status)
        figures["spawn_sync"] += 1
        figures["bytes"] += 2 * len(data)
    for k in range(20):
        r = spawn_sync("sh", ["-c", f"echo {k}; exit {k % 7}"])
        assert (r.status, r.stdout, r.error) == (k % 7, f"{k}\n".encode(), None), r
        figures["spawn_sync"] += 1
    r = spawn_sync("sleep", ["5"], timeout=0.3)
    assert r.error is not None and r.error.code == "ETIMEDOUT" and r.signal == "SIGTERM", r
    assert exec_file_sync("echo", ["a b"]) == b"a b\n"
    figures["spawn_sync"] += 2

    # --- the loop: pipes both ways, many children, exit codes ----------------------------------
    cat = spawn("cat")
    got = []
    cat.stdout.on("data", got.append)
    cat.stdin.end(data)
    assert cat.wait(30) == (0, None)
    assert b"".join(got) == data
    figures["spawn"] += 1
    figures["bytes"] += 2 * len(data)
    kids = [spawn("sh", ["-c", f"exit {k}"]) for k in range(30)]
    for k, kid in enumerate(kids):
        assert kid.wait(30) == (k, None)
    figures["spawn"] += len(kids)
    sleeper = spawn("sleep", ["30"])
    try:
        sleeper.wait(0.2)
        raise AssertionError("wait(0.2) returned for sleep 30")
    except TimeoutError:
        pass
    assert sleeper.kill() is True
    assert sleeper.wait(30) == (None, "SIGTERM")
    figures["spawn"] += 1
    results = []
    exec("echo hi; exit 2", callback=lambda e, o, s: results.append((e.code, o))).wait(30)
    assert results == [(2, "hi\n")], results
    figures["spawn"] += 1

    # --- IPC: 3000 messages each way, in order ------------------------------------------------
    path = os.path.join(tmpdir, "storm_echo.py")
    with open(path, "w") as f:
        f.write(ECHO)
    for mode in ("json", "advanced"):
        child = fork(path, serialization=mode)
        back = []
        child.on("message", back.append)
        n = 3000
        for i in range(n):
            child.send({"i": i, "pad": "p" * (i % 200)})
        cp.get_loop().run_until(lambda back=back, n=n: len(back) == n, 30)
        assert [m["i"] for m in back] == list(range(n)), len(back)
        child.send("bye")
        assert child.wait(30) == (0, None)
        figures["messages"] += 2 * n
        figures["spawn"] += 1
    return figures


def main():
    tmpdir = sys.argv[1]
    base = sorted(os.listdir("/proc/self/fd"))
    import child_process
    child_process.spawn("true").wait(10)           # the loop and its descriptors exist first
    base = sorted(os.listdir("/proc/self/fd"))
    t0 = time.monotonic()
    with Storm() as storm:
        figures = workload(tmpdir)
    figures["seconds"] = round(time.monotonic() - t0, 2)
    figures["signals_sent"] = storm.sent
    figures["usr1_handled"] = storm.handled
    from child_process import _loop
    figures["watcher"] = _loop.EXIT_WATCHER
    figures["leaked_fds"] = sorted(set(os.listdir("/proc/self/fd")) - set(base))
    figures["zombies"] = [s for s in os.popen("ps -o stat= --ppid %d" % os.getpid()).read().split()
                          if s.startswith("Z")]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
