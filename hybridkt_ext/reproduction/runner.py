"""Runs the chosen experiments, writes tables (Markdown + JSON), plots and a run summary."""
from __future__ import annotations

import dataclasses
import inspect
import json
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

from ..core import write_text_atomically
from .tables import ResultTable, write_tables

EXPERIMENTS = ("classification", "segmentation", "detection")
# Run only when named: each trains several times the compute of its paper experiment.
MATCHED_COMPUTE = ("matched_compute_digits", "matched_compute_segmentation",
                   "matched_compute_detection", "matched_compute_several_teachers")
ALL_EXPERIMENTS = EXPERIMENTS + MATCHED_COMPUTE


def _classification(out: Path, work: Path, seeds, quick: bool, progress, **changes) -> dict:
    """``changes``: fields of ``ClassificationSettings`` (validated by ``split_options``)."""
    from .classification import ClassificationSettings, quick_settings, run_classification

    settings = quick_settings(tuple(seeds)) if quick else ClassificationSettings(
        seeds=tuple(seeds))
    settings = dataclasses.replace(settings, **changes)
    result = run_classification(work / "classification", settings, progress)
    return {"tables": result.tables, "plots": _classification_plots(out, result, settings),
            "settings": result.settings, "seconds": result.seconds}


def _classification_plots(out: Path, result, s) -> list[Path]:
    """The figures whose runs exist (a mode left out or diverged on every seed has no curve)."""
    from . import figures

    c, figs = result.curves, []
    if "hybrid" in c:
        near = {f"near teacher {s.near_teacher}": c["hybrid_near"]} if "hybrid_near" in c else {}
        figs.append(figures.plot_alpha_per_run(
            {f"far teacher {s.teacher}": c["hybrid"], **near}, out / "cls_alpha_per_teacher.png",
            f"digits, student {s.student}: dynamic alpha per teacher (Figs. 7/8)"))
        figs.append(figures.plot_path_losses(
            c["hybrid"], out / "cls_path_losses.png",
            f"digits, {s.teacher} -> {s.student}: path losses (Fig. 6)"))
        if "none" in c:
            figs.append(figures.plot_training_curves(
                {"no teacher": c["none"], "hybrid": c["hybrid"]}, out / "cls_training_curves.png",
                f"digits, {s.teacher} -> {s.student} (Fig. 5)"))
    if any(row.startswith("fixed ") for row in result.tables[1].rows):
        figs.append(figures.plot_fixed_alpha_sweep(
            result.tables[1], "top-1 (%)", out / "cls_fixed_alpha.png",
            f"digits, {s.teacher} -> {s.student} (Fig. 9)"))
    return figs


def _runner(name: str) -> Callable[..., dict]:
    """The experiment's entry: (out, work, seeds, quick, progress, **its own options)."""
    if name == "classification":
        return _classification
    if name == "segmentation":
        from .segmentation import run
        return run
    if name == "detection":
        from .detection import run
        return run
    if name in MATCHED_COMPUTE:
        from . import matched_compute_settings
        return getattr(matched_compute_settings, "run_" + name.removeprefix("matched_compute_"))
    raise ValueError(f"unknown experiment {name!r}; choose from {ALL_EXPERIMENTS}")


def _options_of(name: str) -> set[str]:
    """The keyword options experiment ``name`` takes beside (out, work, seeds, quick,
    progress): classification's are the fields of its settings."""
    if name == "classification":
        from .classification import ClassificationSettings

        return {f.name for f in dataclasses.fields(ClassificationSettings)} - {"seeds"}
    return set(list(inspect.signature(_runner(name)).parameters)[5:])


def split_options(experiments: Sequence[str], options: dict) -> dict[str, dict]:
    """Each experiment's share of ``options`` (those not None).

    Raises:
        ValueError: an unknown experiment, or an option none of ``experiments`` takes (a
            misspelt or misplaced override is never silently ignored).
    """
    given = {k: v for k, v in options.items() if v is not None}
    accepted = {name: _options_of(name) for name in experiments}
    unused = sorted(set(given) - set().union(*accepted.values()))
    if unused:
        takers = {k: [n for n in ALL_EXPERIMENTS if k in _options_of(n)] for k in unused}
        raise ValueError("options that none of the chosen experiments takes: " + "; ".join(
            f"{k} (taken by {takers[k] or 'no experiment'})" for k in unused))
    return {name: {k: v for k, v in given.items() if k in accepted[name]}
            for name in experiments}


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
    options = split_options(experiments, overrides)
    done = [e for e in experiments_in(out) if e in experiments]
    if done and not overwrite:
        raise FileExistsError(f"{out} already holds the results of {done}; pass --overwrite to "
                              "replace them, or another --out.")
    out.mkdir(parents=True, exist_ok=True)
    summary_path = out / "summary.json"
    for name in experiments:
        start = time.perf_counter()
        progress(f"== {name} ({'quick' if quick else 'full'}, seeds {list(seeds)}) ==")
        result = _runner(name)(out, work, list(seeds), quick, progress, **options[name])
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
