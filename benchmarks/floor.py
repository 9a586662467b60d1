"""Where the floor of the spawning targets is on this machine.

The targets of `spawn_seq` and `concurrent200` are ratios to a C program. This script measures,
in one process and alternating round by round, how far from that program a Python library can
get at best: the same C program doing the work that spawning with pipes cannot skip, and
minimal Python loops that call this package's C primitives directly (no options, no events, no
stream objects), against the library itself. It answers "is the gap in our code, or in the
machine?".

    python benchmarks/floor.py [--rounds N] [--one-cpu]

``--one-cpu`` pins this process, and so every child, to one CPU. The machine then does all the
work of a batch on one core, and the ratios show what each row costs in total (the parent's
work and its children's), without the placement of vfork children between cores that moves
two-core batch times by up to ±10 % between processes.

Needs `cc` (it builds the suite's `c/spawn_seq.c` and `c/concurrent.c`); uses private modules
of child_process (a diagnostic, not an API example).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import child_process
from child_process import _io, _spawn
from child_process._loop import IOWatcher, get_loop, watch_exit
from child_process._options import build_env

HERE = pathlib.Path(__file__).resolve().parent
TRUE = b"/bin/true"
SEQ_N = 200
CONC_N = 3
DEVNULL = _spawn.FD_DEVNULL


def build_c(tmp: str, name: str) -> str:
    """The benchmark suite's own C reference ``c/<name>.c``, built into ``tmp``."""
    cc = shutil.which("cc")
    if cc is None:
        sys.exit("needs a C compiler (`cc`)")
    exe = os.path.join(tmp, name)
    subprocess.run([cc, "-O2", "-o", exe, str(HERE / "c" / f"{name}.c")], check=True)
    return exe


def c_job(exe: str, *args: object) -> float:
    out = subprocess.run([exe, *map(str, args)], check=True, capture_output=True,
                         text=True).stdout
    report = json.loads(out)
    return float(report["seconds"]) / int(report["n"])


def timed(op, n: int) -> float:
    for _ in range(5):
        op()
    start = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - start) / n


def watch_to_eof(loop, fd: int) -> None:
    """Read ``fd`` on ``loop`` until its end of file, then close it."""
    watcher = IOWatcher(loop, fd, None, None)

    def on_readable() -> None:
        if _io.read_chunk(fd, 65536) == b"":
            watcher.stop()
            watcher.on_readable = None
            os.close(fd)

    watcher.on_readable = on_readable
    watcher.start_reading()


# -- sequential: one child at a time ---------------------------------------------------------

def minimal_seq(env: list[bytes], pipes: bool, use_loop: bool):
    """spawn + wait with our C primitives only: blocking reads and waitpid, or our loop."""
    loop = get_loop()

    def op() -> None:
        if pipes:
            ours_in, child_in = _spawn.make_stdio_pipe(True, True)
            out_r, out_w = _spawn.make_stdio_pipe(False, False)
            err_r, err_w = _spawn.make_stdio_pipe(False, False)
            fds = [child_in, out_w, err_w]
        else:
            fds = [DEVNULL, DEVNULL, DEVNULL]
        pid = _spawn.spawn(TRUE, [TRUE], env, None, fds, False, -1, -1, False, 0)
        if pipes:
            for fd in fds:
                os.close(fd)
        if not use_loop:
            if pipes:
                for fd in (out_r, err_r):
                    _spawn.set_nonblocking(fd, False)
                    while os.read(fd, 65536):
                        pass
                    os.close(fd)
                os.close(ours_in)
            os.waitpid(pid, 0)
            return
        if pipes:
            watch_to_eof(loop, out_r)
            watch_to_eof(loop, err_r)
        watch_exit(loop, pid, lambda status: None)
        loop.run()
        if pipes:
            os.close(ours_in)

    return op


# -- concurrent: 200 children started, then all waited for ------------------------------------

def minimal_concurrent(env: list[bytes]):
    loop = get_loop()

    def op() -> None:
        for _ in range(200):
            r, w = _spawn.make_stdio_pipe(False, False)
            pid = _spawn.spawn(TRUE, [TRUE], env, None, [DEVNULL, w, DEVNULL], False, -1, -1,
                               False, 0)
            os.close(w)
            watch_to_eof(loop, r)
            watch_exit(loop, pid, lambda status: None)
        loop.run()

    return op


def library_concurrent() -> None:
    for _ in range(200):
        child_process.spawn("/bin/true", stdio=["ignore", "pipe", "ignore"]).on(
            "close", lambda *_: None)
    child_process.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--one-cpu", action="store_true",
                        help="pin this process and its children to one CPU")
    options = parser.parse_args()
    rounds = options.rounds
    if options.one_cpu:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    env = build_env(None)
    with tempfile.TemporaryDirectory() as tmp:
        seq_c, conc_c = build_c(tmp, "spawn_seq"), build_c(tmp, "concurrent")
        seq = {
            # spawn_seq N WARMUP BUDGET [HOLD_BYTES [pipes]], concurrent BATCHES WARMUP BUDGET
            "C posix_spawn + waitpid (reference)": lambda: c_job(seq_c, SEQ_N, 10, 100),
            "C, three pipes read to EOF": lambda: c_job(seq_c, SEQ_N, 10, 100, 0, "pipes"),
            "Python, our primitives, blocking waitpid": lambda: timed(
                minimal_seq(env, False, False), SEQ_N),
            "Python, our primitives, three pipes, blocking": lambda: timed(
                minimal_seq(env, True, False), SEQ_N),
            "Python, our primitives + our loop": lambda: timed(
                minimal_seq(env, False, True), SEQ_N),
            "Python, our primitives + our loop, three pipes": lambda: timed(
                minimal_seq(env, True, True), SEQ_N),
            "spawn_sync(stdio='ignore')": lambda: timed(
                lambda: child_process.spawn_sync("/bin/true", stdio="ignore"), SEQ_N),
            "spawn(stdio='ignore').wait()": lambda: timed(
                lambda: child_process.spawn("/bin/true", stdio="ignore").wait(), SEQ_N),
            "spawn().wait() (three pipes)": lambda: timed(
                lambda: child_process.spawn("/bin/true").wait(), SEQ_N),
        }
        conc = {
            "C concurrent200 (reference)": lambda: c_job(conc_c, CONC_N, 1, 100),
            "Python, our primitives + our loop": lambda: timed(minimal_concurrent(env), CONC_N),
            "spawn ×200 + run()": lambda: timed(library_concurrent, CONC_N),
        }
        for title, jobs, unit in (("sequential spawn + wait of /bin/true", seq, 1e6),
                                  ("200 concurrent /bin/true, stdout piped", conc, 1e3)):
            results: dict[str, list[float]] = {name: [] for name in jobs}
            for i in range(rounds):
                print(f"{title}: round {i + 1}/{rounds}", file=sys.stderr)
                for name, job in jobs.items():
                    results[name].append(job())
            medians = {name: statistics.median(v) for name, v in results.items()}
            ref = next(iter(medians.values()))
            print(f"\n{title} (median of {rounds} rounds)\n")
            print(f"| | {'µs' if unit == 1e6 else 'ms'} | vs C |\n|---|---:|---:|")
            for name, value in medians.items():
                print(f"| {name} | {value * unit:.1f} | ×{value / ref:.3f} |")


if __name__ == "__main__":
    main()
