"""Which framework a config is for: detectron2 (YAML), mmseg or mmdet (mmengine ``.py``)."""
from __future__ import annotations

from pathlib import Path

SCOPES = ("mmseg", "mmdet")


class UnknownConfigKindError(ValueError):
    """The tool cannot tell which framework runs the config."""


def config_kind(name: str) -> str:
    """'detectron2', 'mmseg' or 'mmdet' for a file path or a scoped name (``mmseg::...``)."""
    scope = name.split("::", 1)[0] if "::" in name else None
    if scope in SCOPES:
        return scope
    if name.endswith((".yaml", ".yml")):
        return "detectron2"
    if not name.endswith(".py"):
        raise UnknownConfigKindError(
            f"{name}: not a config this tool runs; give an mmseg/mmdet .py config (a file or "
            f"'mmseg::<path>'/'mmdet::<path>') or a detectron2 .yaml config.")
    text = Path(name).read_text(encoding="utf-8") if Path(name).is_file() else ""
    if "LazyCall" in text or "model_zoo.get_config" in text:
        raise UnknownConfigKindError(
            f"{name} is a detectron2 LazyConfig: this tool runs detectron2 YAML configs; "
            f"smoke-test a LazyConfig with tools/train_net.py --config-file {name} "
            f"train.max_iter=4 (docs/detectron2.md).")
    from .openmmlab_smoke import read_config

    cfg = read_config(name)
    scope = cfg.get("default_scope")
    if scope in SCOPES:
        return scope
    imports = " ".join((cfg.get("custom_imports") or {}).get("imports", []))
    for scope in SCOPES:
        if f"for_{scope}" in imports:
            return scope
    raise UnknownConfigKindError(
        f"{name}: default_scope is {scope!r}; this tool runs mmseg and mmdet configs (set "
        f"default_scope = 'mmseg' or 'mmdet' in the config).")
