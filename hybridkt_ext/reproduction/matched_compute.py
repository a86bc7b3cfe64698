"""Every method at its own measured training cost, and the student without a teacher trained
for longer at the cost of the hybrid modes (issue 24: "would the same compute do more
elsewhere?").

The experiment is the same for every setting (``matched_compute_settings``):

1. seed 0 trains the student without a teacher, with ``hybrid`` and with ``hybrid_alternate``
   on the setting's schedule; their training seconds give the measured cost ratios k;
2. every seed then trains the student without a teacher on the schedule stretched k times
   (one length per hybrid mode), and each transfer method of the setting on the plain
   schedule.

Each run records its metric, its training seconds (the training iterations only, not the
evaluation) and its training FLOPs (a per-step count of the method times the run's steps).
The table gives mean +- std over seeds; the plot puts every run at its cost.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from .tables import ResultTable, mean_std, write_tables

# The runs whose seed-0 cost sets the stretched schedules of the student without a teacher
# (a setting may name others as its ``cost_setters``).
COST_SETTERS = ("hybrid", "hybrid_alternate")


def cost_setters(setting: "MatchedSetting") -> tuple[str, ...]:
    """The setting's own ``cost_setters`` if it has them, else ``COST_SETTERS``."""
    return tuple(getattr(setting, "cost_setters", COST_SETTERS))


@dataclass(frozen=True)
class Trained:
    """What one training run measured."""

    metric: float   # the setting's metric (NaN: the run diverged)
    seconds: float  # seconds of the training iterations


@dataclass(frozen=True)
class CostedRun:
    """One run of the experiment at its cost."""

    method: str
    length: int     # iterations or epochs
    seed: int
    metric: float
    seconds: float
    flops: float    # training FLOPs of the whole run


class MatchedSetting(Protocol):
    """What the experiment needs of a setting."""

    name: str             # table and plot file names: matched_compute_<name>
    title: str            # the plot's and table's caption
    metric: str           # "mIoU (%)"
    lower_is_better: bool
    unit: str             # "iterations" or "epochs"
    base_length: int      # the plain schedule
    methods: tuple[str, ...]  # the baselines trained on the plain schedule (COST_SETTERS too)
    parallel: bool        # train() may run in several threads at once
    # Optional: cost_setters (instead of COST_SETTERS), and comparisons: (a, b) method pairs
    # whose plain-schedule runs the verdict also compares (equal iterations).

    def prepare(self, progress: Callable[[str], None]) -> str:
        """Trains what every run shares (teachers); returns the setting for the notes."""

    def train(self, method: str, length: int, seed: int) -> Trained:
        """One run; a diverged run returns a NaN metric."""

    def flops_per_step(self, method: str) -> float:
        """Training FLOPs of one step of ``method``."""

    def steps(self, length: int) -> int:
        """The optimiser steps of a run of ``length``."""


def stretched_lengths(base: int, seconds: dict[str, float],
                      setters: Sequence[str] = COST_SETTERS) -> dict[str, int]:
    """The schedule of the student without a teacher that costs what each of ``setters``
    cost (``seconds`` holds "none" and those modes, from one seed)."""
    return {m: max(base + 1, round(base * seconds[m] / seconds["none"]))
            for m in setters if m in seconds}


def plan(setting: MatchedSetting, seeds: Sequence[int], lengths: dict[str, int]
         ) -> list[tuple[str, int, int]]:
    """(method, length, seed) of every run after the first seed's cost runs, seed by seed
    (an interrupted experiment has whole seeds)."""
    first = {("none", setting.base_length, seeds[0])} | {
        (m, setting.base_length, seeds[0]) for m in cost_setters(setting)}
    runs = []
    for seed in seeds:
        runs += [("none", setting.base_length, seed)]
        runs += [("none", n, seed) for n in sorted(set(lengths.values()))]
        runs += [(m, setting.base_length, seed)
                 for m in dict.fromkeys((*cost_setters(setting), *setting.methods))]
    return [r for r in runs if r not in first]


def row_label(setting: MatchedSetting, method: str, length: int) -> str:
    return f"{method}, {length} {setting.unit}"


