#!/usr/bin/env python3
"""Benchmark runner of the `child_process` package (the contract is shared/BENCHMARKS.md).

    python benchmarks/run.py [--quick] [--only NAME[,NAME...]] [--rounds N] [--out PATH]
    python benchmarks/run.py --list

For every scenario, every implementation runs in the same run: the C reference program (built
with ``cc -O2`` into a temporary directory when ``cc`` exists), the peers (``subprocess``,
``os.posix_spawn``, ``asyncio``, ``multiprocessing``, Node.js when ``node`` is on PATH) and
ours (``child_process``, when it imports).

How it measures
---------------
* **One fresh process per implementation per round.**  Each implementation is a separate
  program — the C reference, a Node script, or ``_worker.py`` for the Python ones — started
  anew in every round.  It times its own loop (warm-up operations first, then up to ``n``
  operations or until a time budget is used up) and prints the mean time of one operation as
  JSON.  Interpreter start-up and imports are therefore never counted, no implementation sees
  another's imports, memory or leftover children, and all three languages are measured the
  same way.  The one exception is ``spawn_bigparent``: its Python worker first has to fill
  gigabytes of memory, so one worker per round holds the memory and measures every Python
  implementation in turn (their order rotating from round to round).
* **What is timed.**  Only the operation itself: the IPC scenarios time the steady-state
  messages (never the fork, the child's start-up or its exit), ``fork_startup`` times from
  the start call to the child's first message, each scenario's notes say exactly what.
* **Python workers** run as ``python -m _worker`` with bytecode cached in a directory of the
  run, even where ``PYTHONDONTWRITEBYTECODE`` is set, so a Python child importing
  ``child_process`` costs what an installed package costs (see ``_harness.Toolchain``).
* **Placement.**  In ``ipc_pingpong`` and ``ipc_stream`` every implementation is measured
  twice, parent and child pinned to one CPU and to two CPUs: on a small VM a message's cost
  depends above all on that, and left to the scheduler a run would get either (see
  ``_harness.Placement``).
* **Settling.**  In ``spawn_seq``, ``concurrent200`` and ``concurrent200_asyncio`` every
  implementation sleeps ``settle`` seconds (0.2; 0.1 with ``--quick``) after its set-up, before
  its warm-up (``BENCH_SETTLE``, honoured by the C programs,
  the Node scripts and ``_worker.py``).  On the 2-core VMs here a process that has just been
  busy — an interpreter that has just imported its modules — gets its vfork children
  scheduled worse for a while: a loop of bare ``os.posix_spawn`` calls runs a batch of 200
  in 63–65 ms after 0.2 s of sleep and in 65–76 ms without it, for the same CPU time
  (docs/benchmarks.md).  The C reference, which starts in a millisecond, also gets 5–10 %
  faster with it: the load of the job before it still counts for a while.  The sleep is not
  timed; all three languages get it alike.
* **Round-robin.**  Round 1 runs every implementation once, then round 2 runs them all again,
  and so on; the order rotates each round.  Drift of the shared machine (other tenants, CPU
  frequency) thus hits all implementations alike, and the spread (min / max over the rounds)
  shows how much there was.
* **Statistics.**  One value per implementation per round; the table shows their median,
  min and max, and the ratio of each median to the reference's median ("×1.07").  The
  reference is the C program, or the first peer that ran when the C program could not be
  built.  Values are times per operation (lower is better), except in ``capture``, which
  shows throughputs in MB/s (higher is better); its ratio is the reference's MB/s over the
  row's, so there too ×1.00 is as fast as the reference and a higher ratio is slower.
* **Availability.**  Before the rounds, each implementation is tried once with a tiny run.
  One that cannot run here (no ``node``, no ``cc``, ``child_process`` not importable, a
  function ours does not have yet, an error or a hang) is listed in the table as skipped
  with the reason; so is one failing in a later round.  The runner itself never fails on it.

Output: a progress line on stderr, a Markdown table per scenario on stdout, all tables in the
results file (``--out``, default ``benchmarks/results.md``), and, when matplotlib imports, a
PNG bar chart per scenario beside the results file (``benchmarks/<scenario>.png``).

``--quick`` (smaller counts and fewer rounds, 1 GiB instead of 8 GiB for the big parent,
64 MiB instead of 256 MiB captured) runs the whole suite in under 2 minutes on a 2-core VM
(about 110 s); the full run takes about 12 minutes.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _harness import GiB, JobFailed, Toolchain, Unavailable, run_json  # noqa: E402
from _scenarios import SCENARIOS, Result  # noqa: E402

PROBE_TIMEOUT = 120.0


class Progress:
    """One status line on stderr: rewritten in place on a terminal, one line per step else."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.dirty = False

    def __call__(self, text):
        elapsed = int(time.monotonic() - self.started)
        line = f"[{elapsed // 60}:{elapsed % 60:02d}] {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:150])
            self.dirty = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self, text=None):
        if self.tty and self.dirty:
            self.stream.write("\r\x1b[K")
            self.dirty = False
        if text:
            self.stream.write(text + "\n")
        self.stream.flush()


def _settled(options, cfg):
    """``run_json`` keywords with ``BENCH_SETTLE`` in the environment (see "Settling")."""
    settle = cfg.get("settle", 0)
    if not settle:
        return options
    env = dict(options.get("env") or os.environ, BENCH_SETTLE=str(settle))
    return dict(options, env=env)


def _rotate(items, r):
    if not items:
        return items
    r %= len(items)
    return items[r:] + items[:r]


