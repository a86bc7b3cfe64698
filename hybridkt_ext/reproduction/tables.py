"""Result tables: per-seed values, mean and standard deviation, Markdown and JSON output."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..core import write_text_atomically


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0.0 for a single value) of the finite values
    (NaN marks a diverged run and is left out; see ``ResultTable.summary``'s ``diverged``)."""
    values = [float(v) for v in values if math.isfinite(float(v))]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(var)


@dataclass
class ResultTable:
    """One table of the reproduction.

    Attributes:
        name: file stem of the outputs (``<name>.md``, ``<name>.json``).
        title: the caption (which paper table it mirrors and the setting).
        metrics: metric column names, e.g. ``["test acc. (%)"]``.
        rows: row label -> metric -> one value per seed (same seed order in every row).
        paper: optional row label -> metric -> the paper's number, shown beside ours.
        notes: free text printed under the table (setting, seeds, what differs from the paper).
        lower_is_better: metrics where smaller is better (miss rates).
    """

    name: str
    title: str
    metrics: list[str]
    rows: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: str = ""
    lower_is_better: list[str] = field(default_factory=list)

    def add(self, row: str, metric: str, value: float) -> None:
        """Appends one seed's ``value`` to ``row``/``metric``."""
        if metric not in self.metrics:
            raise KeyError(f"table {self.name}: unknown metric {metric!r}; have {self.metrics}")
        self.rows.setdefault(row, {}).setdefault(metric, []).append(float(value))

    def summary(self) -> dict[str, dict[str, dict]]:
        """row -> metric -> {mean, std, n, values}."""
        out: dict[str, dict[str, dict]] = {}
        for row, metrics in self.rows.items():
            for metric, values in metrics.items():
                m, s = mean_std(values)
                finite = sum(math.isfinite(v) for v in values)
                out.setdefault(row, {})[metric] = {"mean": m, "std": s, "n": finite,
                                                   "diverged": len(values) - finite,
                                                   "values": list(values)}
        return out

    def to_markdown(self) -> str:
        """The table as Markdown: ``mean ± std (n=seeds)`` per cell, paper column beside."""
        summary = self.summary()
        paper_cols = [m for m in self.metrics if any(m in p for p in self.paper.values())]
        header = ["row"] + [f"{m} (ours)" for m in self.metrics]
        header += [f"{m} (paper)" for m in paper_cols]
        lines = [f"**{self.title}**", "", "| " + " | ".join(header) + " |",
                 "|" + "---|" * len(header)]
        for row in self.rows:
            cells = [row]
            for metric in self.metrics:
                cell = summary.get(row, {}).get(metric)
                if cell is None:
                    cells.append("-")
                    continue
                text = (f"{cell['mean']:.2f} ± {cell['std']:.2f} (n={cell['n']})"
                        if cell["n"] else "no finite run")
                if cell["diverged"]:
                    text += f", {cell['diverged']} diverged"
                cells.append(text)
            for metric in paper_cols:
                value = self.paper.get(row, {}).get(metric)
                cells.append("-" if value is None else f"{value:g}")
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines += ["", self.notes]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict:
        data = asdict(self)
        data["summary"] = self.summary()
        return data


def write_tables(tables: Sequence[ResultTable], out_dir: str | Path) -> list[Path]:
    """Writes ``<name>.md`` and ``<name>.json`` per table; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in tables:
        md, js = out_dir / f"{table.name}.md", out_dir / f"{table.name}.json"
        write_text_atomically(md, table.to_markdown(), overwrite=True)
        write_text_atomically(js, json.dumps(table.to_json(), indent=1), overwrite=True)
        paths += [md, js]
    return paths
