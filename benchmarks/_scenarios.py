"""The scenarios of the benchmark suite (see shared/BENCHMARKS.md), one entry each in
``SCENARIOS``, in the order they run.

A :class:`Scenario` lists its table rows (one per implementation, C reference first, then the
peers, then ours), the jobs that measure them (``_harness.Job``), which row is the reference,
and a ``quick`` and a ``full`` configuration.  Adding a scenario means: a C program in ``c/``,
a Node script in ``node/``, the Python implementations in ``_worker.py`` under a new group,
and one more ``Scenario(...)`` here.  A scenario whose table or plot is not the plain
"median / min / max / vs reference" one subclasses ``Scenario`` (see ``BigParentScenario``);
one reporting a throughput instead of a time subclasses ``ThroughputScenario``.

Every job reports seconds per operation; ``Scenario.value`` turns that into the value a row
shows (the time itself, or MB/s for a throughput scenario) as each sample comes in, so
median / min / max are taken over the shown values.
"""

import statistics

from _harness import (GiB, CJob, NodeJob, PyJob, fmt_bytes, fmt_rate, fmt_ratio,
                      fmt_time)


class Row:
    def __init__(self, key, label, kind):
        self.key = key
        self.label = label
        self.kind = kind  # "c" (reference program), "peer" or "ours"


class Result:
    """Everything one run of a scenario measured."""

    def __init__(self, scenario, cfg, rounds):
        self.scenario = scenario
        self.cfg = cfg
        self.rounds = rounds
        self.samples = {}   # key -> [value per round]
        self.skipped = {}   # key -> reason
        self.info = {}      # key -> {"rss": bytes, ...}
        self.notes = {}     # free-form notes from the workers (shown under the table)
        self.setup_notes = []  # notes from Scenario.setup (e.g. which child was captured)
        self.seconds = 0.0

    def add(self, key, seconds_per_op):
        value = self.scenario.value(seconds_per_op, self.cfg)
        self.samples.setdefault(key, []).append(value)

    def skip(self, key, reason):
        self.samples.pop(key, None)
        self.skipped.setdefault(key, reason)

    def merge_info(self, info):
        for key, value in info.items():
            if key == "_notes":
                self.notes.update(value)
                continue
            mine = self.info.setdefault(key, {})
            for name, v in value.items():
                if name == "maxrss":  # the peak over all rounds
                    mine[name] = max(v, mine.get(name, 0))
                else:
                    mine[name] = v

    def stats(self, key):
        values = self.samples.get(key)
        if not values:
            return None
        return statistics.median(values), min(values), max(values)

    def median(self, key):
        s = self.stats(key)
        return s[0] if s else None

    def reason(self, key):
        if key in self.skipped:
            return self.skipped[key]
        return "not measured"


