"""subprocess.Popen and asyncio children living beside ours (test_faults.py).

Importable (in-process test) and runnable as a script (``python _coexist.py`` in a fresh
interpreter, e.g. with CHILD_PROCESS_EXIT_WATCHER=sigchld; prints the figures as JSON).

Their children catch every catchable signal and print what they caught: we must neither reap
them (their returncodes would be lost: Popen/asyncio would see 0 or ECHILD) nor signal them,
while our own children are started, killed with several signals and reaped around them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

PY = sys.executable

THEIRS = """\
import signal, sys, time
got = []
for s in range(1, signal.NSIG):
    if s in (signal.SIGKILL, signal.SIGSTOP):
        continue
    try:
        signal.signal(s, lambda n, f: got.append(n))
    except (OSError, ValueError, RuntimeError):
        pass
print("ready", flush=True)
time.sleep(float(sys.argv[1]))
print(got, flush=True)
sys.exit(int(sys.argv[2]))
"""


def _ours_round(cp, n: int) -> int:
    """Start and reap a batch of our children, killing some with various signals."""
    started = 0
    kids = [cp.spawn("sh", ["-c", f"exit {k % 5}"]) for k in range(n)]
    sleepers = [cp.spawn("sleep", ["30"]) for _ in range(3)]
    for sig, sleeper in zip(("SIGTERM", "SIGUSR1", "SIGKILL"), sleepers):
        assert sleeper.kill(sig) is True
    for k, kid in enumerate(kids):
        assert kid.wait(30) == (k % 5, None)
    for sig, sleeper in zip(("SIGTERM", "SIGUSR1", "SIGKILL"), sleepers):
        assert sleeper.wait(30) == (None, sig)
    r = cp.spawn_sync("sleep", ["5"], timeout=0.05, kill_signal="SIGINT")
    assert r.signal == "SIGINT", r
    started += n + 4
    return started


def run() -> dict:
    import child_process as cp
    figures = {"ours": 0, "popen": 0, "asyncio": 0}
    # -- subprocess.Popen children, exiting at different moments while ours come and go --------
    theirs = [subprocess.Popen([PY, "-I", "-S", "-c", THEIRS, str(0.05 * k), str(10 + k)],
                               stdout=subprocess.PIPE, bufsize=0) for k in range(8)]
    for p in theirs:        # unbuffered: readline() must not swallow what communicate() reads
        assert p.stdout.readline() == b"ready\n"
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.6:
            figures["ours"] += _ours_round(cp, 6)
        for k, p in enumerate(theirs):
            out = p.communicate(timeout=30)[0]
            assert p.returncode == 10 + k, (k, p.returncode)
            assert out == b"[]\n", (k, out)           # no signal reached it
    finally:                    # a failure leaves nothing behind for the next test
        for p in theirs:
            if p.returncode is None:
                p.kill()
                p.communicate()
    figures["popen"] += len(theirs)

    # -- asyncio's children, with ours driven by the same asyncio loop -------------------------
    async def main():
        procs = [await asyncio.create_subprocess_exec(
            PY, "-I", "-S", "-c", THEIRS, str(0.04 * k), str(40 + k),
            stdout=asyncio.subprocess.PIPE) for k in range(6)]
        for p in procs:
            assert await p.stdout.readline() == b"ready\n"
        mine = [cp.spawn("sh", ["-c", f"sleep 0.0{k}; exit {k}"]) for k in range(6)]
        killed = cp.spawn("sleep", ["30"])
        killed.kill("SIGTERM")
        results = await asyncio.gather(*(p.communicate() for p in procs))
        codes = [p.returncode for p in procs]
        mine_codes = [await c for c in mine]
        res = await cp.exec_file_async("sh", ["-c", "echo mine"])
        assert await killed == (None, "SIGTERM")
        return codes, [r[0] for r in results], mine_codes, res.stdout
    codes, outs, mine_codes, mine_out = asyncio.run(main())
    assert codes == [40 + k for k in range(6)], codes
    assert outs == [b"[]\n"] * 6, outs
    assert mine_codes == [(k, None) for k in range(6)], mine_codes
    assert mine_out == "mine\n"
    figures["asyncio"] += 6
    figures["ours"] += 8
    return figures


def main():
    import child_process
    from child_process import _loop
    child_process.spawn("true").wait(10)
    base = sorted(os.listdir("/proc/self/fd"))
    figures = run()
    figures["watcher"] = _loop.EXIT_WATCHER
    figures["leaked_fds"] = sorted(set(os.listdir("/proc/self/fd")) - set(base))
    figures["zombies"] = [s for s in os.popen("ps -o stat= --ppid %d" % os.getpid()).read().split()
                          if s.startswith("Z")]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
