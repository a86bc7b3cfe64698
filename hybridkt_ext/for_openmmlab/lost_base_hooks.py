"""The custom hooks a converted config's ``_base_`` has and the run lost.

``custom_hooks = [dict(type='HybridKTHook')]`` under a ``_base_`` *replaces* the base's list
(mmengine merges dicts, not lists): RTMDet's ``EMAHook`` and ``PipelineSwitchHook``, YOLOX's
mode switch, would vanish without a word and change the recipe. The documented form keeps them,
``custom_hooks = [*_base_.custom_hooks, dict(type='HybridKTHook')]``; a config that still lost
some is named here so ``HybridKTHook`` can warn once, at ``before_run``.

The bases are read from the config file's own ``_base_`` line (a literal, never executed here)
and loaded with mmengine's ``Config``, scopes (``mmdet::``) included.
"""
from __future__ import annotations

import ast
import os
from typing import Any


def _hook_types(hooks: Any) -> list[str]:
    return [h.get("type") for h in hooks or [] if isinstance(h, dict)
            and isinstance(h.get("type"), str)]


def _bases(filename: str) -> list[str]:
    with open(filename, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename)
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "_base_"):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return []
            return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return []


def hooks_lost_from_base(cfg) -> list[str]:
    """Types of the custom hooks ``cfg``'s ``_base_`` configs set and ``cfg`` does not have
    (empty when ``cfg`` has no Python file with a ``_base_``)."""
    from mmengine.config import Config

    filename = getattr(cfg, "filename", None)
    if not filename or not str(filename).endswith(".py") or not os.path.isfile(filename):
        return []
    have = set(_hook_types(cfg.get("custom_hooks")))
    lost: list[str] = []
    for base in _bases(filename):
        try:
            path, _ = Config._get_cfg_path(base, os.path.dirname(filename))
            base_hooks = Config.fromfile(path).get("custom_hooks")
        except Exception:  # noqa: BLE001 - only a warning rests on it; the run loaded its config
            continue
        for kind in _hook_types(base_hooks):
            if kind not in have and kind not in lost:
                lost.append(kind)
    return lost
