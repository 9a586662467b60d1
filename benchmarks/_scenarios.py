"""The scenarios of the benchmark suite (see shared/BENCHMARKS.md), one entry each in
``SCENARIOS``, in the order they run.

A :class:`Scenario` lists its table rows (one per implementation, C reference first, then the
peers, then ours), the jobs that measure them (``_harness.Job``), which row is the reference,
and a ``quick`` and a ``full`` configuration.  Adding a scenario means: a C program in ``c/``,
a Node script in ``node/``, the Python implementations in ``_worker.py`` under a new group
(and, for ``fork()``, the child scripts in ``python/``), and one more ``Scenario(...)`` here.
A scenario whose table or plot is not the plain "median / min / max / vs reference" one
subclasses ``Scenario`` (see ``BigParentScenario``); one reporting a throughput instead of a
time subclasses ``ThroughputScenario`` (MB/s) or ``RateScenario`` (messages/s); one measuring
every row in each CPU placement (the IPC scenarios) is a ``PlacedScenario``.

Every job reports seconds per operation; ``Scenario.value`` turns that into the value a row
shows (the time itself, MB/s, messages/s) as each sample comes in, so median / min / max are
taken over the shown values.  ``compare`` and ``targets`` add lines under a table: one row
against another (a speed-up, or a difference of times), and a row's median against a target
of shared/BENCHMARKS.md.
"""

import statistics
import textwrap

from _harness import (PLACEMENTS, GiB, CJob, NodeJob, PyJob, fmt_bytes, fmt_msg_rate,
                      fmt_rate, fmt_ratio, fmt_time)