class Scenario:
    """The value of every row is seconds per operation: lower is better, and the ratio to the
    reference is this row's median over the reference's (×2.00 = twice as slow)."""

    ratio_header = "vs reference"
    extra_headers = ()  # more columns of the plain table, filled by extra_cells

    def __init__(self, name, title, measure, rows, jobs, reference, quick, full, notes=(),
                 axis=None):
        self.name = name
        self.title = title
        self.measure = measure      # e.g. "time per spawn"
        self.axis = axis or measure  # the plot's axis label (short)
        self.rows = rows
        self.jobs = jobs
        self.reference = reference  # key of the C reference row
        self.quick = quick
        self.full = full
        self.static_notes = list(notes)

    def config(self, quick):
        return dict(self.quick if quick else self.full)

    def setup(self, tools, result):
        """Called once before the scenario runs (notes about the toolchain, ...)."""

    # ------------------------------------------------------------------ values and ratios

    def value(self, seconds_per_op, cfg):
        """The value a row shows for one sample."""
        return seconds_per_op

    def fmt(self, value):
        return fmt_time(value)

    def ratio(self, median, ref_median):
        """How much worse than the reference (×1.00 = as good, higher = worse)."""
        return median / ref_median

    def plot_scale(self, largest):
        return _plot_scale(largest)

    def extra_cells(self, result, key):
        return []

    def plot_axis(self, unit):
        return f"{self.axis} ({unit}); bars: median, whiskers: min–max"

    # ---------------------------------------------------------------- reference and rows

    def reference_key(self, result, suffix=""):
        """The C reference when it was measured, else the first measured peer."""
        if result.stats(self.reference + suffix):
            return self.reference + suffix
        for row in self.rows:
            if row.kind == "peer" and result.stats(row.key + suffix):
                return row.key + suffix
        return None

    def label(self, key):
        for row in self.rows:
            if row.key == key.split("/", 1)[0]:
                return row.label
        return key

    # -------------------------------------------------------------------------- output

    def describe(self, result):
        cfg = result.cfg
        return (f"{self.measure[0].upper()}{self.measure[1:]}; {result.rounds} rounds, each "
                f"timing up to {cfg['n']} operations (at most {cfg['budget']:g} s) after "
                f"{_warmup(cfg)}, implementations alternating round by round; "
                f"median / min / max over the rounds.")

    def table(self, result):
        ref = self.reference_key(result)
        ref_median = result.median(ref) if ref else None
        extra = "".join(f" {h} |" for h in self.extra_headers)
        lines = [f"### `{self.name}` — {self.title}", "", self.describe(result), "",
                 f"| implementation | median | min | max | {self.ratio_header} |{extra}",
                 "|---|---:|---:|---:|---:|" + "---:|" * len(self.extra_headers)]
        for row in self.rows:
            label = row.label + (" **(reference)**" if row.key == ref else "")
            stats = result.stats(row.key)
            if stats is None:
                why = _cell(result.reason(row.key))
                lines.append(f"| {label} | — | — | — | skipped: {why} |"
                             + " |" * len(self.extra_headers))
                continue
            med, lo, hi = stats
            ratio = fmt_ratio(self.ratio(med, ref_median)) if ref_median else ""
            cells = "".join(f" {c} |" for c in self.extra_cells(result, row.key))
            lines.append(f"| {label} | {self.fmt(med)} | {self.fmt(lo)} | {self.fmt(hi)} "
                         f"| {ratio} |{cells}")
        lines += self.footer(result, ref)
        return "\n".join(lines) + "\n"

    def footer(self, result, ref):
        notes = []
        if ref and ref != self.reference:
            notes.append(f"Reference: {self.label(ref)} (the C reference was skipped).")
        notes += self.static_notes + result.setup_notes
        notes += [f"{k}: {v}." for k, v in sorted(result.notes.items())]
        return ([""] + [f"- {n}" for n in notes]) if notes else []

    def plot(self, result, path, plt):
        rows = [r for r in self.rows if result.stats(r.key)]
        if not rows:
            return False
        ref = self.reference_key(result)
        ref_median = result.median(ref) if ref else None
        meds = [result.median(r.key) for r in rows]
        scale, unit = self.plot_scale(max(result.stats(r.key)[2] for r in rows))
        fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.6))
        ys = list(range(len(rows)))[::-1]
        lows = [(m - result.stats(r.key)[1]) / scale for r, m in zip(rows, meds)]
        highs = [(result.stats(r.key)[2] - m) / scale for r, m in zip(rows, meds)]
        ax.barh(ys, [m / scale for m in meds], xerr=[lows, highs],
                color=[_COLORS[r.kind] for r in rows], capsize=3)
        ax.set_yticks(ys)
        ax.set_yticklabels([r.label for r in rows], fontsize=8)
        his = [result.stats(r.key)[2] for r in rows]
        for y, m, hi in zip(ys, meds, his):
            text = self.fmt(m) + (f"  {fmt_ratio(self.ratio(m, ref_median))}"
                                  if ref_median else "")
            ax.text(hi / scale, y, "  " + text, va="center", fontsize=8)
        if ref_median:
            ax.axvline(ref_median / scale, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel(self.plot_axis(unit))
        ax.set_xlim(0, max(his) / scale * 1.3)
        ax.set_title(f"{self.name}: {self.title}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True


class BigParentScenario(Scenario):
    """Rows are measured twice, from a small parent (key ``impl/small``) and from one holding
    ``cfg['hold']`` bytes of touched memory (``impl/big``); the table adds the growth."""

    def describe(self, result):
        cfg = result.cfg
        return (f"{self.measure[0].upper()}{self.measure[1:]} from a small parent and from a "
                f"parent holding {fmt_bytes(cfg['hold'])} of touched memory; "
                f"{result.rounds} rounds, each timing up to {cfg['n']} spawns (at most "
                f"{cfg['budget']:g} s) after {_warmup(cfg)}, implementations "
                f"alternating round by round; median / min / max over the rounds. "
                f"\"vs small parent\" is the big parent's median over the same "
                f"implementation's small-parent median.")

    def table(self, result):
        ref = self.reference_key(result, "/big")
        ref_median = result.median(ref) if ref else None
        lines = [f"### `{self.name}` — {self.title}", "", self.describe(result), "",
                 f"| implementation | small parent | big parent ({fmt_bytes(result.cfg['hold'])})"
                 " | big min | big max | vs reference | vs small parent |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for row in self.rows:
            small, big = row.key + "/small", row.key + "/big"
            label = row.label + (" **(reference)**" if big == ref else "")
            s_small, s_big = result.stats(small), result.stats(big)
            if s_small is None or s_big is None:
                why = result.reason(small if s_small is None else big)
                lines.append(f"| {label} | — | — | — | — | skipped: {_cell(why)} | |")
                continue
            ratio = fmt_ratio(s_big[0] / ref_median) if ref_median else ""
            lines.append(f"| {label} | {fmt_time(s_small[0])} | {fmt_time(s_big[0])} "
                         f"| {fmt_time(s_big[1])} | {fmt_time(s_big[2])} | {ratio} "
                         f"| {fmt_ratio(s_big[0] / s_small[0])} |")
        lines += self.footer(result, ref)
        return "\n".join(lines) + "\n"

    def footer(self, result, ref):
        lines = super().footer(result, ref and ref.split("/", 1)[0])
        rss = {}
        for row in self.rows:
            info = result.info.get(row.key + "/big") or {}
            if info.get("rss"):
                who = {"c": "C program", "node": "Node script"}.get(row.key, "Python worker")
                rss.setdefault(who, info["rss"])
        if rss:
            lines += ([""] if not lines else []) + [
                "- Resident size of the big parents: "
                + "; ".join(f"{who} {fmt_bytes(n)}" for who, n in rss.items()) + "."]
        return lines

    def plot(self, result, path, plt):
        rows = [r for r in self.rows
                if result.stats(r.key + "/small") and result.stats(r.key + "/big")]
        if not rows:
            return False
        small = [result.median(r.key + "/small") * 1e3 for r in rows]
        big = [result.median(r.key + "/big") * 1e3 for r in rows]
        fig, ax = plt.subplots(figsize=(9, 0.7 * len(rows) + 1.6))
        ys = list(range(len(rows)))[::-1]
        h = 0.38
        ax.barh([y + h / 2 for y in ys], small, height=h, color="#9ab8d8", label="small parent")
        ax.barh([y - h / 2 for y in ys], big, height=h, color="#d9534f",
                label=f"parent holding {fmt_bytes(result.cfg['hold'])}")
        for y, s, b in zip(ys, small, big):
            ax.text(b, y - h / 2, f"  {fmt_time(b / 1e3)}  {fmt_ratio(b / s)}", va="center",
                    fontsize=8)
        ax.set_xscale("log")
        ax.set_yticks(ys)
        ax.set_yticklabels([r.label for r in rows], fontsize=8)
        ax.set_xlim(min(small + big) / 2, max(small + big) * 8)
        ax.set_xlabel(f"{self.axis} (ms, log scale); label: big parent, growth vs small")
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(f"{self.name}: {self.title}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True


class ThroughputScenario(Scenario):
    """Rows show MB/s (10^6 bytes per second) of moving ``cfg['nbytes']`` bytes per operation:
    higher is better.  The ratio column is the reference's throughput over this row's, so
    that, as in every other table, ×1.00 is as fast as the reference and higher is slower."""

    ratio_header = "vs reference (ref MB/s ÷ this)"

    def value(self, seconds_per_op, cfg):
        return cfg["nbytes"] / seconds_per_op / 1e6

    def fmt(self, value):
        return fmt_rate(value)

    def ratio(self, median, ref_median):
        return ref_median / median

    def plot_scale(self, largest):
        return 1.0, "MB/s"

    def plot_axis(self, unit):
        return f"{self.axis} ({unit}), higher is better; whiskers: min–max"

    def footer(self, result, ref):
        lines = super().footer(result, ref)
        note = ("- \"vs reference\" is the reference's median throughput divided by this "
                "row's: ×2.00 means half the reference's MB/s.")
        return lines + [note] if lines else ["", note]


class CaptureScenario(ThroughputScenario):
    extra_headers = ("peak RSS",)

    def extra_cells(self, result, key):
        peak = (result.info.get(key) or {}).get("maxrss")
        return [fmt_bytes(peak) if peak else ""]

    def footer(self, result, ref):
        return super().footer(result, ref) + [
            "- \"peak RSS\": the highest peak resident size (ru_maxrss, interpreter included) "
            "of the measuring process over the rounds, each of which did the warm-up and timed "
            "captures back to back: about twice the capture where the chunks and the joined "
            "result coexist, more where earlier captures' memory was not freed yet."]

    def setup(self, tools, result):
        result.setup_notes.append(f"The child (the same for every row): "
                                  f"{tools.writer_description()}.")

    def describe(self, result):
        cfg = result.cfg
        return (f"Throughput of capturing {fmt_bytes(cfg['nbytes'])} of a child's stdout into "
                f"one buffer, in MB/s (10^6 bytes/s; one capture is timed from spawn to reap, "
                f"higher is better); {result.rounds} round{'' if result.rounds == 1 else 's'}, "
                f"each timing up to {cfg['n']} "
                f"captures (at most {cfg['budget']:g} s) after {_warmup(cfg)}, implementations "
                f"alternating round by round; median / min / max over the rounds.")


_COLORS = {"c": "#777777", "peer": "#5b8fc7", "ours": "#e8862a"}


def _plot_scale(largest):
    if largest >= 1:
        return 1.0, "s"
    if largest >= 1e-3:
        return 1e-3, "ms"
    return 1e-6, "µs"


def _warmup(cfg):
    n = cfg["warmup"]
    return f"{n} untimed warm-up operation" + ("" if n == 1 else "s")


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _params(probe, cfg, **extra):
    """Common parameters: a probe is a tiny run that only checks the implementation works."""
    p = {"n": cfg["n"], "warmup": cfg["warmup"], "budget": cfg["budget"]}
    if probe:
        p.update(n=2, warmup=0, budget=cfg["budget"], limit=20)
    p.update(extra)
    return p


# ------------------------------------------------------------------------ 1. spawn_seq

def _seq(cfg, probe):
    return _params(probe, cfg)


def _c_seq(p):
    return [p["n"], p["warmup"], p["budget"], p.get("hold", 0)]


def _node_seq(stdio):
    return lambda p: [p["n"], p["warmup"], p["budget"], stdio, p.get("hold", 0)]


SPAWN_SEQ = Scenario(
    name="spawn_seq",
    title="sequential spawn + wait of `/bin/true`",
    measure="time per spawn",
    rows=[
        Row("c", "C posix_spawn + waitpid", "c"),
        Row("posix_spawn", "os.posix_spawn + os.waitpid", "peer"),
        Row("popen", "subprocess.Popen().wait()", "peer"),
        Row("run", "subprocess.run()", "peer"),
        Row("node_ignore", "Node spawn(stdio: 'ignore'), await 'close'", "peer"),
        Row("node_pipe", "Node spawn() (pipes), await 'close'", "peer"),
        Row("ours_sync", "child_process.spawn_sync(stdio='ignore')", "ours"),
        Row("ours_ignore", "child_process.spawn(stdio='ignore').wait()", "ours"),
        Row("ours_pipe", "child_process.spawn().wait() (pipes)", "ours"),
    ],
    jobs=[
        CJob("C posix_spawn", "c", "spawn_seq.c", _seq, _c_seq),
        PyJob("os.posix_spawn", "spawn", ["posix_spawn"], _seq),
        PyJob("subprocess.Popen", "spawn", ["popen"], _seq),
        PyJob("subprocess.run", "spawn", ["run"], _seq),
        NodeJob("node ignore", "node_ignore", "spawn_seq.js", _seq, _node_seq("ignore")),
        NodeJob("node pipes", "node_pipe", "spawn_seq.js", _seq, _node_seq("pipe")),
        PyJob("child_process.spawn_sync", "spawn", ["ours_sync"], _seq),
        PyJob("child_process.spawn ignore", "spawn", ["ours_ignore"], _seq),
        PyJob("child_process.spawn pipes", "spawn", ["ours_pipe"], _seq),
    ],
    reference="c",
    quick={"rounds": 5, "n": 200, "warmup": 10, "budget": 1.0},
    full={"rounds": 11, "n": 1000, "warmup": 20, "budget": 3.0},
    notes=["Every implementation runs in a fresh process per round and times its own loop; "
           "process start-up is not counted."],
)


# ------------------------------------------------------------------ 2. spawn_bigparent

def _small(cfg, probe):
    return _params(probe, cfg, hold=0)


def _big(cfg, probe):
    return _params(probe, cfg, hold=0 if probe else cfg["hold"])


_BIG_PY = ["posix_spawn", "popen", "mp_fork", "ours_sync", "ours_ignore"]

SPAWN_BIGPARENT = BigParentScenario(
    name="spawn_bigparent",
    title="spawn + wait of `/bin/true` from a parent holding much memory",
    measure="time per spawn",
    rows=[
        Row("c", "C posix_spawn + waitpid", "c"),
        Row("posix_spawn", "os.posix_spawn + os.waitpid", "peer"),
        Row("popen", "subprocess.Popen().wait()", "peer"),
        Row("mp_fork", "multiprocessing fork Process(noop) start + join", "peer"),
        Row("node", "Node spawn(stdio: 'ignore'), await 'close'", "peer"),
        Row("ours_sync", "child_process.spawn_sync(stdio='ignore')", "ours"),
        Row("ours_ignore", "child_process.spawn(stdio='ignore').wait()", "ours"),
    ],
    jobs=[
        CJob("C small parent", "c/small", "spawn_seq.c", _small, _c_seq),
        CJob("C big parent", "c/big", "spawn_seq.c", _big, _c_seq),
        PyJob("python small parent", "spawn", [k + "/small" for k in _BIG_PY], _small),
        PyJob("python big parent", "spawn", [k + "/big" for k in _BIG_PY], _big),
        NodeJob("node small parent", "node/small", "spawn_seq.js", _small, _node_seq("ignore")),
        NodeJob("node big parent", "node/big", "spawn_seq.js", _big, _node_seq("ignore")),
    ],
    reference="c",
    quick={"rounds": 5, "n": 100, "warmup": 2, "budget": 1.0, "hold": 2 * GiB},
    full={"rounds": 5, "n": 300, "warmup": 2, "budget": 3.0, "hold": 8 * GiB},
    notes=["One process per parent kind per round: the C program and the Node script each "
           "hold the memory themselves; one Python worker holds it (a touched `bytearray`) and "
           "measures every Python implementation in turn. Only one big parent is alive at a "
           "time."],
)


# -------------------------------------------------------------------- 3. concurrent200

def _conc(cfg, probe):
    return _params(probe, cfg, k=5 if probe else cfg["k"])


def _c_conc(p):
    return [p["n"], p["warmup"], p["budget"], p["k"]]


CONCURRENT200 = Scenario(
    name="concurrent200",
    title="200 concurrent `/bin/true` with stdout piped",
    measure="time per batch of 200 (all started, then all waited for)",
    axis="time per batch of 200",
    rows=[
        Row("c", "C posix_spawn ×200 + read to EOF + waitpid", "c"),
        Row("popen", "subprocess.Popen ×200 + communicate()", "peer"),
        Row("asyncio_default", "asyncio create_subprocess_exec ×200 (default watcher)", "peer"),
        Row("asyncio_pidfd", "asyncio create_subprocess_exec ×200 (PidfdChildWatcher)", "peer"),
        Row("node", "Node spawn ×200, count 'close'", "peer"),
        Row("ours_run", "child_process.spawn ×200 + run()", "ours"),
        Row("ours_wait", "child_process.spawn ×200 + wait() each", "ours"),
    ],
    jobs=[
        CJob("C ×200", "c", "concurrent.c", _conc, _c_conc),
        PyJob("subprocess.Popen ×200", "concurrent", ["popen"], _conc),
        PyJob("asyncio default ×200", "concurrent", ["asyncio_default"], _conc),
        PyJob("asyncio pidfd ×200", "concurrent", ["asyncio_pidfd"], _conc),
        NodeJob("node ×200", "node", "concurrent.js", _conc, _c_conc),
        PyJob("child_process ×200 run()", "concurrent", ["ours_run"], _conc),
        PyJob("child_process ×200 wait()", "concurrent", ["ours_wait"], _conc),
    ],
    reference="c",
    quick={"rounds": 5, "n": 2, "warmup": 1, "budget": 1.0, "k": 200},
    full={"rounds": 11, "n": 5, "warmup": 1, "budget": 3.0, "k": 200},
    notes=["stdin and stderr of every child are /dev/null; each implementation checks that "
           "all 200 exited with status 0."],
)


# -------------------------------------------------------------------------- 4. capture

_MiB = 1 << 20
_PROBE_BYTES = 3 * _MiB + 12345  # not a multiple of the writer's 1 MiB chunk


def _cap(cfg, probe):
    return _params(probe, cfg, nbytes=_PROBE_BYTES if probe else cfg["nbytes"])


def _c_cap(p):
    return [p["n"], p["warmup"], p["budget"], p["nbytes"]] + p["child"]


def _node_cap(mode):
    return lambda p: [p["n"], p["warmup"], p["budget"], mode, p["nbytes"]] + p["child"]


CAPTURE = CaptureScenario(
    name="capture",
    title="capture 256 MiB of a child's stdout (--quick: 64 MiB)",
    measure="throughput of one capture",
    axis="capture throughput",
    rows=[
        Row("c", "C posix_spawn + read(2) into a growing buffer + waitpid", "c"),
        Row("run", "subprocess.run(stdout=PIPE)", "peer"),
        Row("communicate", "subprocess.Popen(stdout=PIPE).communicate()", "peer"),
        Row("asyncio", "asyncio create_subprocess_exec + communicate()", "peer"),
        Row("node_sync", "Node execFileSync(maxBuffer: Infinity, encoding: 'buffer')", "peer"),
        Row("node_spawn", "Node spawn, 'data' chunks + Buffer.concat", "peer"),
        Row("ours_sync", "child_process.spawn_sync(max_buffer=None).stdout", "ours"),
        Row("ours_exec_file_sync", "child_process.exec_file_sync(max_buffer=None)", "ours"),
        Row("ours_spawn", "child_process.spawn, 'data' chunks + b''.join after wait()", "ours"),
        Row("ours_exec_file", "child_process.exec_file(encoding=None, max_buffer=None) + run()",
            "ours"),
    ],
    jobs=[
        CJob("C capture", "c", "capture.c", _cap, _c_cap, child=True),
        PyJob("subprocess.run", "capture", ["run"], _cap, child=True),
        PyJob("Popen.communicate", "capture", ["communicate"], _cap, child=True),
        PyJob("asyncio", "capture", ["asyncio"], _cap, child=True),
        NodeJob("node execFileSync", "node_sync", "capture.js", _cap, _node_cap("sync"),
                child=True),
        NodeJob("node spawn", "node_spawn", "capture.js", _cap, _node_cap("spawn"), child=True),
        PyJob("child_process.spawn_sync", "capture", ["ours_sync"], _cap, child=True),
        PyJob("child_process.exec_file_sync", "capture", ["ours_exec_file_sync"], _cap,
              child=True),
        PyJob("child_process.spawn", "capture", ["ours_spawn"], _cap, child=True),
        PyJob("child_process.exec_file", "capture", ["ours_exec_file"], _cap, child=True),
    ],
    reference="c",
    quick={"rounds": 5, "n": 2, "warmup": 1, "budget": 0.5, "nbytes": 64 * _MiB},
    full={"rounds": 7, "n": 3, "warmup": 1, "budget": 2.0, "nbytes": 256 * _MiB},
    notes=["Every implementation checks that it got exactly the bytes the child wrote and "
           "that the child exited 0; a wrong count fails the row. One fresh process per "
           "implementation per round; process start-up is not counted. The child reads no stdin "
           "and writes no stderr; each API keeps its own default for those two."],
)


SCENARIOS = [SPAWN_SEQ, SPAWN_BIGPARENT, CONCURRENT200, CAPTURE]