def run_scenario(scenario, tools, quick, rounds, progress):
    cfg = scenario.config(quick)
    rounds = rounds or cfg["rounds"]
    result = Result(scenario, cfg, rounds)
    scenario.setup(tools, result)
    t0 = time.monotonic()

    # Which rows can run here at all: a tiny run of each, one process per row.
    active = []  # [job, [keys still measured]]
    for job in scenario.jobs:
        try:
            job.prepare(tools)
        except Unavailable as exc:
            for key in job.keys:
                result.skip(key, str(exc))
            continue
        keys = []
        for key in job.keys:
            progress(f"{scenario.name}: checking {job.name}")
            try:
                data = run_json(job.command(tools, [key], cfg, probe=True), PROBE_TIMEOUT,
                                **job.options(tools))
                ok, skipped, _ = job.parse(data, [key])
            except JobFailed as exc:
                result.skip(key, f"failed: {exc}")
                continue
            except Unavailable as exc:
                result.skip(key, str(exc))
                continue
            if key in ok:
                keys.append(key)
            else:
                result.skip(key, skipped.get(key, "the check reported nothing"))
        if keys:
            active.append([job, keys])

    # The rounds: every job once per round, in an order rotating from round to round.
    for r in range(rounds):
        for job, keys in _rotate(active, r):
            if not keys:
                continue
            these = _rotate(list(keys), r)
            progress(f"{scenario.name}: round {r + 1}/{rounds} · {job.name}")
            try:
                data = run_json(job.command(tools, these, cfg, probe=False),
                                job.timeout(cfg, these), **_settled(job.options(tools), cfg))
                ok, skipped, info = job.parse(data, these)
            except JobFailed as exc:
                ok, skipped, info = {}, {k: f"failed: {exc}" for k in these}, {}
            for key, value in ok.items():
                result.add(key, value)
            for key, why in skipped.items():
                result.skip(key, f"round {r + 1}: {why}")
                keys.remove(key)
            result.merge_info(info)

    result.seconds = time.monotonic() - t0
    return result


def machine_summary(tools):
    lines = []
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f", {kib * 1024 / GiB:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    lines.append(f"- machine: {platform.system()} {platform.release()}, {cpu}, "
                 f"{os.cpu_count()} CPUs{mem}")
    for name, version in tools.versions().items():
        lines.append(f"- {name}: {version}")
    lines.append(f"- child_process: {child_process_status()}")
    return lines


def child_process_status():
    code = ("import json, child_process as m; "
            "print(json.dumps([getattr(m, '__version__', '?'), m.__file__] + "
            "[n for n in ('spawn', 'spawn_sync', 'run') if hasattr(m, n)]))")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        return "not importable (" + (err[-1] if err else "no message") + ")"
    try:
        version, path, *has = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"unknown ({proc.stdout.strip()[:100]!r})"
    return f"{version} from {path} (has {', '.join(has) or 'none of spawn, spawn_sync, run'})"


def write_plots(results, directory):
    """A PNG per scenario when matplotlib is available; silently nothing otherwise."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception:
        return []
    written = []
    for result in results:
        path = os.path.join(directory, f"{result.scenario.name}.png")
        try:
            if result.scenario.plot(result, path, plt):
                written.append(path)
        except Exception as exc:  # a plot is a bonus: never lose the tables over it
            print(f"plot of {result.scenario.name} failed: {exc}", file=sys.stderr)
    return written


def _show(path):
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def parse_args(argv):
    names = [s.name for s in SCENARIOS]
    ap = argparse.ArgumentParser(
        description="Run the child_process benchmark suite.",
        epilog="scenarios: " + ", ".join(names))
    ap.add_argument("--quick", action="store_true",
                    help="smaller counts, a 1 GiB big parent, 64 MiB captured "
                         "(whole suite < 2 minutes)")
    ap.add_argument("--only", metavar="NAME",
                    help="run only these scenarios (comma-separated)")
    ap.add_argument("--rounds", type=int, metavar="N",
                    help="rounds per scenario (default: per scenario, fewer with --quick)")
    ap.add_argument("--out", metavar="PATH", default=os.path.join(HERE, "results.md"),
                    help="results file (default: benchmarks/results.md); plots go beside it")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(names)}")
        args.scenarios = [s for s in SCENARIOS if s.name in wanted]
    else:
        args.scenarios = list(SCENARIOS)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:22} {s.title}")
        return 0

    progress = Progress()
    tools = Toolchain()
    started = time.monotonic()
    mode = "quick" if args.quick else "full"
    header = [
        "# child_process benchmarks",
        "",
        f"Run {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')} ({mode} mode"
        + (f", {args.rounds} rounds" if args.rounds else "") + ") with "
        "`python benchmarks/run.py" + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else "")
        + (f" --rounds {args.rounds}" if args.rounds else "") + "`.",
        "",
    ] + machine_summary(tools) + [""]

    results, sections = [], []
    try:
        for scenario in args.scenarios:
            result = run_scenario(scenario, tools, args.quick, args.rounds, progress)
            progress.done()
            section = scenario.table(result) + f"\n_{scenario.name} took {result.seconds:.0f} s._\n"
            print(section, flush=True)
            results.append(result)
            sections.append(section)
    finally:
        tools.close()

    total = time.monotonic() - started
    text = "\n".join(header) + "\n" + "\n".join(sections) + f"\nWhole run: {total:.0f} s.\n"
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    plots = write_plots(results, os.path.dirname(out))
    progress.done(f"wrote {_show(out)}" + "".join(f", {_show(p)}" for p in plots)
                  + f" in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
