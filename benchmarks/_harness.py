"""Shared pieces of the benchmark runner: jobs (how one measurement process is started and
read), the build of the C references, and number formatting.

A *job* is one process the runner starts in every round.  It measures one or more *rows* (a
row is one implementation in one setting, e.g. ``popen`` or ``popen/big``) and prints one JSON
line, which the job turns into ``{row key: value}`` plus ``{row key: reason}`` for rows it
could not measure.  Three kinds exist:

* :class:`CJob` — a C reference program from ``c/``, built with ``cc -O2`` into a temporary
  directory once per run;
* :class:`NodeJob` — a script from ``node/`` run by the ``node`` on ``PATH``;
* :class:`PyJob` — ``_worker.py`` run by this interpreter (``python -m _worker`` from this
  directory), measuring Python implementations, in :meth:`Toolchain.python_env` (bytecode
  cached in a directory of the run).

C and Node programs print ``{"n": ops, "seconds": total}``; the value of their row is
``seconds / n``.  ``_worker.py`` prints the value of each row itself.

A job created with ``child=True`` (the ``capture`` scenario) gets one more parameter,
``child``: the argv of the program whose stdout it captures, the same for every
implementation — ``c/writer.c`` built by :class:`Toolchain`, or ``head -c N /dev/zero`` when
there is no ``cc`` (see :meth:`Toolchain.writer`).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GiB = 1 << 30


class Unavailable(Exception):
    """A job or row cannot run on this machine; the message says why."""


class JobFailed(Exception):
    """A measurement process failed or printed nothing usable."""


# ------------------------------------------------------------------------ environment

class Toolchain:
    """Finds ``cc`` and ``node`` once, builds the C references on demand into a temp dir."""

    def __init__(self):
        self.cc = shutil.which("cc")
        self.node = shutil.which("node")
        self._tmp = None
        self._built = {}
        self._python_env = None

    def _tempdir(self):
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="cp-bench-")
        return self._tmp.name

    def cpus(self):
        """The CPUs this runner may use, in order (its affinity mask)."""
        try:
            return sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            return list(range(os.cpu_count() or 1))

    def python_env(self):
        """The environment of the Python workers, and so of every Python child they start.

        Bytecode is cached, in a directory of this run (``PYTHONPYCACHEPREFIX``; nothing is
        written beside the sources), even where ``PYTHONDONTWRITEBYTECODE`` is set: without a
        ``.pyc``, every start of a child importing ``child_process`` would compile its modules
        again, which is not what an installed package costs.  The probe run fills the cache,
        so the rounds find it warm."""
        if self._python_env is None:
            env = dict(os.environ)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = os.path.join(self._tempdir(), "pycache")
            self._python_env = env
        return self._python_env

    def close(self):
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def binary(self, source):
        """Path of the executable built from ``c/<source>``; raises Unavailable."""
        if source in self._built:
            result = self._built[source]
            if isinstance(result, Unavailable):
                raise result
            return result
        try:
            result = self._build(source)
        except Unavailable as exc:
            self._built[source] = exc
            raise
        self._built[source] = result
        return result

    def _build(self, source):
        if self.cc is None:
            raise Unavailable("no C compiler `cc` on PATH")
        src = os.path.join(HERE, "c", source)
        exe = os.path.join(self._tempdir(), os.path.splitext(source)[0])
        proc = subprocess.run([self.cc, "-O2", "-o", exe, src],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            lines = proc.stdout.strip().splitlines() or ["(no output)"]
            raise Unavailable(f"`cc -O2 {source}` failed: {lines[0]}")
        return exe

    def writer(self, nbytes):
        """The argv of a child writing exactly ``nbytes`` bytes to its stdout: ``c/writer.c``
        (1 MiB write(2)s from a static buffer) when it builds, else ``head -c N /dev/zero``."""
        try:
            return [self.binary("writer.c"), str(int(nbytes))]
        except Unavailable as exc:
            head = shutil.which("head")
            if head is None:
                raise Unavailable(f"no child to capture: {exc}, and no `head` on PATH") from exc
            return [head, "-c", str(int(nbytes)), "/dev/zero"]

    def writer_description(self):
        """What :meth:`writer` runs, in words, for the notes under a table."""
        try:
            self.binary("writer.c")
        except Unavailable as exc:
            if shutil.which("head") is None:
                return f"none ({exc}, and no `head` on PATH)"
            return (f"`head -c N /dev/zero` (c/writer.c not available: {exc}); its write "
                    f"sizes are not those of c/writer.c, so figures are not comparable with "
                    f"runs that had it")
        return "`c/writer.c` built with `cc -O2`: write(2) of 1 MiB chunks from a static buffer"

    def versions(self):
        """Short descriptions of the tools, for the results header."""
        out = {"python": sys.version.split()[0] + f" ({sys.executable})"}
        out["node"] = _first_line([self.node, "--version"]) if self.node else "not found"
        out["cc"] = _first_line([self.cc, "--version"]) if self.cc else "not found"
        return out


def _first_line(argv):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    lines = proc.stdout.strip().splitlines()
    return lines[0] if lines else "unknown"


def run_json(argv, timeout, env=None, cwd=None, cpu=None):
    """Run ``argv`` (in ``env`` and ``cwd``, default this process's; pinned to CPU ``cpu``
    when given, with every thread and child it starts), return the JSON object on the last
    line of its stdout."""
    pin = None
    if cpu is not None:
        def pin():
            os.sched_setaffinity(0, {cpu})
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, env=env,
                              cwd=cwd, preexec_fn=pin)
    except subprocess.TimeoutExpired:
        raise JobFailed(f"no answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise JobFailed(f"cannot start: {exc}") from exc
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        detail = err[-1] if err else "no message"
        raise JobFailed(f"exit status {proc.returncode}: {detail}")
    lines = proc.stdout.strip().splitlines()
    try:
        data = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise JobFailed(f"printed no JSON result: {proc.stdout[-200:]!r}") from None
    if not isinstance(data, dict):
        raise JobFailed(f"printed {data!r} instead of a JSON object")
    return data


# -------------------------------------------------------------------------- placement

class Placement:
    """Where a parent and the child it talks to run, for the IPC scenarios, whose figures on a
    small VM depend above all on it: a message to a process sleeping on the *same* CPU costs a
    context switch, one to a process on *another* CPU a cross-CPU wake-up, several times
    dearer here.  Left to the scheduler, a run gets one or the other, so its results are
    bimodal; each placement pins them instead.

    ``same=True``: parent and child on the first CPU of the runner's affinity mask.  Else the
    parent on the first, the child on the second (unavailable with a single CPU).  The runner
    pins the measuring process (all its threads, and children by inheritance); the program
    then moves its child to ``child_cpu`` (-1: leave it on the parent's) right after starting
    it, before any message is exchanged."""

    def __init__(self, suffix, label, same):
        self.suffix = suffix   # of the row keys: "impl/<suffix>"
        self.label = label     # column heading: "one CPU"
        self.same = same

    def cpus(self, tools):
        """(the parent's CPU, the child's CPU or -1); raises Unavailable."""
        cpus = tools.cpus()
        if not cpus:
            raise Unavailable("no CPU in this process's affinity mask")
        if self.same:
            return cpus[0], -1
        if len(cpus) < 2:
            raise Unavailable("a single CPU: no second one for the child")
        return cpus[0], cpus[1]


ONE_CPU = Placement("1cpu", "one CPU", same=True)
TWO_CPUS = Placement("2cpu", "two CPUs", same=False)
PLACEMENTS = (ONE_CPU, TWO_CPUS)


# ------------------------------------------------------------------------------- jobs

class Job:
    """One measurement process per round, producing values for ``keys``.

    ``params(cfg, probe)`` returns this job's parameters from the scenario's configuration
    (``cfg``); ``probe=True`` asks for a tiny run that only checks the job works."""

    def __init__(self, name, keys, params, child=False, placement=None):
        self.name = name
        self.keys = list(keys)
        self.params = params
        self.child = child  # add p["child"], the argv of the writer of p["nbytes"] bytes
        self.placement = placement  # a Placement: which CPUs the parent and its child get

    def prepare(self, tools):
        """Raise Unavailable if this job cannot run at all here."""
        if self.child:
            tools.writer(1)
        if self.placement is not None:
            self.placement.cpus(tools)

    def resolve(self, tools, cfg, probe):
        """This job's parameters for one run, with the child's argv when it needs one and
        ``child_cpu`` (-1: the parent's) when the job has a placement."""
        p = dict(self.params(cfg, probe))
        if self.child:
            p["child"] = tools.writer(p["nbytes"])
        if self.placement is not None:
            p["child_cpu"] = self.placement.cpus(tools)[1]
        return p

    def command(self, tools, keys, cfg, probe):
        raise NotImplementedError

    def options(self, tools):
        """``run_json`` keywords for the process: its ``env``, ``cwd`` (default: the runner's
        own) and the ``cpu`` it is pinned to (default: none)."""
        if self.placement is not None:
            return {"cpu": self.placement.cpus(tools)[0]}
        return {}

    def parse(self, data, keys):
        """Return ({key: value}, {key: reason}) from the process's JSON output."""
        raise NotImplementedError

    def timeout(self, cfg, keys):
        p = self.params(cfg, False)
        per_key = 60 + 3 * float(p.get("budget", 30)) + 20 * (int(p.get("hold", 0)) / GiB)
        return per_key * max(1, len(keys))


class _ExternalJob(Job):
    """A C or Node program measuring exactly one row, printing {"n": .., "seconds": ..}."""

    def __init__(self, name, key, params, argv, child=False, placement=None):
        super().__init__(name, [key], params, child, placement)
        self.argv = argv  # argv(p) -> list of str arguments after the program

    def parse(self, data, keys):
        try:
            n, seconds = int(data["n"]), float(data["seconds"])
        except (KeyError, TypeError, ValueError):
            raise JobFailed(f"unexpected output {data!r}") from None
        if n <= 0:
            raise JobFailed(f"measured no operation: {data!r}")
        return {self.keys[0]: seconds / n}, {}, _rss_info(data, self.keys[0])


def _rss_info(data, key):
    """{key: {"rss": bytes, "maxrss": bytes}} with whichever of the two the program printed."""
    info = {name: data[name] for name in ("rss", "maxrss")
            if isinstance(data.get(name), (int, float)) and data[name] > 0}
    return {key: info} if info else {}


class CJob(_ExternalJob):
    def __init__(self, name, key, source, params, argv, child=False, placement=None):
        super().__init__(name, key, params, argv, child, placement)
        self.source = source

    def prepare(self, tools):
        tools.binary(self.source)
        super().prepare(tools)

    def command(self, tools, keys, cfg, probe):
        p = self.resolve(tools, cfg, probe)
        return [tools.binary(self.source)] + [str(a) for a in self.argv(p)]


class NodeJob(_ExternalJob):
    def __init__(self, name, key, script, params, argv, child=False, placement=None):
        super().__init__(name, key, params, argv, child, placement)
        self.script = script

    def prepare(self, tools):
        if tools.node is None:
            raise Unavailable("no `node` on PATH")
        super().prepare(tools)
        # Node cannot set a CPU affinity itself: its child is started through `taskset`
        if (self.placement is not None and self.placement.cpus(tools)[1] >= 0
                and shutil.which("taskset") is None):
            raise Unavailable("no `taskset` on PATH to place Node's child on its CPU")

    def command(self, tools, keys, cfg, probe):
        script = os.path.join(HERE, "node", self.script)
        return [tools.node, script] + [str(a) for a in self.argv(self.resolve(tools, cfg, probe))]


class PyJob(Job):
    """``_worker.py`` measuring the Python implementations behind ``keys``.

    A key is ``impl`` or ``impl/suffix``; the worker is asked for ``impl``.  All keys of one
    job share one process per round (and so share its state, e.g. the memory it holds)."""

    def __init__(self, name, group, keys, params, child=False, placement=None):
        super().__init__(name, keys, params, child, placement)
        self.group = group

    @staticmethod
    def impl_of(key):
        return key.split("/", 1)[0]

    def command(self, tools, keys, cfg, probe):
        spec = self.resolve(tools, cfg, probe)
        spec["group"] = self.group
        spec["impls"] = [self.impl_of(k) for k in keys]
        return [sys.executable, "-m", "_worker", json.dumps(spec)]

    def options(self, tools):
        # Run as a module (``-m``, from this directory) rather than as a script: a
        # multiprocessing 'spawn' child re-imports the main module, and a module comes from
        # the bytecode cache where a script would be compiled again in every child (~5 ms).
        return dict(super().options(tools), env=tools.python_env(), cwd=HERE)

    def parse(self, data, keys):
        by_impl = {self.impl_of(k): k for k in keys}
        results, skipped, info = {}, {}, {}
        for impl, res in (data.get("results") or {}).items():
            if impl in by_impl:
                results[by_impl[impl]] = float(res["value"])
                if isinstance(res.get("maxrss"), (int, float)) and res["maxrss"] > 0:
                    info.setdefault(by_impl[impl], {})["maxrss"] = res["maxrss"]
        for impl, why in (data.get("skipped") or {}).items():
            if impl in by_impl:
                skipped[by_impl[impl]] = str(why)
        for key in keys:
            if key not in results and key not in skipped:
                skipped[key] = "the worker reported nothing"
        rss = data.get("rss")
        for key in results:
            if isinstance(rss, (int, float)) and rss > 0:
                info.setdefault(key, {})["rss"] = rss
        notes = data.get("info") or {}
        if notes:
            info["_notes"] = {str(k): str(v) for k, v in notes.items()}
        return results, skipped, info


# ------------------------------------------------------------------------- formatting

def fmt_time(seconds):
    """535e-6 -> '535 µs', 0.0712 -> '71.2 ms', 3 significant digits."""
    if seconds is None:
        return ""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if seconds >= scale or unit == "ns":
            v = seconds / scale
            digits = 0 if v >= 100 else 1 if v >= 10 else 2
            return f"{v:.{digits}f} {unit}"
    return ""


def fmt_ratio(x):
    if x is None:
        return ""
    if x >= 100:
        return f"×{x:.0f}"
    if x >= 10:
        return f"×{x:.1f}"
    return f"×{x:.2f}"


def fmt_rate(mb_per_s):
    """1152.3 -> '1152 MB/s', 87.66 -> '87.7 MB/s' (MB = 10^6 bytes)."""
    if mb_per_s is None:
        return ""
    digits = 0 if mb_per_s >= 100 else 1 if mb_per_s >= 10 else 2
    return f"{mb_per_s:.{digits}f} MB/s"


def fmt_bytes(n):
    if n >= GiB:
        return f"{n / GiB:.1f} GiB"
    return f"{n / (1 << 20):.0f} MiB"


def fmt_msg_rate(per_second):
    """905123 -> '905k msg/s', 1.14e6 -> '1.14M msg/s', 3 significant digits."""
    if per_second is None:
        return ""
    for scale, unit in ((1e6, "M"), (1e3, "k"), (1.0, "")):
        if per_second >= scale or unit == "":
            v = per_second / scale
            digits = 0 if v >= 100 else 1 if v >= 10 else 2
            return f"{v:.{digits}f}{unit} msg/s"
    return ""
