"""Config keys of the detectron2 adapter: ``MODEL.HYBRIDKT.*`` (+ ``MODEL.MOBILENET_V1.*``), and
``load_hybridkt_config``, the YAML reader that reports a mistake in one line (an unknown key with
the closest valid one) and never runs code from the file.

Defaults reproduce the paper's pedestrian detection setting (Table 4): a frozen torchvision
ResNet-50 teacher (the PifPaf pose network's trunk) with RGB/ImageNet input, switches at every
stage boundary, dynamic balancing alpha = 2*L3/(L1+L2).
"""
from __future__ import annotations

import copy
import os
import re
from typing import Any, Mapping, Sequence

import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

from ..core import transfer_mode, transfer_mode_names
from ..core.closest_names import did_you_mean, renamed_key
from .mobilenet_v1_backbone import add_mobilenet_v1_config

# Names accepted by MODEL.HYBRIDKT.TEACHER.FRAMEWORK (MODEL.HYBRIDKT.TRANSFER: core's).
TEACHER_FRAMEWORKS = ("torchvision", "timm", "detectron2")
# Balance modes a config may name; "student_only" is implied by TRANSFER "none".
CONFIG_BALANCE_MODES = ("dynamic", "fixed")
# MODEL.HYBRIDKT.FIXED_ALPHA's default: another value only means something with BALANCE "fixed".
DEFAULT_FIXED_ALPHA = 1.0
# How yacs names a key the config does not have (merge_from_file: KeyError; merge_from_list:
# AssertionError); stable, yacs 0.1.8 is its last release.
_NON_EXISTENT_KEY = re.compile(r"Non-existent (?:config )?key: (\S+)")


