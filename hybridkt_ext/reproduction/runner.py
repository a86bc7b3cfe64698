"""Runs the chosen experiments, writes tables (Markdown + JSON), plots and a run summary."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

from ..core import write_text_atomically
from .tables import ResultTable, write_tables

EXPERIMENTS = ("classification", "segmentation", "detection")


def _classification(out: Path, work: Path, seeds, quick: bool, progress, **kw) -> dict:
    from . import plots
    from .classification import ClassificationSettings, quick_settings, run_classification

    settings = quick_settings(tuple(seeds)) if quick else ClassificationSettings(
        seeds=tuple(seeds))
    for key, value in kw.items():
        if value is not None and hasattr(settings, key):
            setattr(settings, key, value)
    result = run_classification(work / "classification", settings, progress)
    c = result.curves
    s = settings
    figs = [
        plots.plot_alpha_per_run(
            {f"far teacher {s.teacher}": c["hybrid"],
             **({f"near teacher {s.near_teacher}": c["hybrid_near"]}
                if "hybrid_near" in c else {})},
            out / "cls_alpha_per_teacher.png",
            f"digits, student {s.student}: dynamic alpha per teacher (Figs. 7/8)"),
        plots.plot_training_curves({"no teacher": c["none"], "hybrid": c["hybrid"]},
                                   out / "cls_training_curves.png",
                                   f"digits, {s.teacher} -> {s.student} (Fig. 5)"),
        plots.plot_path_losses(c["hybrid"], out / "cls_path_losses.png",
                               f"digits, {s.teacher} -> {s.student}: path losses (Fig. 6)"),
        plots.plot_fixed_alpha_sweep(result.tables[1], "top-1 (%)", out / "cls_fixed_alpha.png",
                                     f"digits, {s.teacher} -> {s.student} (Fig. 9)"),
    ]
    return {"tables": result.tables, "plots": figs, "settings": result.settings,
            "seconds": result.seconds}


def experiments_in(out: str | Path) -> list[str]:
    """The experiments whose results ``out`` already holds (from its summary.json)."""
    summary_path = Path(out) / "summary.json"
    try:
        return sorted(json.loads(summary_path.read_text()))
    except FileNotFoundError:
        return []
    except ValueError as err:
        raise ValueError(f"{summary_path} is not valid JSON ({err}); move it away or choose "
                         "another --out.") from err


def run_experiments(experiments: Sequence[str], out: str | Path, work: str | Path,
                    seeds: Sequence[int], quick: bool,
                    progress: Callable[[str], None] = print, overwrite: bool = False,
                    **overrides) -> dict:
    """Runs ``experiments`` in order; returns {experiment: summary}; writes ``out``.

    ``out`` may gather the experiments of several runs (summary.json lists them); an
    experiment already there is refused unless ``overwrite``, before anything runs.

    Raises:
        FileExistsError: ``out`` holds results of one of ``experiments`` and not ``overwrite``.
    """
    out, work = Path(out), Path(work)
    done = [e for e in experiments_in(out) if e in experiments]
    if done and not overwrite:
        raise FileExistsError(f"{out} already holds the results of {done}; pass --overwrite to "
                              "replace them, or another --out.")
    out.mkdir(parents=True, exist_ok=True)
    runners = {"classification": _classification}
    try:
        from .segmentation import run as seg_run
        runners["segmentation"] = seg_run
    except ImportError:
        pass
    try:
        from .detection import run as det_run
        runners["detection"] = det_run
    except ImportError:
        pass
    summary_path = out / "summary.json"
    for name in experiments:
        if name not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {name!r}; choose from {EXPERIMENTS}")
        start = time.perf_counter()
        progress(f"== {name} ({'quick' if quick else 'full'}, seeds {list(seeds)}) ==")
        result = runners[name](out, work, list(seeds), quick, progress, **overrides)
        wall = time.perf_counter() - start
        # Re-read before writing: another run may have added its experiment meanwhile.
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        if result.get("skipped"):
            progress(f"== {name}: skipped: {result['skipped']}")
            summary[name] = {"skipped": result["skipped"], "wall_s": wall}
            write_text_atomically(summary_path, json.dumps(summary, indent=1, default=str), True)
            continue
        tables: list[ResultTable] = result["tables"]
        write_tables(tables, out)
        summary[name] = {
            "quick": quick, "seeds": list(seeds), "wall_s": round(wall, 1),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "tables": [t.name for t in tables],
            "plots": [Path(p).name for p in result.get("plots", [])],
            "settings": result.get("settings", {}),
        }
        write_text_atomically(summary_path, json.dumps(summary, indent=1, default=str), True)
        for table in tables:
            progress("\n" + table.to_markdown())
        progress(f"== {name}: {wall:.0f} s")
    return {k: v for k, v in summary.items() if k in experiments}