class Row:
    def __init__(self, key, label, kind, short=None):
        self.key = key
        self.label = label
        self.kind = kind  # "c" (reference program), "peer" or "ours"
        self.short = short or label  # its name in the comparison lines under a table


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
                 axis=None, compare=(), targets=()):
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
        # (row, other row, "speedup" or "difference", target text or None): a line under the
        # table comparing the two medians, e.g. against the target of shared/BENCHMARKS.md
        self.compare = list(compare)
        # (row, "<=" or ">=", value): a line under the table saying whether the row's median
        # meets that target (value in the unit rows show: seconds, or messages per second)
        self.targets = list(targets)

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

    def short(self, key):
        for row in self.rows:
            if row.key == key.split("/", 1)[0]:
                return row.short
        return key

    # -------------------------------------------------------------------------- output

    def describe(self, result):
        cfg = result.cfg
        return (f"{self.measure[0].upper()}{self.measure[1:]}; {result.rounds} rounds, each "
                f"timing up to {cfg['n']} operations (at most {cfg['budget']:g} s) after "
                f"{_warmup(cfg)}{_settle(cfg)}, implementations alternating round by round; "
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
        notes += self.target_lines(result) + self.comparisons(result)
        notes += self.static_notes + result.setup_notes
        notes += [f"{k}: {v}." for k, v in sorted(result.notes.items())]
        return ([""] + [f"- {n}" for n in notes]) if notes else []

    def comparisons(self, result, suffixes=(("", None),)):
        """One line per ``compare`` entry whose two rows were both measured (in each of
        ``suffixes``: (key suffix, its name in the line))."""
        lines = []
        for key, other, how, target in self.compare:
            parts = []
            for suffix, name in suffixes:
                mine, theirs = result.median(key + suffix), result.median(other + suffix)
                if mine is not None and theirs is not None:
                    text = self.compare_text(mine, theirs, how)
                    parts.append(f"{text} ({name})" if name else text)
            if parts:
                lines.append(f"{self.short(key)} vs {self.short(other)} (medians): "
                             + "; ".join(parts) + (f"; target: {target}" if target else "")
                             + ".")
        return lines

    def target_lines(self, result, suffixes=(("", None),)):
        lines = []
        for key, op, value in self.targets:
            parts = []
            for suffix, name in suffixes:
                med = result.median(key + suffix)
                if med is not None:
                    met = med <= value if op == "<=" else med >= value
                    parts.append(f"{self.fmt(med)}{f' ({name})' if name else ''}: "
                                 f"{'met' if met else 'not met'}")
            if parts:
                sign = "≤" if op == "<=" else "≥"
                lines.append(f"Target for {self.short(key)} (shared/BENCHMARKS.md), "
                             f"{sign} {self.fmt(value)}: " + "; ".join(parts) + ".")
        return lines

    def compare_text(self, mine, theirs, how):
        if how == "speedup":
            # self.ratio says how much worse `mine` is than `theirs`; show it as a speed-up
            speedup = 1.0 / self.ratio(mine, theirs)
            return (f"{fmt_ratio(speedup)} faster" if speedup >= 1
                    else f"{fmt_ratio(1.0 / speedup)} slower")
        delta = mine - theirs  # "difference" of two times
        return f"{'+' if delta >= 0 else '−'}{fmt_time(abs(delta))}"

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
                f"{cfg['budget']:g} s) after {_warmup(cfg)}{_settle(cfg)}, implementations "
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


class RateScenario(Scenario):
    """Rows show messages per second (higher is better); as in every table, the ratio column is
    how much worse than the reference a row is: the reference's rate over this row's."""

    ratio_header = "vs reference (ref msg/s ÷ this)"

    def value(self, seconds_per_op, cfg):
        return 1.0 / seconds_per_op

    def fmt(self, value):
        return fmt_msg_rate(value)

    def ratio(self, median, ref_median):
        return ref_median / median

    def plot_scale(self, largest):
        return 1e3, "thousands"

    def plot_axis(self, unit):
        return f"{self.axis} ({unit}), higher is better; whiskers: min–max"

    def describe(self, result):
        cfg = result.cfg
        return (f"{self.measure[0].upper()}{self.measure[1:]}; {result.rounds} rounds, each "
                f"forking one child that sends {cfg['warmup']} + {cfg['n']} messages, "
                f"implementations alternating round by round; median / min / max over the "
                f"rounds.")

    def footer(self, result, ref):
        lines = super().footer(result, ref)
        note = ("- \"vs reference\" is the reference's median rate divided by this row's: "
                "×2.00 means half the reference's messages per second.")
        return lines + [note] if lines else ["", note]


class PlacedScenario(Scenario):
    """Every row is measured in each placement of ``_harness.PLACEMENTS`` (parent and child
    on one CPU, on two CPUs), as keys ``impl/<suffix>``; the table has one group of columns
    per placement, each with its own reference."""

    placements = PLACEMENTS

    def _key(self, row_key, placement):
        return f"{row_key}/{placement.suffix}"

    def table(self, result):
        refs = []
        heads, rule = ["implementation"], ["---"]
        for pl in self.placements:
            ref = self.reference_key(result, "/" + pl.suffix)
            refs.append((ref, result.median(ref) if ref else None))
            heads += [f"{pl.label}: median", "min – max", "vs reference"]
            rule += ["---:"] * 3
        lines = [f"### `{self.name}` — {self.title}", "", self.describe(result), "",
                 "| " + " | ".join(heads) + " |", "|" + "|".join(rule) + "|"]
        for row in self.rows:
            keys = [self._key(row.key, pl) for pl in self.placements]
            if not any(result.stats(k) for k in keys):
                reasons = {result.reason(k) for k in keys}
                why = "; ".join(sorted(reasons)) if len(reasons) > 1 else reasons.pop()
                lines.append(f"| {row.label} | — | skipped: {_cell(why)} |"
                             + " |" * (3 * len(self.placements) - 2))
                continue
            cells = [row.label]
            for key, (ref, ref_median) in zip(keys, refs):
                stats = result.stats(key)
                if stats is None:
                    cells += ["—", f"skipped: {_cell(result.reason(key))}", ""]
                    continue
                med, lo, hi = stats
                cells += [self.fmt(med) + (" **(ref)**" if key == ref else ""),
                          f"{self.fmt(lo)} – {self.fmt(hi)}",
                          fmt_ratio(self.ratio(med, ref_median)) if ref_median else ""]
            lines.append("| " + " | ".join(cells) + " |")
        lines += self.footer(result, None)
        return "\n".join(lines) + "\n"

    def footer(self, result, ref):
        lines = super().footer(result, None)
        notes = []
        for pl in self.placements:
            ref = self.reference_key(result, "/" + pl.suffix)
            if ref and ref.split("/", 1)[0] != self.reference:
                notes.append(f"- Reference ({pl.label}): {self.label(ref)} (the C reference "
                             f"was skipped).")
        if notes:
            lines = (lines or [""]) + notes
        return lines

    def comparisons(self, result, suffixes=None):
        return super().comparisons(result, [("/" + pl.suffix, pl.label)
                                            for pl in self.placements])

    def target_lines(self, result, suffixes=None):
        return super().target_lines(result, [("/" + pl.suffix, pl.label)
                                             for pl in self.placements])

    def plot(self, result, path, plt):
        rows = [r for r in self.rows
                if any(result.stats(self._key(r.key, pl)) for pl in self.placements)]
        if not rows:
            return False
        largest = max(result.stats(self._key(r.key, pl))[2] for r in rows
                      for pl in self.placements if result.stats(self._key(r.key, pl)))
        scale, unit = self.plot_scale(largest)
        fig, ax = plt.subplots(figsize=(10, 0.8 * len(rows) + 1.8))
        ys = list(range(len(rows)))[::-1]
        h = 0.8 / len(self.placements)
        colors = ["#9ab8d8", "#2f6ea8", "#e8862a"]
        for i, pl in enumerate(self.placements):
            offset = (len(self.placements) - 1) / 2 * h - i * h
            for y, row in zip(ys, rows):
                stats = result.stats(self._key(row.key, pl))
                if stats is None:
                    continue
                med, lo, hi = stats
                ax.barh(y + offset, med / scale, height=h, color=colors[i % len(colors)],
                        xerr=[[(med - lo) / scale], [(hi - med) / scale]], capsize=2,
                        label=pl.label)
                ax.text(hi / scale, y + offset, "  " + self.fmt(med), va="center", fontsize=7)
        ax.set_yticks(ys)
        ax.set_yticklabels([textwrap.fill(r.label, 44) for r in rows], fontsize=7)
        ax.set_xlim(0, largest / scale * 1.35)
        ax.set_xlabel(self.plot_axis(unit))
        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for hnd, lab in zip(handles, labels):
            seen.setdefault(lab, hnd)
        ax.legend(list(seen.values()), list(seen.keys()), fontsize=8, loc="lower right")
        ax.set_title(f"{self.name}: {self.title}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return True


class PlacedRateScenario(PlacedScenario, RateScenario):
    """A rate (messages per second) in each placement."""


_PLACEMENT_NOTE = (
    "Placement: on a small VM, what a message costs depends above all on where the two "
    "processes run: waking a process that sleeps on the same CPU costs a context switch, "
    "waking one on another CPU a cross-CPU wake-up, several times dearer here. Left to the "
    "scheduler, a run gets one or the other (bimodal results), so every implementation is "
    "measured in both, pinned: \"one CPU\" pins parent and child to the first CPU; \"two "
    "CPUs\" pins the parent to the first and the child to the second (C: the child calls "
    "sched_setaffinity; Python: the parent calls os.sched_setaffinity(child pid) right after "
    "starting it; Node: the child is started through `taskset -c` via fork()'s execPath). "
    "The runner pins the measuring process with all its threads.")


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


def _settle(cfg):
    settle = cfg.get("settle", 0)
    return f" (preceded by {settle:g} s of sleep)" if settle else ""


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _params(probe, cfg, **extra):
    """Common parameters: a probe is a tiny run that only checks the implementation works."""
    p = {"n": cfg["n"], "warmup": cfg["warmup"], "budget": cfg["budget"]}
    if probe:
        p.update(n=2, warmup=0, budget=cfg["budget"], limit=20)
    p.update(extra)
    return p


#: seconds every implementation of a spawning scenario sleeps after its set-up, before its
#: warm-up (run.py, "Settling"); --quick sleeps less, to stay under 2 minutes
SETTLE, SETTLE_QUICK = 0.2, 0.1


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
        Row("c_pipes", "C posix_spawn, three pipes read to EOF (what spawn() has to do)", "peer"),
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
        CJob("C three pipes", "c_pipes", "spawn_seq.c", _seq, lambda p: _c_seq(p) + ["pipes"]),
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
    quick={"rounds": 5, "n": 200, "warmup": 10, "budget": 1.0, "settle": SETTLE_QUICK},
    full={"rounds": 11, "n": 1000, "warmup": 20, "budget": 3.0, "settle": SETTLE},
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
        Row("c_pipes", "C posix_spawn, three pipes read to EOF (what spawn() has to do)", "peer"),
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
    quick={"rounds": 3, "n": 100, "warmup": 2, "budget": 1.0, "hold": 1 * GiB},
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
    quick={"rounds": 5, "n": 2, "warmup": 1, "budget": 1.0, "k": 200, "settle": SETTLE_QUICK},
    full={"rounds": 11, "n": 5, "warmup": 1, "budget": 3.0, "k": 200, "settle": SETTLE},
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


# ---------------------------------------------------------- 5. concurrent200_asyncio

CONCURRENT200_ASYNCIO = Scenario(
    name="concurrent200_asyncio",
    title="200 concurrent `/bin/true` with stdout piped, from a running asyncio loop",
    measure="time per batch of 200 (all started, then all awaited)",
    axis="time per batch of 200",
    rows=[
        Row("c", "C posix_spawn ×200 + read to EOF + waitpid", "c"),
        Row("asyncio_default", "asyncio create_subprocess_exec ×200 + communicate() "
            "(default watcher)", "peer", "asyncio (default watcher)"),
        Row("asyncio_pidfd", "asyncio create_subprocess_exec ×200 + communicate() "
            "(PidfdChildWatcher)", "peer", "asyncio (PidfdChildWatcher)"),
        Row("node", "Node spawn ×200, count 'close'", "peer"),
        Row("ours_asyncio", "child_process.spawn ×200 in a coroutine + "
            "await asyncio.gather(*children)", "ours", "child_process (await)"),
    ],
    jobs=[
        CJob("C ×200", "c", "concurrent.c", _conc, _c_conc),
        PyJob("asyncio default ×200", "concurrent", ["asyncio_default"], _conc),
        PyJob("asyncio pidfd ×200", "concurrent", ["asyncio_pidfd"], _conc),
        NodeJob("node ×200", "node", "concurrent.js", _conc, _c_conc),
        PyJob("child_process ×200 asyncio", "concurrent", ["ours_asyncio"], _conc),
    ],
    reference="c",
    quick={"rounds": 5, "n": 2, "warmup": 1, "budget": 1.0, "k": 200, "settle": SETTLE_QUICK},
    full={"rounds": 11, "n": 5, "warmup": 1, "budget": 3.0, "k": 200, "settle": SETTLE},
    compare=[("ours_asyncio", "asyncio_default", "speedup", "×1.5 faster"),
             ("ours_asyncio", "asyncio_pidfd", "speedup", "×1.5 faster")],
    notes=["The Python rows run each batch with `loop.run_until_complete()` on one asyncio "
           "loop kept for the whole process; for ours, the running asyncio loop drives "
           "child_process's own loop (no `run()`, no `wait()`). The C and Node rows are those "
           "of `concurrent200`.",
           "stdin and stderr of every child are /dev/null; each implementation checks that "
           "all 200 exited with status 0."],
)


# ------------------------------------------------------------------- 6. ipc_pingpong

def _ipc(cfg, probe):
    return _params(probe, cfg)


def _c_ipc(p):
    return [p["n"], p["warmup"], p["budget"], p.get("child_cpu", -1)]


def _node_ipc(serialization):
    return lambda p: [p["n"], p["warmup"], p["budget"], serialization, p.get("child_cpu", -1)]


def _ipc_jobs(c_source, node_script, group):
    """The jobs of an IPC scenario: every implementation once per placement."""
    jobs = []
    for pl in PLACEMENTS:
        k = "/" + pl.suffix
        jobs += [
            CJob(f"C ({pl.label})", "c" + k, c_source, _ipc, _c_ipc, placement=pl),
            PyJob(f"multiprocessing.Pipe ({pl.label})", group, ["mp_pipe" + k], _ipc,
                  placement=pl),
            NodeJob(f"node json ({pl.label})", "node_json" + k, node_script, _ipc,
                    _node_ipc("json"), placement=pl),
            NodeJob(f"node advanced ({pl.label})", "node_advanced" + k, node_script, _ipc,
                    _node_ipc("advanced"), placement=pl),
        ] + [PyJob(f"child_process {mode} ({pl.label})", group, [f"ours_{mode}" + k], _ipc,
                   placement=pl) for mode in ("json", "pickle", "advanced")]
    return jobs


IPC_PINGPONG = PlacedScenario(
    name="ipc_pingpong",
    title='IPC round trip of `{"i": n, "s": "hello"}` with a forked child',
    measure="time per round trip (one message in flight)",
    axis="time per round trip",
    rows=[
        Row("c", "C socketpair + fork, child echoes the JSON line (one write + one read "
            "per direction)", "c"),
        Row("mp_pipe", "multiprocessing.Pipe, Process echoing recv() → send()", "peer",
            "multiprocessing.Pipe"),
        Row("node_json", "Node fork, child echoes process.send(m) (json)", "peer",
            "Node json"),
        Row("node_advanced", "Node fork, child echoes process.send(m) (advanced)", "peer",
            "Node advanced"),
        Row("ours_json", "child_process.fork, child: parent.on('message', parent.send) (json)",
            "ours", "child_process json"),
        Row("ours_pickle", "child_process.fork, same child (pickle)", "ours",
            "child_process pickle"),
        Row("ours_advanced", "child_process.fork, same child (advanced)", "ours",
            "child_process advanced"),
    ],
    jobs=_ipc_jobs("ipc_pingpong.c", "ipc_pingpong.js", "ipc_pingpong"),
    reference="c",
    quick={"rounds": 3, "n": 2000, "warmup": 3000, "budget": 0.2},
    full={"rounds": 7, "n": 20000, "warmup": 10000, "budget": 1.0},
    targets=[("ours_json", "<=", 34e-6), ("ours_advanced", "<=", 40e-6)],
    compare=[("ours_json", "mp_pipe", "speedup", None),
             ("ours_json", "node_json", "speedup", None),
             ("ours_pickle", "mp_pipe", "speedup", None),
             ("ours_advanced", "node_advanced", "speedup", None)],
    notes=["Timed: from the echo of the last warm-up message to the echo of the last timed "
           "one; the fork, the child's start-up and its exit are not timed. The parent sends "
           "the next message when the echo of the previous one arrives (from its 'message' "
           "listener in Node and ours) and checks every echo's counter and string.",
           "Node's JIT needs about 10,000 round trips to reach its steady state (one CPU: "
           "~44 µs after 200, ~23 µs after 3,000, ~19 µs after 10,000): the full run warms up "
           "with 10,000, --quick with 3,000, which leaves the Node rows about ×1.2 slower "
           "than their steady state.",
           _PLACEMENT_NOTE,
           "The child's stdout is /dev/null in the Python rows (the worker's stdout carries "
           "its result); Node's child inherits it and writes nothing."],
)


# --------------------------------------------------------------------- 7. ipc_stream

IPC_STREAM = PlacedRateScenario(
    name="ipc_stream",
    title='IPC one-way stream of `{"i": n, "s": "hello"}`, child → parent',
    measure="messages per second received by the parent",
    axis="messages received per second",
    rows=[
        Row("c", "C socketpair + fork, one write(2) per JSON line, reader splitting lines",
            "c"),
        Row("mp_pipe", "multiprocessing.Pipe, Process calling send() in a loop", "peer",
            "multiprocessing.Pipe"),
        Row("node_json", "Node fork, child calls process.send() in a loop (json)", "peer",
            "Node json"),
        Row("node_advanced", "Node fork, child calls process.send() in a loop (advanced)",
            "peer", "Node advanced"),
        Row("ours_json", "child_process.fork, child calls parent.send() in a loop (json)",
            "ours", "child_process json"),
        Row("ours_pickle", "child_process.fork, same child (pickle)", "ours",
            "child_process pickle"),
        Row("ours_advanced", "child_process.fork, same child (advanced)", "ours",
            "child_process advanced"),
    ],
    jobs=_ipc_jobs("ipc_stream.c", "ipc_stream.js", "ipc_stream"),
    reference="c",
    quick={"rounds": 3, "n": 50000, "warmup": 1000, "budget": 1.0},
    full={"rounds": 7, "n": 200000, "warmup": 5000, "budget": 3.0},
    targets=[("ours_json", ">=", 1e6), ("ours_advanced", ">=", 5e5)],
    compare=[("ours_json", "node_json", "speedup", None),
             ("ours_json", "mp_pipe", "speedup", None),
             ("ours_pickle", "mp_pipe", "speedup", None),
             ("ours_advanced", "node_advanced", "speedup", None)],
    notes=["Timed at the parent, the same for every row: from the arrival of the last warm-up "
           "message to the arrival of the last message; the rate is the number of timed "
           "messages over that time. The child's start-up and exit are not timed; its sending "
           "loop is, where it overlaps the parent's receiving (a child faster than its parent "
           "just fills the socket buffer). Every row checks each message's counter and "
           "string.",
           _PLACEMENT_NOTE + " On one CPU, sender and receiver take turns: the rate is set "
           "by their summed cost per message; on two they overlap.",
           "How the child ends: ours calls `parent.disconnect()` after its loop (ours writes "
           "what is queued first); Node's child does not (Node's disconnect() would drop "
           "queued writes): it exits once they are written; the multiprocessing child "
           "closes its end."],
)


# ------------------------------------------------------------------- 8. fork_startup

FORK_STARTUP = Scenario(
    name="fork_startup",
    title="fork() a Python child until it answers one message",
    measure="time from starting the child to its answer",
    axis="time to the child's answer",
    rows=[
        Row("c", "C fork + exec of a tiny C child writing one line to the socket", "c"),
        Row("python_pass", "`python -c pass`: os.posix_spawn + waitpid (the floor; "
            "answer = exit)", "peer", "`python -c pass`"),
        Row("python_import", "`python -c 'import child_process'`: os.posix_spawn + waitpid",
            "peer", "`python -c 'import child_process'`"),
        Row("bare_pass", "`python -S -c pass` (no site, no .pth files)", "peer",
            "`python -S -c pass`"),
        Row("bare_import", "`python -S -c 'import child_process'` (child_process's directory "
            "put on sys.path)", "peer", "`python -S -c 'import child_process'`"),
        Row("mp_spawn", "multiprocessing 'spawn' Process sending one message on a Pipe",
            "peer", "multiprocessing spawn"),
        Row("node", "Node fork of a Node child, process.send('ready')", "peer"),
        Row("ours", "child_process.fork(script), child: child_process.parent.send('ready')",
            "ours", "child_process.fork"),
    ],
    jobs=[
        CJob("C fork + exec", "c", "fork_startup.c", _ipc, _c_ipc),
        PyJob("python -c pass", "fork_startup", ["python_pass"], _ipc),
        PyJob("python -c import", "fork_startup", ["python_import"], _ipc),
        PyJob("python -S -c pass", "fork_startup", ["bare_pass"], _ipc),
        PyJob("python -S -c import", "fork_startup", ["bare_import"], _ipc),
        PyJob("multiprocessing spawn", "fork_startup", ["mp_spawn"], _ipc),
        NodeJob("node fork", "node", "fork_startup.js", _ipc, _c_ipc),
        PyJob("child_process.fork", "fork_startup", ["ours"], _ipc),
    ],
    reference="c",
    quick={"rounds": 3, "n": 5, "warmup": 1, "budget": 0.5},
    full={"rounds": 7, "n": 20, "warmup": 2, "budget": 2.0},
    compare=[("ours", "python_pass", "difference", "≤ +5 ms"),
             ("python_import", "python_pass", "difference", None),
             ("bare_import", "bare_pass", "difference", None),
             ("ours", "mp_spawn", "speedup", None)],
    notes=["Timed: from the call starting the child (fork(), Process() + start(), "
           "posix_spawn) to the parent holding the child's first message, or, for the "
           "`python -c` rows, which have no channel, to its exit status. Not timed: reaping "
           "the child after its message.",
           "Every Python child is the worker's interpreter (`sys.executable`) with its "
           "environment and site-packages, so every row pays the same site start-up, and with "
           "bytecode cached (in a directory of the run, whatever PYTHONDONTWRITEBYTECODE says): "
           "the import of `child_process` is timed as an installed package costs, not with its "
           "modules compiled anew in every child. The multiprocessing child re-imports the "
           "worker module, as 'spawn' does with any `__main__`; at its top level that imports "
           "only json, os, signal, sys and time.",
           "The two `python -S` rows show the import of `child_process` in a bare "
           "interpreter: where site-packages' .pth files already import modules it needs "
           "(typing, re, enum, ... — a .pth importing certifi does so here), the other rows "
           "get those for free."],
)


# -------------------------------------------------------------------- 9. fd_passing

class FdRateScenario(RateScenario):
    """Rows show descriptors passed per second (higher is better)."""

    def fmt(self, value):
        return fmt_msg_rate(value).replace("msg/s", "fds/s")

    def describe(self, result):
        cfg = result.cfg
        return (f"{self.measure[0].upper()}{self.measure[1:]}; {result.rounds} rounds, each "
                f"forking one child that receives {cfg['warmup']} + {cfg['n']} descriptors "
                f"(at most {cfg['budget']:g} s timed), implementations alternating round by "
                f"round; median / min / max over the rounds.")


def _node_fd(serialization):
    return lambda p: [p["n"], p["warmup"], p["budget"], serialization]


FD_PASSING = FdRateScenario(
    name="fd_passing",
    title="Passing a socket's descriptor to a running child (SCM_RIGHTS), one in flight",
    measure="descriptors passed per second",
    axis="descriptors passed per second",
    rows=[
        Row("c", "C socketpair + fork: sendmsg(1 byte + SCM_RIGHTS), child recvmsg, close, "
            "1-byte ACK", "c"),
        Row("send_fds", "socket.send_fds / recv_fds, os.fork child closes it, 1-byte ACK",
            "peer", "socket.send_fds"),
        Row("mp_handle", "multiprocessing.reduction.send_handle / recv_handle over a Pipe, "
            "1-byte ACK", "peer", "multiprocessing send_handle"),
        Row("node_json", "Node child.send('s', dgramSocket), child closes it (json)", "peer",
            "Node json"),
        Row("node_advanced", "Node child.send('s', dgramSocket), child closes it (advanced)",
            "peer", "Node advanced"),
        Row("ours_json", "child_process child.send('s', udp_socket), child closes it (json)",
            "ours", "child_process json"),
        Row("ours_advanced", "child_process, same (advanced)", "ours",
            "child_process advanced"),
    ],
    jobs=[
        CJob("C sendmsg", "c", "fd_passing.c", _ipc,
             lambda p: [p["n"], p["warmup"], p["budget"]]),
        PyJob("socket.send_fds", "fd_passing", ["send_fds"], _ipc),
        PyJob("multiprocessing send_handle", "fd_passing", ["mp_handle"], _ipc),
        NodeJob("node json", "node_json", "fd_passing.js", _ipc, _node_fd("json")),
        NodeJob("node advanced", "node_advanced", "fd_passing.js", _ipc, _node_fd("advanced")),
        PyJob("child_process json", "fd_passing", ["ours_json"], _ipc),
        PyJob("child_process advanced", "fd_passing", ["ours_advanced"], _ipc),
    ],
    reference="c",
    quick={"rounds": 3, "n": 5000, "warmup": 500, "budget": 0.5},
    full={"rounds": 5, "n": 20000, "warmup": 2000, "budget": 2.0},
    targets=[("ours_json", ">=", 30e3), ("ours_advanced", ">=", 30e3)],
    compare=[("ours_json", "node_json", "speedup", None),
             ("ours_json", "mp_handle", "speedup", None),
             ("ours_json", "send_fds", "speedup", None),
             ("ours_advanced", "node_advanced", "speedup", None)],
    notes=["One descriptor in flight in every row: the sender passes the next one only once "
           "the receiver has acknowledged the previous one (Node and ours: the protocol's "
           "NODE_HANDLE_ACK -- Node and ours hold every later send until it arrives, and the "
           "next send is issued from the previous one's write callback; the other rows: one "
           "byte back, read before the next sendmsg). The same bound UDP socket is passed "
           "every time (a UDP socket is never closed by the sender); the receiver closes "
           "each descriptor it gets (Node: after rebuilding a dgram.Socket, ours: a "
           "socket.socket).",
           "Timed: the transfers after the warm-up; fork, start-up and exit are not. Node and "
           "ours time from the write of the last warm-up transfer to the write of the last "
           "one. Scheduler placement is left alone (not pinned)."],
)


SCENARIOS = [SPAWN_SEQ, SPAWN_BIGPARENT, CONCURRENT200, CAPTURE, CONCURRENT200_ASYNCIO,
             IPC_PINGPONG, IPC_STREAM, FORK_STARTUP, FD_PASSING]