def add_hybridkt_config(cfg: CN) -> None:
    """Adds the hybridkt keys to a detectron2 config (in place), with the paper's defaults."""
    _C = cfg
    _C.MODEL.HYBRIDKT = CN()
    # How the teacher is used: "hybrid" (the paper's three paths), "fitnet" / "at" (feature
    # mimicking baselines), "none" (student alone; no teacher is built).
    _C.MODEL.HYBRIDKT.TRANSFER = "hybrid"
    # Registered BACKBONE_REGISTRY builder of the student's bottom-up network (before FPN):
    # "build_resnet_backbone" (detectron2's ResNet, MODEL.RESNETS.*) or
    # "build_mobilenet_v1_backbone" (MODEL.MOBILENET_V1.*, the paper's Table 4 student).
    _C.MODEL.HYBRIDKT.STUDENT_BOTTOM_UP = "build_resnet_backbone"
    # Stage indices k (1..num_stages-1) before which the hybrid paths switch network; empty
    # means every stage boundary (S T S T / T S T S), as in the paper.
    _C.MODEL.HYBRIDKT.SWITCH_POINTS = []
    # "dynamic": alpha = 2*L3/(L1+L2) per step (eq. 1); "fixed": alpha = FIXED_ALPHA (Fig. 9).
    _C.MODEL.HYBRIDKT.BALANCE = "dynamic"
    # alpha in BALANCE "fixed" mode; total = alpha*(L1+L2) + L3.
    _C.MODEL.HYBRIDKT.FIXED_ALPHA = DEFAULT_FIXED_ALPHA
    # The options of every registered transfer mode's loss (core.transfer_modes), each with
    # its comment there: FITNET_WEIGHT / FITNET_STAGES (TRANSFER "fitnet"), AT_BETA / AT_STAGES
    # (TRANSFER "at"), and those of a mode registered before this call.
    for name in transfer_mode_names():
        for option in transfer_mode(name).yaml_options:
            _C.MODEL.HYBRIDKT[option.key] = copy.deepcopy(option.default)
    # Recompute the teacher stages that run with autograd (T2..Tn of the teacher-first path)
    # in backward instead of keeping their activations: less memory, more time (measured in
    # docs/performance.md); losses and gradients are identical either way.
    _C.MODEL.HYBRIDKT.RECOMPUTE_TEACHER = False
    # "bf16" or "fp16": the frozen teacher's stages run in that dtype under autocast while the
    # student and the adapters keep theirs (GPU time and memory; losses agree to ~1e-2
    # relative). "" runs the teacher as the rest of the step.
    _C.MODEL.HYBRIDKT.TEACHER_PRECISION = ""
    # Unpickle any class in the files this run reads (the teacher file, MODEL.WEIGHTS, resumed
    # checkpoints). False reads tensors, containers and numpy arrays only, so a pickle from
    # someone else cannot run code; set True only for files you trust (--trust-checkpoint).
    _C.MODEL.HYBRIDKT.TRUST_CHECKPOINTS = False

    _C.MODEL.HYBRIDKT.TEACHER = CN()
    # The detectron2 config (YAML or LazyConfig .py; a file or a model-zoo path such as
    # "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml") the teacher checkpoint was trained with.
    # Set, it replaces FRAMEWORK/ARCH and PIXEL_MEAN/PIXEL_STD/INPUT_FORMAT: the teacher is that
    # config's bottom-up with that config's pixel convention, and WEIGHTS_PREFIX defaults to
    # "backbone.bottom_up." (FPN) or "backbone." (C4).
    _C.MODEL.HYBRIDKT.TEACHER.CONFIG = ""
    # Who builds the teacher: "torchvision" (torchvision.models.get_model(ARCH), e.g. the
    # ResNet-50 trunk of a pose network), "timm" (timm.create_model(ARCH), stages from its
    # FeatureInfo) or "detectron2" (build_resnet_backbone, depth from ARCH). No weights are
    # downloaded: they come from WEIGHTS.
    _C.MODEL.HYBRIDKT.TEACHER.FRAMEWORK = "torchvision"
    # Architecture name: a torchvision or timm model name ("resnet50", "convnext_tiny", ...)
    # or, for detectron2, "resnet<depth>" (18, 34, 50, 101, 152).
    _C.MODEL.HYBRIDKT.TEACHER.ARCH = "resnet50"
    # Checkpoint of the well-trained teacher (.pth/.pkl/.safetensors of torchvision, timm,
    # mmseg or detectron2). Empty is refused unless ALLOW_RANDOM_INIT.
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS = ""
    # Accept an empty WEIGHTS: the teacher keeps random weights and transfers nothing (tests
    # and smoke runs only; a warning is logged).
    _C.MODEL.HYBRIDKT.TEACHER.ALLOW_RANDOM_INIT = False
    # Prefix of the teacher's keys in the checkpoint, stripped on load ("backbone.bottom_up."
    # for a detectron2 detector, "backbone." for mmseg, "" for a plain torchvision file).
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS_PREFIX = ""
    # Named key-renaming preset applied after the prefix: "" (none) or
    # "detectron2_resnet_to_torchvision" (a detectron2 ResNet checkpoint into a torchvision
    # ResNet teacher).
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS_REMAP = ""
    # Refuse checkpoint keys the teacher does not have (a classifier head such as "fc." is
    # always allowed). Weights the teacher's stages use must be in the file either way.
    _C.MODEL.HYBRIDKT.TEACHER.WEIGHTS_STRICT = True
    # The teacher's own input convention: mean/std in its channel order and pixel scale.
    # Default: torchvision's ImageNet normalisation of RGB 0-255 images.
    _C.MODEL.HYBRIDKT.TEACHER.PIXEL_MEAN = [123.675, 116.28, 103.53]
    _C.MODEL.HYBRIDKT.TEACHER.PIXEL_STD = [58.395, 57.12, 57.375]
    # Channel order the teacher was trained with: "RGB" or "BGR" (detectron2 models).
    _C.MODEL.HYBRIDKT.TEACHER.INPUT_FORMAT = "RGB"
    # Several teachers, each with its own adapters, hybrid paths and alpha: a list of mappings
    # with the keys of MODEL.HYBRIDKT.TEACHER above (a key left out takes its default there)
    # and an optional NAME, the teacher's name in the logs (hkt_alpha/<NAME>; default its
    # index). Empty: the one teacher of MODEL.HYBRIDKT.TEACHER. A list and a changed
    # MODEL.HYBRIDKT.TEACHER key are refused together (which one would train is unclear).
    _C.MODEL.HYBRIDKT.TEACHERS = []
    # With several teachers: "all" runs every teacher's paths at every step; "sample" runs one
    # teacher's per step, in turn (a step then costs what a one-teacher step costs).
    _C.MODEL.HYBRIDKT.TEACHER_SAMPLING = "all"

    add_mobilenet_v1_config(_C)


def load_hybridkt_config(config_file: str, opts: Sequence[str] = ()) -> CN:
    """detectron2's defaults + the hybridkt keys, merged with a YAML file and KEY VALUE pairs.

    What ``tools/train_net.py`` runs, with every mistake in the file or the pairs reported as
    one error naming it (and, for a key that does not exist, the closest keys that do).

    Args:
        config_file: the YAML config (``_BASE_`` files are followed, as detectron2 does).
        opts: ``KEY VALUE`` pairs, flattened (the command line's tail).

    Returns:
        The merged config, not frozen.

    Raises:
        FileNotFoundError: ``config_file`` is not a file.
        KeyError: a key of the file or of ``opts`` is not a config key.
        ValueError: the file is not YAML, not a mapping, or has a value of the wrong type; or
            ``opts`` are not pairs.
    """
    cfg = get_cfg()
    add_hybridkt_config(cfg)
    merge_config_file(cfg, config_file)
    merge_config_list(cfg, opts)
    return cfg


