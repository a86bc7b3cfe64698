"""The reproduction's figures over seeds (PNG, written atomically).

Alpha per run (the paper's Figs. 7/8), training curves with and without the teacher (Fig. 5),
path losses (Fig. 6) and the fixed-alpha sweep (Fig. 9). Each curve is the mean over seeds of
the runs' log rows; drawn with ``hybridkt_ext.plotting``'s canvas, so headless and without
touching the process's matplotlib backend. Each replaces an earlier file of its name: the
runner has already refused an ``--out`` it may not replace.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..plotting import Rows, new_figure, save_figure
from .tables import ResultTable, mean_std


def _smooth(values: list[float], window: int) -> list[float]:
    """The running mean over the last ``window`` values (fewer at the start)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def _mean_over_seeds(per_seed: Mapping[int, Rows], key: str) -> tuple[list, list, list]:
    """(steps, mean, std) of ``key`` over seeds, on the steps every seed logged."""
    series = [{r["step"]: r[key] for r in rows if key in r} for rows in per_seed.values()]
    series = [s for s in series if s]
    if not series:
        return [], [], []
    steps = sorted(set.intersection(*(set(s) for s in series)))
    stats = [mean_std([s[k] for s in series]) for k in steps]
    return steps, [m for m, _ in stats], [d for _, d in stats]


def plot_alpha_per_run(runs: Mapping[str, Mapping[int, Rows]], path: str | Path,
                       title: str = "", smooth: int = 5) -> Path:
    """Alpha against the step, one line per run (mean over seeds, band = ±1 std)."""
    fig = new_figure((6, 3.6))
    ax = fig.subplots()
    for name, per_seed in runs.items():
        steps, mean, std = _mean_over_seeds(per_seed, "hkt_alpha")
        if not steps:
            continue
        mean, std = _smooth(mean, smooth), _smooth(std, smooth)
        ax.plot(steps, mean, label=f"{name} (n={len(per_seed)})")
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)],
                        [m + s for m, s in zip(mean, std)], alpha=0.2)
    ax.set_xlabel("step")
    ax.set_ylabel("alpha = 2 L3 / (L1 + L2)")
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)


def plot_training_curves(runs: Mapping[str, Mapping[int, Rows]], path: str | Path,
                         title: str = "", smooth: int = 5) -> Path:
    """Fig. 5 analogue: training loss (top) and test accuracy per epoch (bottom) per run.

    The hybrid run's training loss is its total ``alpha * (L1 + L2) + L3``; its L3 (the
    student path's own loss) is drawn dashed beside it.
    """
    fig = new_figure((6, 5))
    ax_loss, ax_acc = fig.subplots(2, 1)
    for name, per_seed in runs.items():
        steps, mean, _ = _mean_over_seeds(per_seed, "loss")
        line, = ax_loss.plot(steps, _smooth(mean, smooth), label=f"{name}: training loss")
        steps3, mean3, _ = _mean_over_seeds(per_seed, "hkt_L3")
        if steps3:
            ax_loss.plot(steps3, _smooth(mean3, smooth), "--", color=line.get_color(),
                         label=f"{name}: L3 (student path)")
        acc_steps, acc, acc_std = _mean_over_seeds(per_seed, "test_acc")
        ax_acc.errorbar([per_seed_epoch(per_seed, s) for s in acc_steps],
                        [100 * a for a in acc], [100 * s for s in acc_std], marker="o",
                        capsize=2, label=name, color=line.get_color())
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(fontsize="x-small")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy (%)")
    ax_acc.legend(fontsize="small")
    if title:
        fig.suptitle(title, fontsize="medium")
    return save_figure(fig, path)


def per_seed_epoch(per_seed: Mapping[int, Rows], step: int) -> int:
    """The epoch number (1-based) of ``step`` in the first seed's log."""
    rows = next(iter(per_seed.values()))
    return next(int(r["epoch"]) + 1 for r in rows if r["step"] == step)


def plot_path_losses(per_seed: Mapping[int, Rows], path: str | Path, title: str = "",
                     smooth: int = 5) -> Path:
    """Fig. 6 analogue: L1 (student first), L2 (teacher first), L3 (student) over steps."""
    fig = new_figure((6, 3.6))
    ax = fig.subplots()
    for key, label in (("hkt_L1", "L1 student-first path"), ("hkt_L2", "L2 teacher-first path"),
                       ("hkt_L3", "L3 student path")):
        steps, mean, _ = _mean_over_seeds(per_seed, key)
        if steps:
            ax.plot(steps, _smooth(mean, smooth), label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("path loss (mean over seeds)")
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)


def plot_fixed_alpha_sweep(table: ResultTable, metric: str, path: str | Path,
                           title: str = "", lower_is_better: bool = False) -> Path:
    """Fig. 9 analogue: metric vs fixed alpha (error bars = std over seeds), dynamic alpha and
    no teacher as horizontal lines with ±1 std bands. Rows are named ``fixed <a>``,
    ``dynamic`` and ``no teacher``."""
    summary = table.summary()
    fixed = sorted((float(r.split()[1]), v[metric]) for r, v in summary.items()
                   if r.startswith("fixed ") and metric in v)
    fig = new_figure((6, 3.6))
    ax = fig.subplots()
    xs = [a for a, _ in fixed]
    ax.errorbar(xs, [c["mean"] for _, c in fixed], [c["std"] for _, c in fixed], marker="o",
                capsize=3, label="fixed alpha")
    diverged = [a for a, c in fixed if c.get("diverged")]
    if diverged:  # runs whose loss became NaN/inf: marked on the lower edge, not dropped
        low = min([c["mean"] - c["std"] for _, c in fixed if c["n"]] or [0.0])
        ax.plot(diverged, [low] * len(diverged), "rx", markersize=9,
                label="diverged (some/all seeds)")
    for row, style in (("dynamic", "-"), ("no teacher", "--")):
        cell = summary.get(row, {}).get(metric)
        if cell is None:
            continue
        line = ax.axhline(cell["mean"], linestyle=style, label=f"{row} alpha" if
                          row == "dynamic" else row, color="C1" if row == "dynamic" else "C2")
        ax.axhspan(cell["mean"] - cell["std"], cell["mean"] + cell["std"], alpha=0.15,
                   color=line.get_color())
    ax.set_xscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel("fixed alpha")
    ax.set_ylabel(metric + (" (lower is better)" if lower_is_better else ""))
    ax.legend(fontsize="small")
    ax.set_title(title, fontsize="medium")
    return save_figure(fig, path)
