"""Student-only export: the checkpoint and config of the plain mmseg student, no hybridkt inside.

``export_student_checkpoint`` (``check_export_target``, ``student_checkpoint``, then an atomic
save) keeps ``backbone.engine.student.model.*`` as ``backbone.*``, keeps the heads (and neck)
unchanged and drops the teacher, adapters and FitNet regressors.
``plain_student_config`` turns the hybrid config into the student's plain mmseg config.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from mmengine.config import Config

from hybridkt_ext.core import export_student_state_dict, save_atomically
from hybridkt_ext.core import read_checkpoint_file
from hybridkt_ext.core.output_guard import refuse_writing_onto_inputs

HYBRID_STUDENT_PREFIX = "backbone.engine.student.model."
HYBRID_ONLY_PREFIXES = ("backbone.engine.", "backbone.transfer_loss.")
# Ours -> mmseg's over the same files: the plain config imports nothing of this package.
_PLAIN_DATASETS = {"SyntheticCityscapesDataset": "CityscapesDataset",
                   "CheckedCityscapesDataset": "CityscapesDataset"}
_ADAPTER_MODULE = "hybridkt_ext"
# Data types with no plain framework equivalent: a plain config naming them keeps the
# adapter's import (for the data only; the model is plain).
_ADAPTER_DATA_TYPES = frozenset({"GTA5Dataset", "SyntheticGTA5Dataset", "CityPersonsDataset",
                                 "SyntheticCityPersonsDataset", "CityPersonsMetric"})


def check_export_target(checkpoint: str | os.PathLike, out: str | os.PathLike,
                        overwrite: bool = False,
                        inputs: tuple[str | os.PathLike, ...] = ()) -> None:
    """Refuses an existing ``out`` (unless ``overwrite``) and ``out`` being one of the inputs.

    Args:
        checkpoint: the training checkpoint read.
        out: the file to write.
        overwrite: replace an existing ``out`` that is not an input.
        inputs: other files the export reads or writes (the hybrid config, the other output),
            none of which ``out`` may be, whatever ``overwrite`` says.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        OutputIsInputError: (a ValueError) ``out`` is the input checkpoint, an input config or
            the other output, by path, symbolic link or hard link.
    """
    refuse_writing_onto_inputs([out], [checkpoint, *inputs], reader="this export")
    if Path(out).exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it.")


def student_checkpoint(checkpoint: str | os.PathLike, trust: bool = False) -> dict[str, Any]:
    """Reads a HybridBackbone model's training checkpoint and returns the student-only one.

    Args:
        checkpoint: the Runner's checkpoint file.
        trust: unpickle any class the file names (only for files you trust).

    Returns:
        ``{"meta": {"exported_from", "iter", "dataset_meta"}, "state_dict": plain student state
        dict}`` (``dataset_meta``, the class names and palette, when the source has it).

    Raises:
        CheckpointFileError: the checkpoint is missing, empty, corrupt or not a checkpoint.
        KeyError: the checkpoint holds no hybrid student (not a HybridBackbone model).
    """
    saved = read_checkpoint_file(checkpoint, trust=trust)
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise KeyError(f"{checkpoint} holds no state_dict (it holds a {type(saved).__name__}).")
    try:
        plain = export_student_state_dict(state, HYBRID_STUDENT_PREFIX, plain_prefix="backbone.",
                                          drop_prefixes=HYBRID_ONLY_PREFIXES)
    except KeyError as err:
        raise KeyError(f"{checkpoint} is not a HybridBackbone checkpoint: {err.args[0]}") \
            from None
    source_meta = saved.get("meta") if isinstance(saved.get("meta"), dict) else {}
    meta = {"exported_from": os.fspath(checkpoint), "iter": source_meta.get("iter")}
    if source_meta.get("dataset_meta") is not None:  # class names and palette for mmseg
        meta["dataset_meta"] = source_meta["dataset_meta"]
    return {"meta": meta, "state_dict": plain}


def export_student_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike,
                              overwrite: bool = False, trust: bool = False) -> Path:
    """Writes the student-only checkpoint (mmengine format: ``meta`` + ``state_dict``).

    Every check runs before anything is written, and the file is written atomically (a
    temporary file renamed into place), so a failure leaves no partial file at ``out``.

    Args:
        checkpoint: a checkpoint written by the Runner for a HybridBackbone model.
        out: the file to write.
        overwrite: replace ``out`` if it exists.
        trust: unpickle any class the checkpoint names (only for files you trust).

    Raises:
        FileExistsError, ValueError: see ``check_export_target``.
        CheckpointFileError, KeyError: see ``student_checkpoint``.
    """
    check_export_target(checkpoint, out, overwrite)
    return save_atomically(student_checkpoint(checkpoint, trust=trust), out, overwrite=overwrite)


def _plain_datasets(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _plain_datasets(v) for k, v in node.items()}
        if node.get("type") in _PLAIN_DATASETS:
            node["type"] = _PLAIN_DATASETS[node["type"]]
            node.pop("synthetic", None)
        return node
    if isinstance(node, (list, tuple)):
        return type(node)(_plain_datasets(v) for v in node)
    return node


def _types(node: Any) -> set[str]:
    """Every ``type`` named anywhere in a config tree."""
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("type"), str):
            found.add(node["type"])
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for value in node:
            found |= _types(value)
    return found


def plain_student_config(cfg: Config) -> Config:
    """The hybrid config (mmseg or mmdet) with the student as the backbone and no hybridkt model.

    Synthetic and checked Cityscapes data become mmseg's CityscapesDataset over the same
    folder (synthetic data must have been generated already). Data with no plain equivalent
    (GTA5, CityPersons and its MR^-2 metric) stays, and so does the adapter import it needs;
    the model part never needs this package.
    """
    data = copy.deepcopy(cfg.to_dict())
    model = data["model"]
    backbone = model["backbone"]
    if backbone.get("type") != "HybridBackbone":
        raise ValueError(f"the config's backbone is {backbone.get('type')!r}, not HybridBackbone.")
    model["backbone"] = backbone["student"]
    hooks = [h for h in data.get("custom_hooks", []) if h.get("type") != "HybridKTHook"]
    data["custom_hooks"] = hooks
    data = _plain_datasets(data)
    imports = data.get("custom_imports")
    if imports and not _types(data) & _ADAPTER_DATA_TYPES:
        kept = [m for m in imports.get("imports", []) if not m.startswith(_ADAPTER_MODULE)]
        if kept:
            imports["imports"] = kept
        else:
            data.pop("custom_imports")
    return Config(data)


STUDENT_FOR_EVALUATION = "student_for_evaluation.pth"  # written into the test's work dir


def student_evaluation(cfg: Config, checkpoint: str | os.PathLike, work_dir: str | os.PathLike,
                       trust: bool = False) -> tuple[Config, Path]:
    """The plain student config and checkpoint that evaluate a hybrid config's student.

    Evaluation runs the student alone, so it should need neither the teacher nor its file. A
    training checkpoint of the hybrid config is mapped to the plain student's keys (written
    to ``work_dir``); a checkpoint already exported (plain keys) is used as it is.

    Raises:
        CheckpointFileError: the checkpoint cannot be read.
        KeyError: it holds neither a hybrid nor a plain student of this config.
    """
    saved = read_checkpoint_file(checkpoint, trust=trust)
    state = saved.get("state_dict", saved) if isinstance(saved, dict) else {}
    plain_cfg = plain_student_config(cfg)
    if any(k.startswith(HYBRID_STUDENT_PREFIX) for k in state):
        out = Path(work_dir) / STUDENT_FOR_EVALUATION
        save_atomically(student_checkpoint(checkpoint, trust=trust), out, overwrite=True)
        return plain_cfg, out
    if any(k.startswith("backbone.") for k in state):  # an exported student
        return plain_cfg, Path(checkpoint)
    raise KeyError(f"{checkpoint} holds no student of this config: neither hybrid keys "
                   f"({HYBRID_STUDENT_PREFIX}*) nor plain ones (backbone.*).")