def merge_config_file(cfg: CN, config_file: str) -> None:
    """``cfg.merge_from_file`` with one-line errors, never running code from the file.

    Raises:
        FileNotFoundError, KeyError, ValueError: as ``load_hybridkt_config``.
    """
    try:
        with open(config_file, encoding="utf-8") as f:
            top = yaml.safe_load(f)
        if not isinstance(top, dict):
            holds = "nothing" if top is None else f"a {type(top).__name__}"
            raise ValueError(f"{config_file}: a detectron2 YAML config is a mapping of config "
                             f"keys (MODEL: ..., SOLVER: ...), this file holds {holds}.")
        # allow_unsafe=False: detectron2 would otherwise retry a YAML that safe_load refuses
        # with yaml.unsafe_load, which runs the Python that !!python/object tags name. Only
        # detectron2's own model-zoo files, installed with its code, may do so (Base-RetinaNet
        # computes its anchor sizes with an eval tag).
        cfg.merge_from_file(config_file, allow_unsafe=_only_model_zoo_runs_code(config_file))
    except yaml.YAMLError as err:
        raise ValueError(f"not a valid YAML config: {_yaml_problem(err, config_file)}") from None
    except KeyError as err:
        raise _unknown_key_error(cfg, err, config_file) from None


def _base_chain(config_file: str) -> list[str]:
    """The file and every ``_BASE_`` it names, resolved as detectron2 resolves them."""
    chain, todo = [], [config_file]
    while todo:
        path = todo.pop()
        chain.append(path)
        try:
            with open(path, encoding="utf-8") as f:
                base = (yaml.load(f, Loader=_BaseKeyLoader) or {}).get("_BASE_")
        except (OSError, yaml.YAMLError):
            continue  # merge_from_file reports it
        if isinstance(base, str):
            base = os.path.expanduser(base)
            todo.append(base if base.startswith("/") else
                        os.path.join(os.path.dirname(path), base))
    return chain


class _BaseKeyLoader(yaml.SafeLoader):
    """Safe loading that reads a tagged value as ``None`` instead of running it (the chain
    walk only needs ``_BASE_``)."""


_BaseKeyLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)


def _only_model_zoo_runs_code(config_file: str) -> bool:
    """Whether the files of ``config_file``'s chain that safe loading refuses are all
    detectron2's own model-zoo configs (True), or none is refused (False)."""
    from detectron2 import model_zoo

    zoo = os.path.realpath(os.path.join(os.path.dirname(model_zoo.__file__), "configs"))
    refused = []
    for path in _base_chain(config_file):
        try:
            with open(path, encoding="utf-8") as f:
                yaml.safe_load(f)
        except yaml.constructor.ConstructorError:
            refused.append(os.path.realpath(path))
        except (OSError, yaml.YAMLError):
            return False  # merge_from_file reports it
    return bool(refused) and all(path.startswith(zoo + os.sep) for path in refused)


def merge_config_list(cfg: CN, opts: Sequence[str]) -> None:
    """``cfg.merge_from_list`` (KEY VALUE pairs) with one-line errors.

    Raises:
        KeyError: a key is not a config key (the closest keys are named).
        ValueError: a value of the wrong type, or an odd number of items.
    """
    try:
        cfg.merge_from_list(list(opts))
    except (AssertionError, KeyError) as err:  # yacs asserts on command-line keys
        raise _unknown_key_error(cfg, err, "command line") from None


def _yaml_problem(err: yaml.YAMLError, config_file: str) -> str:
    """``file, line N: problem`` (PyYAML's own message spans several lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return f"{config_file}: {problem}"
    name = mark.name if mark.name and not mark.name.startswith("<") else config_file
    return f"{name}, line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _unknown_key_error(cfg: CN, err: BaseException, where: str) -> Exception:
    """The error of a yacs merge, in one line; an unknown key names the closest valid ones."""
    message = str(err.args[0]) if err.args else str(err)
    found = _NON_EXISTENT_KEY.search(message)
    if found is None:  # a renamed key, an odd-length list: yacs' message says it already
        return ValueError(f"{where}: {message}")
    key = found.group(1)
    head, _, leaf = key.rpartition(".")
    new = renamed_key(leaf)
    if new is not None:
        return KeyError(f"{where}: {key!r} was renamed {f'{head}.' if head else ''}{new}; write "
                        "that key instead.")
    # The deepest node the key does exist down to: its keys are what was meant, most likely.
    node, parts = cfg, key.split(".")
    depth = 0
    while depth < len(parts) - 1 and isinstance(node.get(parts[depth]), CN):
        node = node[parts[depth]]
        depth += 1
    prefix = ".".join(parts[:depth])
    hint = did_you_mean(".".join(parts[depth:]), dotted_keys(node),
                        prefix=f"{prefix}." if prefix else "", n=1)
    if not hint:
        hint = f" The keys under {prefix or 'the top level'} are {sorted(node)}."
    return KeyError(f"{where}: {key!r} is not a config key.{hint}")


def dotted_keys(node: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key below a config node, sub-nodes included, dotted (``TEACHER.WEIGHTS``).

    For a CfgNode and for a LazyConfig (as plain containers); the arguments of a LazyConfig's
    ``L(f)(...)`` calls are not followed: what ``f`` takes decides those.
    """
    keys = []
    for name, child in node.items():
        keys.append(f"{prefix}{name}")
        if isinstance(child, Mapping) and "_target_" not in child:
            keys += dotted_keys(child, f"{prefix}{name}.")
    return keys
