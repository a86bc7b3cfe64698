"""The transfer modes: one registry entry per way of training a student, read by every adapter.

A mode says whether a teacher is built, whether the paper's three paths run, and, for a
feature-mimicking baseline, how its loss is built from the engine and which options it takes.
Every adapter reads its options under the mode's name: ``HybridBackbone(fitnet=dict(...))`` in
mmseg/mmdet, ``hybrid_bottom_up(fitnet=dict(...))`` in a LazyConfig, and the detectron2 YAML
keys the mode declares (``MODEL.HYBRIDKT.FITNET_WEIGHT``). So a new baseline is one
``register_transfer_mode`` call (as torchdistill registers a loss), not an edit in five places.

Built-in modes:

* ``hybrid``: the paper's three paths, balanced (L1 student-first, L2 teacher-first, L3 student);
* ``hybrid_alternate``: the student path every step and one hybrid path, student-first on even
  iterations and teacher-first on odd ones (about two thirds of a hybrid step's cost);
* ``none``: the student alone (no teacher is built);
* ``fitnet`` / ``at``: the student path plus FitNet's / attention transfer's mimicking loss on
  the teacher's stage features;
* ``ft`` / ``ab`` / ``cwd``: the same with factor transfer's, activation boundaries' or
  channel-wise distillation's loss (the paper's Table 1 baselines FT and AB; CWD for dense
  prediction).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from torch import nn

from .activation_boundary import ActivationBoundaryLoss
from .channel_wise_distillation import ChannelWiseDivergenceLoss
from .closest_names import did_you_mean, keyword_names, refuse_unknown_keys
from .factor_transfer import FactorTransferLoss
from .feature_transfer import AttentionTransferLoss, FitNetLoss

if TYPE_CHECKING:  # the engine imports nothing from here; only the loss builders take it
    from .hybrid_forward import HybridForward


@dataclass(frozen=True)
class YamlOption:
    """A detectron2 ``MODEL.HYBRIDKT.<key>`` carrying one option of a mode's loss.

    Attributes:
        key: the YAML key under ``MODEL.HYBRIDKT`` (``FITNET_WEIGHT``).
        option: the loss option it sets (``weight``).
        default: its value in a fresh config (yacs needs one, of the right type).
        comment: what it means, for the config's documentation.
        empty_is_default: an empty list means "the loss's own default" (yacs has no None).
    """

    key: str
    option: str
    default: Any
    comment: str
    empty_is_default: bool = False


@dataclass(frozen=True)
class TransferMode:
    """One way of training the student.

    Attributes:
        name: what configs write (``transfer='fitnet'``, ``TRANSFER: fitnet``).
        summary: one line for messages and docs.
        needs_teacher: a teacher is built and frozen.
        hybrid_paths: the three paths run and are balanced (adapters and a path plan are
            built); otherwise only the student path runs.
        alternate: of the two hybrid paths only one runs per step, by iteration parity
            (``transfer_step.alternate_path``); needs ``hybrid_paths``.
        options: the options the mode's loss takes (``dict(weight=..., stages=...)``).
        build_loss: ``(engine, options) -> nn.Module`` for a mimicking loss, called on the
            student's and the teacher's stage features; None when the mode has none.
        yaml_options: the detectron2 keys of ``options``.
    """

    name: str
    summary: str
    needs_teacher: bool
    hybrid_paths: bool = False
    alternate: bool = False
    options: tuple[str, ...] = ()
    build_loss: Callable[["HybridForward", dict], nn.Module] | None = None
    yaml_options: tuple[YamlOption, ...] = field(default=())

    def loss(self, engine: "HybridForward", options: Mapping | None = None,
             where: str = "transfer") -> nn.Module | None:
        """The mode's mimicking loss for ``engine`` (None for a mode without one).

        Its parameters (FitNet's regressors) train with the student: register the returned
        module on the adapter's backbone.

        Raises:
            ValueError: an option the mode does not take, naming the closest.
        """
        options = dict(options or {})
        refuse_unknown_keys(options, self.options, f"{where}.{self.name}")
        return None if self.build_loss is None else self.build_loss(engine, options)


_MODES: dict[str, TransferMode] = {}


def register_transfer_mode(mode: TransferMode) -> TransferMode:
    """Adds a mode every adapter then accepts; returns it.

    Raises:
        ValueError: a mode of that name exists already (a second registration would change
            what existing configs mean).
    """
    if mode.name in _MODES:
        raise ValueError(f"a transfer mode named {mode.name!r} is registered already.")
    if mode.hybrid_paths and not mode.needs_teacher:
        raise ValueError(f"transfer mode {mode.name!r}: hybrid paths need a teacher.")
    if mode.alternate and not mode.hybrid_paths:
        raise ValueError(f"transfer mode {mode.name!r}: alternating needs hybrid paths.")
    _MODES[mode.name] = mode
    return mode


def transfer_mode_names() -> tuple[str, ...]:
    """The registered modes' names, in registration order."""
    return tuple(_MODES)


def transfer_mode(name: object, where: str = "transfer") -> TransferMode:
    """The registered mode called ``name``.

    Raises:
        ValueError: no mode has that name (the message names the closest and all).
    """
    if isinstance(name, str) and name in _MODES:
        return _MODES[name]
    hint = did_you_mean(name, _MODES, n=1) if isinstance(name, str) else ""
    raise ValueError(f"{where}={name!r} is not a transfer mode.{hint} Modes: "
                     f"{', '.join(_MODES)}.")


def mode_options(given: Mapping[str, Any], selected: TransferMode,
                 where: str = "transfer") -> dict:
    """The options of ``selected`` from an adapter's keyword arguments keyed by mode name.

    Args:
        given: what the user wrote under mode names (``{'fitnet': dict(weight=2.0)}``); keys
            that are no mode's name must have been refused before.
        selected: the mode the run trains with.
        where: the adapter, as messages start.

    Raises:
        ValueError: options given for a mode the run does not use (they would be ignored).
    """
    ignored = sorted(k for k, v in given.items() if v is not None and k != selected.name)
    if ignored:
        raise ValueError(f"{where}: {ignored[0]}=... sets options of transfer mode "
                         f"{ignored[0]!r}, but transfer={selected.name!r}: they would be "
                         f"ignored. Set transfer={ignored[0]!r} or drop them.")
    return dict(given.get(selected.name) or {})


def _with_channels(loss_class: type[nn.Module]
                   ) -> Callable[["HybridForward", dict], nn.Module]:
    """A ``build_loss`` for a loss taking the student's and teacher's stage channels first."""
    def build(engine: "HybridForward", options: dict) -> nn.Module:
        return loss_class([s.channels for s in engine.student.stage_specs],
                          [s.channels for s in engine.teacher.stage_specs], **options)
    return build


register_transfer_mode(TransferMode(
    "hybrid", "the paper's three paths, dynamically (or fixed) balanced", needs_teacher=True,
    hybrid_paths=True))
register_transfer_mode(TransferMode("none", "the student alone", needs_teacher=False))
register_transfer_mode(TransferMode(
    "fitnet", "FitNet hints (Romero et al. 2015) on the teacher's stages", needs_teacher=True,
    options=tuple(keyword_names(FitNetLoss)[2:]), build_loss=_with_channels(FitNetLoss), yaml_options=(
        YamlOption("FITNET_WEIGHT", "weight", 1.0,
                   "Weight of the FitNet hint loss; tune per setting as the paper did."),
        YamlOption("FITNET_STAGES", "stages", [],
                   "Student stage indices of the hint; empty: the middle stage "
                   "(num_stages // 2).", empty_is_default=True))))
register_transfer_mode(TransferMode(
    "at", "attention transfer (Zagoruyko & Komodakis 2017) on the teacher's stages",
    needs_teacher=True, options=tuple(keyword_names(AttentionTransferLoss)),
    build_loss=lambda engine, options: AttentionTransferLoss(**options), yaml_options=(
        YamlOption("AT_BETA", "beta", 1000.0, "beta of attention transfer; 1000 is the AT "
                   "paper's value."),
        YamlOption("AT_STAGES", "stages", [], "Student stage indices used by AT; empty: all "
                   "stages.", empty_is_default=True))))
register_transfer_mode(TransferMode(
    "hybrid_alternate", "the student path and one hybrid path per step, alternating",
    needs_teacher=True, hybrid_paths=True, alternate=True))
register_transfer_mode(TransferMode(
    "ft", "factor transfer (Kim et al. 2018) on the teacher's stages", needs_teacher=True,
    options=tuple(keyword_names(FactorTransferLoss)[2:]),
    build_loss=_with_channels(FactorTransferLoss), yaml_options=(
        YamlOption("FT_BETA", "beta", 1000.0, "Weight of the factor-transfer term; tune per "
                   "setting."),
        YamlOption("FT_RATE", "rate", 0.5, "Paraphrase rate: factor channels / teacher "
                   "channels (0.5 in the FT paper)."),
        YamlOption("FT_RECONSTRUCTION_WEIGHT", "reconstruction_weight", 1.0, "Weight of the "
                   "paraphraser's reconstruction loss (it trains online, from the start)."),
        YamlOption("FT_STAGES", "stages", [], "Student stage indices of FT; empty: the last "
                   "stage.", empty_is_default=True))))
register_transfer_mode(TransferMode(
    "ab", "activation-boundary transfer (Heo et al. 2019) on the teacher's stages",
    needs_teacher=True, options=tuple(keyword_names(ActivationBoundaryLoss)[2:]),
    build_loss=_with_channels(ActivationBoundaryLoss), yaml_options=(
        YamlOption("AB_WEIGHT", "weight", 1.0, "Weight of the activation-boundary loss."),
        YamlOption("AB_MARGIN", "margin", 1.0, "Margin m of the boundary loss (1 in the AB "
                   "paper)."),
        YamlOption("AB_STAGES", "stages", [], "Student stage indices of AB; empty: the last "
                   "stage.", empty_is_default=True))))
register_transfer_mode(TransferMode(
    "cwd", "channel-wise distillation (Shu et al. 2021) on the teacher's stages",
    needs_teacher=True, options=tuple(keyword_names(ChannelWiseDivergenceLoss)[2:]),
    build_loss=_with_channels(ChannelWiseDivergenceLoss), yaml_options=(
        YamlOption("CWD_WEIGHT", "weight", 3.0, "Weight of the channel-wise divergence (3.0 "
                   "as in MMRazor's CWD configs)."),
        YamlOption("CWD_TAU", "tau", 1.0, "Temperature of the per-channel spatial softmax."),
        YamlOption("CWD_STAGES", "stages", [], "Student stage indices of CWD; empty: the last "
                   "stage.", empty_is_default=True))))