def run_matched_compute(setting: MatchedSetting, seeds: Sequence[int],
                        progress: Callable[[str], None] = print, jobs: int = 1,
                        partial_out: str | Path | None = None
                        ) -> tuple[ResultTable, list[CostedRun], dict]:
    """Trains every run of the experiment; returns the table, the runs and the settings.

    With ``partial_out`` the table is rewritten there after every run once the stretched
    lengths are known, so an interrupted experiment still leaves what it measured.
    """
    seeds = list(seeds)
    described = setting.prepare(progress)
    flops: dict[str, float] = {}
    done: list[CostedRun] = []
    lock = threading.Lock()
    lengths: dict[str, int] = {}

    def one(method: str, length: int, seed: int) -> CostedRun:
        trained = setting.train(method, length, seed)
        run = CostedRun(method, length, seed, trained.metric, trained.seconds,
                        flops[method] * setting.steps(length))
        progress(f"[matched {setting.name}] seed {seed} {row_label(setting, method, length)}: "
                 f"{setting.metric} {run.metric:.2f}, {run.seconds:.0f} s, "
                 f"{run.flops / 1e9:.1f} GFLOPs")
        with lock:
            done.append(run)
            if partial_out is not None and lengths:
                write_tables([matched_table(setting, done, lengths)], partial_out)
        return run

    setters = cost_setters(setting)
    for method in dict.fromkeys(("none", *setters, *setting.methods)):
        if method not in flops:
            flops[method] = setting.flops_per_step(method)
            progress(f"[matched {setting.name}] {method}: {flops[method] / 1e9:.2f} GFLOPs "
                     "per training step")
    base = setting.base_length
    with ThreadPoolExecutor(max_workers=jobs if setting.parallel else 1) as pool:
        first = list(pool.map(lambda m: one(m, base, seeds[0]), ("none", *setters)))
        lengths.update(stretched_lengths(base, {r.method: r.seconds for r in first}, setters))
        progress(f"[matched {setting.name}] measured cost ratios: " + ", ".join(
            f"{m} {n / base:.2f}x (no teacher for {n} {setting.unit})"
            for m, n in lengths.items()))
        runs = first + list(pool.map(lambda r: one(*r), plan(setting, seeds, lengths)))
    table = matched_table(setting, runs, lengths)
    per_step = ", ".join(f"{m} {f / 1e9:.2f} ({f / flops['none']:.2f}x)" for m, f in flops.items())
    table.notes = (f"Setting: {described} GFLOPs per training step (torch.utils.flop_counter): "
                   f"{per_step}. " + table.notes)
    return table, runs, {"lengths": lengths, "gflops_per_step":
                         {m: f / 1e9 for m, f in flops.items()}, "described": described}


def matched_table(setting: MatchedSetting, runs: Sequence[CostedRun],
                  lengths: dict[str, int]) -> ResultTable:
    """Metric, training seconds, cost relative to the same seed's plain run, GFLOPs; the
    verdict in the notes."""
    metrics = [setting.metric, "training s", "cost (x no teacher)", "training GFLOPs"]
    table = ResultTable(f"matched_compute_{setting.name}",
                        f"Matched training compute: {setting.title}", metrics,
                        lower_is_better=[setting.metric] if setting.lower_is_better else [])
    plain = {r.seed: r.seconds for r in runs
             if r.method == "none" and r.length == setting.base_length}
    # A cost setter that is also one of the methods keeps its place among them.
    order = list(dict.fromkeys(("none", *[m for m in cost_setters(setting)
                                          if m not in setting.methods], *setting.methods)))
    for r in sorted(runs, key=lambda r: (order.index(r.method), r.length, r.seed)):
        label = row_label(setting, r.method, r.length)
        table.add(label, setting.metric, r.metric)
        table.add(label, "training s", r.seconds)
        # NaN while that seed's plain run is still training (a partial table).
        table.add(label, "cost (x no teacher)", r.seconds / plain.get(r.seed, math.nan))
        table.add(label, "training GFLOPs", r.flops / 1e9)
    table.notes = verdict(setting, runs, lengths)
    return table


def _compared(setting: MatchedSetting, a: tuple[float, float], b: tuple[float, float]) -> str:
    """"beats", "does not beat" or "is within the seed spread of": the difference of the means
    of ``a`` and ``b`` (mean, std) against the larger std."""
    (m_a, s_a), (m_b, s_b) = a, b
    gain = (m_b - m_a) if setting.lower_is_better else (m_a - m_b)
    if abs(gain) <= max(s_a, s_b):
        return "is within the seed spread of"
    return "beats" if gain > 0 else "does not beat"


