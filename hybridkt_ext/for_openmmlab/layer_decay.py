"""Layer-wise learning-rate decay through a ``HybridBackbone``: the stock constructors, unchanged.

mmseg's and mmdet's ``LearningRateDecayOptimizerConstructor`` (the ConvNeXt, BEiT and MAE
recipes) pick each parameter's layer from the backbone's class name and from names such as
``backbone.stages.2.4.weight``; behind a ``HybridBackbone`` they saw the wrapper's class and
``backbone.engine.student.model.stages...`` and raised a bare ``NotImplementedError``.

``with_hybrid_view`` subclasses a library's stock constructor so that, when the model's
backbone is a hybrid one, the stock rules run on a view of the model in which

* ``backbone`` is the plain student (its class name is the student's), and
* the student's parameters are named ``backbone.<name in the plain student>``, as in the
  original config, so each gets exactly the layer and rate it has without hybridkt;
* the teacher has no trainable parameters, so it is in no group (the stock rule skips them);
* the 1x1-conv adapters (and a transfer mode's regressors) keep their own names, which match
  no backbone layer: the stock rule gives them the rate of the heads, the base lr. They are
  new layers trained from scratch like the heads, not pretrained layers to preserve, and an
  adapter sits between two stages, so no single stage's decay would be its own.

The adapters register the subclass under the stock name (``LearningRateDecayOptimizerConstructor``),
so a stock ``optim_wrapper`` keeps working after the backbone swap; for any other model it is
the stock constructor.
"""
from __future__ import annotations

from typing import Iterator

from torch import nn

from .hybrid_backbone import STUDENT_PREFIX, OpenMMLabHybridBackbone


class HybridBackboneView:
    """What the stock layer-decay rules read of a model, with the hybrid backbone seen through.

    Only the two things those rules use are offered: ``backbone`` (for its class name) and
    ``named_parameters()``.
    """

    def __init__(self, model: nn.Module) -> None:
        self._model = model
        self.backbone = model.backbone.student

    def named_parameters(self, *args, **kwargs) -> Iterator[tuple[str, nn.Parameter]]:
        student_prefix = "backbone." + STUDENT_PREFIX
        for name, param in self._model.named_parameters(*args, **kwargs):
            if name.startswith(student_prefix):
                name = "backbone." + name[len(student_prefix):]
            yield name, param


def with_hybrid_view(stock: type) -> type:
    """A subclass of the library's stock layer-decay constructor ``stock`` that sees through a
    ``HybridBackbone`` (see the module docstring)."""

    class HybridLearningRateDecayOptimizerConstructor(stock):
        __doc__ = (f"{stock.__module__}.{stock.__name__}, with a HybridBackbone's student "
                   "seen as the plain backbone (hybridkt_ext.for_openmmlab.layer_decay).")

        def add_params(self, params, module, **kwargs):
            if isinstance(getattr(module, "backbone", None), OpenMMLabHybridBackbone):
                module = HybridBackboneView(module)
            super().add_params(params, module, **kwargs)

    HybridLearningRateDecayOptimizerConstructor.__qualname__ = \
        HybridLearningRateDecayOptimizerConstructor.__name__
    return HybridLearningRateDecayOptimizerConstructor
