"""mmseg's layer-decay optimiser constructors, seeing through a ``HybridBackbone``.

Registered under the stock names (``force=True``), so the ConvNeXt, BEiT and MAE configs'
``optim_wrapper`` keeps working after the backbone swap; see
``hybridkt_ext.for_openmmlab.layer_decay`` for which rate the student, teacher and adapters get.
"""
from mmseg.engine.optimizers import (LayerDecayOptimizerConstructor,
                                     LearningRateDecayOptimizerConstructor)
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from hybridkt_ext.for_openmmlab.layer_decay import with_hybrid_view

HybridLearningRateDecayOptimizerConstructor = with_hybrid_view(
    LearningRateDecayOptimizerConstructor)
# The deprecated BEiT name, which mmseg still accepts.
HybridLayerDecayOptimizerConstructor = with_hybrid_view(LayerDecayOptimizerConstructor)
for _name, _constructor in (
        ("LearningRateDecayOptimizerConstructor", HybridLearningRateDecayOptimizerConstructor),
        ("LayerDecayOptimizerConstructor", HybridLayerDecayOptimizerConstructor)):
    OPTIM_WRAPPER_CONSTRUCTORS.register_module(name=_name, module=_constructor, force=True)
