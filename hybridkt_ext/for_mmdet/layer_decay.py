"""mmdet's layer-decay optimiser constructor (ConvNeXt), seeing through a ``HybridBackbone``.

Registered under the stock name (``force=True``), so a ConvNeXt config's ``optim_wrapper``
keeps working after the backbone swap; see ``hybridkt_ext.for_openmmlab.layer_decay``.
"""
from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS

from hybridkt_ext.for_openmmlab.layer_decay import with_hybrid_view

HybridLearningRateDecayOptimizerConstructor = with_hybrid_view(
    LearningRateDecayOptimizerConstructor)
OPTIM_WRAPPER_CONSTRUCTORS.register_module(name="LearningRateDecayOptimizerConstructor",
                                           module=HybridLearningRateDecayOptimizerConstructor,
                                           force=True)
