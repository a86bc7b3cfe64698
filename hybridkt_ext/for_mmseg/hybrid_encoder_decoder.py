"""``HybridEncoderDecoder``: mmseg's EncoderDecoder with its loss wired to the transfer step.

Kept for the configs written with it. Any segmentor trains with hybrid forward once its
backbone is a ``HybridBackbone`` and ``HybridKTHook`` is among its hooks (the hook wires the
segmentor's own ``loss``, see ``transfer_wiring``); this class does the wiring itself when it is
built, and passes its ``balance`` on to the backbone and its data preprocessor's pixel
convention on as the student's.
"""
from __future__ import annotations

import copy
import dataclasses

from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, OptMultiConfig

from .hybrid_backbone import HybridBackbone
from .teacher_config import convention_from_preprocessor
from .transfer_wiring import install_transfer_step


@MODELS.register_module()
class HybridEncoderDecoder(EncoderDecoder):
    """EncoderDecoder with hybrid-forward training (backbone must be ``HybridBackbone``).

    Args:
        balance: ``dict(mode='dynamic'|'fixed', fixed_alpha=1.0, sync_across_ranks=True)``,
            given to the HybridBackbone (which may carry it itself instead).
        Others: as mmseg's EncoderDecoder.
    """

    def __init__(self, backbone: ConfigType, decode_head: ConfigType,
                 neck: OptConfigType = None, auxiliary_head: OptConfigType = None,
                 train_cfg: OptConfigType = None, test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None, pretrained: str | None = None,
                 init_cfg: OptMultiConfig = None, balance: dict | None = None) -> None:
        if backbone.get("type") not in ("HybridBackbone", HybridBackbone):
            raise ValueError("HybridEncoderDecoder needs backbone=dict(type='HybridBackbone', "
                             f"student=..., teacher=...), got type={backbone.get('type')!r}.")
        backbone = copy.deepcopy(backbone)
        if pretrained is not None:
            # EncoderDecoder would set it on the wrapper; it belongs to the student.
            backbone["student"]["pretrained"] = pretrained
            pretrained = None
        if balance is not None:
            if backbone.get("balance") is not None:
                raise ValueError("HybridEncoderDecoder: `balance` is set on both the segmentor "
                                 "and its HybridBackbone; keep one.")
            backbone["balance"] = balance
        if backbone.get("student_input") is None:
            convention = convention_from_preprocessor(data_preprocessor)
            backbone["student_input"] = None if convention is None \
                else dataclasses.asdict(convention)
        super().__init__(backbone=backbone, decode_head=decode_head, neck=neck,
                         auxiliary_head=auxiliary_head, train_cfg=train_cfg, test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, pretrained=None,
                         init_cfg=init_cfg)
        install_transfer_step(self)
