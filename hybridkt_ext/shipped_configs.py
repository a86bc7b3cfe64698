"""The configs this package ships, found where the package is installed.

The repository's ``configs/`` is the package's ``hybridkt_ext/configs`` (a symlink in the clone,
real files in the wheel), as mmseg ships its configs in ``mmseg/.mim/configs`` and detectron2
its ``model_zoo``: code and tools that need a shipped config ask here instead of walking up
from their own file, so they work from a wheel as from a clone.
"""
from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

FRAMEWORKS = ("detectron2", "mmdet", "mmseg")


def config_dir(framework: str) -> Path:
    """The folder of ``framework``'s shipped configs (one of ``FRAMEWORKS``)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"no shipped configs for {framework!r}; choose from {FRAMEWORKS}.")
    return Path(str(resources.files("hybridkt_ext") / "configs" / framework))


def config_file(relative: str) -> Path:
    """A shipped config by its path under ``configs/``, e.g.
    ``config_file('mmdet/faster-rcnn_r18_fpn_teacher_synthetic-citypersons.py')``.

    Raises:
        FileNotFoundError: no such shipped config (the message names the closest ones).
    """
    framework, _, rest = relative.partition("/")
    folder = config_dir(framework)
    path = folder / rest
    if not path.is_file():
        known = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
        close = difflib.get_close_matches(rest, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise FileNotFoundError(f"hybridkt_ext ships no config {relative!r}.{hint}")
    return path
