"""The figure of one run, and the canvas every figure of the project is drawn on.

Of one run (the hooks, ``hybridkt-train-cls``, ``hybridkt-plot-alpha``): alpha and the three
path losses over training (the paper's Figs. 6 and 7), written as ``PLOT_NAME``. The figures
over seeds of the reproduction are drawn in ``hybridkt_ext.reproduction.figures`` with
``new_figure`` and ``save_figure``.

Figures are drawn on a ``matplotlib.figure.Figure`` with its own Agg canvas, never through
``pyplot``: the training hooks call this module inside the user's process, whose matplotlib
backend (an interactive one in a notebook) is left as it was, and no figure is kept in pyplot's
global list.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from .core.atomic_files import replace_atomically

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with a training hook
    from matplotlib.figure import Figure

PLOT_NAME = "alpha_and_path_losses.png"
"""The file name of a run's alpha and path-loss plot, in the run's work or output dir."""
# The logged values one run's plot draws, as every adapter records them per step (hkt_path:
# which hybrid path an alternating step ran).
RECORDED_KEYS = ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "hkt_path", "hkt_teacher")
# With several teachers alpha, L1 and L2 are logged per teacher: hkt_alpha/<name>, ...
PER_TEACHER_KEYS = ("hkt_alpha", "hkt_L1", "hkt_L2")


def is_recorded(key: str) -> bool:
    """Whether a logged key is one the plot draws (``RECORDED_KEYS`` or a teacher's own)."""
    kind, _, name = key.partition("/")
    return key in RECORDED_KEYS or (kind in PER_TEACHER_KEYS and bool(name))


def fresh_values(row: dict[str, float], teacher_names: Sequence[str]) -> dict[str, float]:
    """A step's recorded values without those the step did not compute.

    Loggers keep a key's last value until it is logged again: an alternating step ran one
    hybrid path (``hkt_path``), a sampled step one teacher (``hkt_teacher``, its index into
    ``teacher_names``); the other path's or teachers' values are an earlier step's.
    """
    row = dict(row)
    stale_path = {1.0: "hkt_L2", 2.0: "hkt_L1"}.get(row.get("hkt_path"))
    teacher = row.get("hkt_teacher")
    ran = teacher_names[int(teacher)] if teacher is not None and teacher_names else None
    for key in list(row):
        kind, _, name = key.partition("/")
        if kind == stale_path or (ran is not None and name and name != ran):
            del row[key]
    return row

Rows = Sequence[Mapping[str, float]]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas (headless, whatever the process's matplotlib backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=figsize)
    FigureCanvasAgg(figure)  # attaches itself as figure.canvas
    return figure


def save_figure(figure: Figure, path: str | Path, overwrite: bool = True,
                dpi: int = 80) -> Path:
    """Writes ``figure`` as a PNG, atomically (an interrupted write leaves the previous file).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    figure.tight_layout()
    return replace_atomically(path, lambda f: figure.savefig(f, dpi=dpi, format="png"),
                              overwrite)


def plot_alpha_and_path_losses(runs: Mapping[str, Rows], path: str | Path, title: str = "",
                               overwrite: bool = True) -> Path:
    """Writes a PNG with alpha (top) and L1/L2/L3 (bottom) against the step, one line per run.

    Args:
        runs: run name -> log rows holding ``step`` and some of ``hkt_alpha``, ``hkt_L1``,
            ``hkt_L2``, ``hkt_L3`` (a baseline run has its ``hkt_L3`` only); a run with several
            teachers has ``hkt_alpha/<name>``, ... instead, drawn as one curve per teacher.
        path: the PNG to write (atomically: an interrupted write leaves the previous one).
        title: the figure's title; none if empty.
        overwrite: replace an existing ``path``; False raises FileExistsError instead.

    Returns:
        ``path``.
    """
    fig = new_figure((7, 6))
    ax_alpha, ax_loss = fig.subplots(2, 1, sharex=True)
    for name, rows in runs.items():
        # One curve per teacher: "" for a run with one, "/<name>" for each of several.
        suffixes = sorted({key[len("hkt_alpha"):] for r in rows for key in r
                           if key.partition("/")[0] == "hkt_alpha"}) or [""]
        curves = ([(ax_alpha, "hkt_alpha", "alpha", "-")]
                  + [(ax_loss, "hkt_L1", "L1 student-first", "-"),
                     (ax_loss, "hkt_L2", "L2 teacher-first", "--")])
        for suffix in suffixes:
            teacher = f", teacher {suffix[1:]}" if suffix else ""
            for ax, key, label, style in curves:
                points = [r for r in rows if key + suffix in r]
                if points:  # a baseline run (no teacher, FitNet, AT) has its L3 only
                    ax.plot([r["step"] for r in points], [r[key + suffix] for r in points],
                            style, label=name + teacher if ax is ax_alpha
                            else f"{name}: {label}{teacher}")
        points = [r for r in rows if "hkt_L3" in r]
        if points:
            ax_loss.plot([r["step"] for r in points], [r["hkt_L3"] for r in points], ":",
                         label=f"{name}: L3 student")
    ax_alpha.set_ylabel("alpha = 2 L3 / (L1 + L2)")
    ax_loss.set_ylabel("path loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_yscale("log")
    for ax in (ax_alpha, ax_loss):
        if ax.get_legend_handles_labels()[0]:  # only baselines (no alpha): no empty legend
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, overwrite, dpi=100)
