"""Plots of alpha and the three path losses over training (the paper's Fig. 6 and 7)."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from .core.atomic_files import replace_atomically


def plot_alpha_and_path_losses(runs: Mapping[str, Sequence[Mapping[str, float]]],
                               path: str | Path, title: str = "", overwrite: bool = True) -> Path:
    """Writes a PNG with alpha (top) and L1/L2/L3 (bottom) against the step, one line per run.

    Args:
        runs: run name -> log rows holding ``step`` and some of ``hkt_alpha``, ``hkt_L1``,
            ``hkt_L2``, ``hkt_L3`` (a baseline run has its ``hkt_L3`` only).
        path: the PNG to write (atomically: an interrupted write leaves the previous one).
        overwrite: replace an existing ``path``; False raises FileExistsError instead.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    fig, (ax_alpha, ax_loss) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
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
    ax_alpha.legend(fontsize="small")
    ax_loss.set_ylabel("path loss")
    ax_loss.set_xlabel("step")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    try:
        return replace_atomically(path, lambda f: fig.savefig(f, dpi=100, format="png"),
                                  overwrite)
    finally:
        plt.close(fig)
