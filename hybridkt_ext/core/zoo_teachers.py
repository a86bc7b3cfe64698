"""Teacher networks named by model zoo: ``torchvision.<name>`` and ``timm.<name>``.

Both are built without weights (no download: the weights come from the teacher's checkpoint
file) and split into stages by the core: torchvision models by ``split_backbone``, timm models
from their own ``FeatureInfo``. Every adapter accepts these names for its teacher.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .closest_names import did_you_mean
from .plain_vit_stages import VIT_STAGES_ATTRIBUTE
from .splitters import split_backbone
from .stages import StagedBackbone

ZOO_PREFIXES = ("torchvision.", "timm.")


def is_zoo_name(kind: object) -> bool:
    """Whether ``kind`` names a torchvision or timm model (``'torchvision.resnet50'``)."""
    return isinstance(kind, str) and kind.startswith(ZOO_PREFIXES)


def _constructor_error(kind: str, err: Exception, where: str) -> ValueError:
    return ValueError(f"{where}={kind!r}: building it failed: {err}. Every teacher key besides "
                      f"the loading keys is passed to the {kind} constructor.")


def build_zoo_model(kind: str, kwargs: dict[str, Any] | None = None,
                    where: str = "teacher.type") -> nn.Module:
    """Builds ``torchvision.<name>`` or ``timm.<name>`` with random weights (no download).

    ``where`` is the config key that named the model, for messages.

    Raises:
        ValueError: an unknown name (close names suggested), a weights/pretrained argument
            (weights come from the checkpoint), a constructor argument the model rejects, or
            ``vit_stages`` (block groups of a plain ViT, see ``plain_vit_stages``) for a
            model that is no plain ViT.
    """
    kwargs = dict(kwargs or {})
    # Not a constructor argument: how a plain ViT is cut (plain_vit_stages.block_groups).
    vit_stages = kwargs.pop("vit_stages", None)
    model = _build(kind, kwargs, where)
    if vit_stages is not None:
        if type(model).__name__ != "VisionTransformer":  # timm's and torchvision's class
            raise ValueError(f"{where}={kind!r}: vit_stages applies to plain ViTs only; drop it.")
        setattr(model, VIT_STAGES_ATTRIBUTE, vit_stages)
    return model


def _build(kind: str, kwargs: dict[str, Any], where: str) -> nn.Module:
    for key in ("weights", "pretrained", "weights_backbone"):
        if kwargs.get(key):
            raise ValueError(f"{where}={kind!r}: {key}={kwargs[key]!r} would download weights; "
                             "the teacher's weights come from its checkpoint file.")
        kwargs.pop(key, None)
    if kind.startswith("timm."):
        from .timm_backbones import create_timm_model

        try:
            return create_timm_model(kind[len("timm."):], **kwargs)
        except ValueError as err:
            raise ValueError(f"{where}={kind!r}: {err}") from None
    import torchvision

    name = kind[len("torchvision."):]
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ValueError(f"{where}={kind!r}: torchvision has no classification model {name!r}."
                         f"{did_you_mean(name, known, 'torchvision.')} See "
                         "torchvision.models.list_models() for the names.")
    try:
        return torchvision.models.get_model(name, weights=None, **kwargs)
    except TypeError as err:
        raise _constructor_error(kind, err, where) from err


def split_zoo_model(kind: str, model: nn.Module) -> StagedBackbone:
    """The stages of a model built by ``build_zoo_model(kind)``."""
    if kind.startswith("timm."):
        from .timm_backbones import split_timm_model

        return split_timm_model(model)
    return split_backbone(model)