def verdict(setting: MatchedSetting, runs: Sequence[CostedRun], lengths: dict[str, int]) -> str:
    """Each cost setter against the student without a teacher trained at its cost, then the
    setting's ``comparisons`` at equal length: better, worse, or within the seed spread (the
    difference of the means against the larger std)."""
    def stats(method: str, length: int) -> tuple[float, float]:
        return mean_std([r.metric for r in runs if (r.method, r.length) == (method, length)])

    sentences = []
    for mode, n in lengths.items():
        (m_h, s_h), (m_n, s_n) = stats(mode, setting.base_length), stats("none", n)
        if math.isnan(m_h) or math.isnan(m_n):
            sentences.append(f"{mode}: no finite result to compare.")
            continue
        word = _compared(setting, (m_h, s_h), (m_n, s_n))
        sentences.append(
            f"{mode} ({m_h:.2f} +- {s_h:.2f}) {word} the student without a teacher trained "
            f"at its cost ({n} {setting.unit}: {m_n:.2f} +- {s_n:.2f}).")
    text = "Verdict at matched training seconds: " + " ".join(sentences)
    pairs = tuple(getattr(setting, "comparisons", ()))
    if not pairs:
        return text
    plain = {r.seed: r.seconds for r in runs
             if r.method == "none" and r.length == setting.base_length}

    def cost(method: str) -> float:
        return mean_std([r.seconds / plain.get(r.seed, math.nan) for r in runs
                         if (r.method, r.length) == (method, setting.base_length)])[0]

    equal = []
    for a, b in pairs:
        sa, sb = stats(a, setting.base_length), stats(b, setting.base_length)
        if math.isnan(sa[0]) or math.isnan(sb[0]):
            equal.append(f"{a} against {b}: no finite result to compare.")
            continue
        equal.append(f"{a} ({sa[0]:.2f} +- {sa[1]:.2f}, {cost(a):.2f}x the seconds of no "
                     f"teacher) {_compared(setting, sa, sb)} {b} ({sb[0]:.2f} +- {sb[1]:.2f}, "
                     f"{cost(b):.2f}x).")
    return (f"{text} Verdict at equal {setting.unit} ({setting.base_length}): "
            + " ".join(equal))


def plot_matched_compute(setting: MatchedSetting, runs: Sequence[CostedRun],
                         path: str | Path) -> Path:
    """The metric against training seconds and against training FLOPs: every run a point,
    a line through each method's means over seeds (one point per schedule length)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    methods = list(dict.fromkeys(r.method for r in runs))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, method in enumerate(methods):
        mine = [r for r in runs if r.method == method]
        colour = colours[i % len(colours)]
        for ax, cost, scale in ((axes[0], "seconds", 1.0), (axes[1], "flops", 1e-12)):
            ax.scatter([getattr(r, cost) * scale for r in mine], [r.metric for r in mine],
                       color=colour, alpha=0.45, s=18)
            means = []
            for length in sorted({r.length for r in mine}):
                at = [r for r in mine if r.length == length]
                means.append((mean_std([getattr(r, cost) * scale for r in at])[0],
                              mean_std([r.metric for r in at])[0]))
            ax.plot(*zip(*means), color=colour, marker="o",
                    label=method if ax is axes[0] else None)
    axes[0].set_xlabel("training seconds (per run)")
    axes[1].set_xlabel("training TFLOPs (per run)")
    axes[0].set_ylabel(setting.metric + (" (lower is better)" if setting.lower_is_better
                                         else ""))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Matched training compute: {setting.title}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_experiment(setting: MatchedSetting, out: Path, seeds: Sequence[int],
                   progress: Callable[[str], None], jobs: int = 1) -> dict:
    """The reproduction runner's entry for one setting: table, plot, settings, seconds."""
    import time

    start = time.perf_counter()
    table, runs, settings = run_matched_compute(setting, seeds, progress, jobs, partial_out=out)
    plot = plot_matched_compute(setting, runs, Path(out) / f"matched_compute_{setting.name}.png")
    return {"tables": [table], "plots": [plot], "seconds": time.perf_counter() - start,
            "settings": {**settings, "runs": [vars(r) for r in runs]}}
