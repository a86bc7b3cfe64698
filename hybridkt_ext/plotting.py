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
RECORDED_KEYS = ("hkt_alpha", "hkt_L1", "hkt_L2", "hkt_L3", "hkt_path")

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
            ``hkt_L2``, ``hkt_L3`` (a baseline run has its ``hkt_L3`` only).
        path: the PNG to write (atomically: an interrupted write leaves the previous one).
        title: the figure's title; none if empty.
        overwrite: replace an existing ``path``; False raises FileExistsError instead.

    Returns:
        ``path``.
    """
    fig = new_figure((7, 6))
    ax_alpha, ax_loss = fig.subplots(2, 1, sharex=True)
    for name, rows in runs.items():
        with_alpha = [r for r in rows if "hkt_alpha" in r]
        if with_alpha:  # a baseline run (no teacher, FitNet, AT) has its L3 only
            ax_alpha.plot([r["step"] for r in with_alpha], [r["hkt_alpha"] for r in with_alpha],
                          label=name)
        for key, label, style in (("hkt_L1", "L1 student-first", "-"),
                                  ("hkt_L2", "L2 teacher-first", "--"),
                                  ("hkt_L3", "L3 student", ":")):
            points = [r for r in rows if key in r]
            if points:
                ax_loss.plot([r["step"] for r in points], [r[key] for r in points], style,
                             label=f"{name}: {label}")
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
