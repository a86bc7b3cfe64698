"""The removed segmentor ``HybridEncoderDecoder``: building it fails with the config to write.

mmseg's own segmentors train with hybrid forward once their backbone is a ``HybridBackbone``
and ``HybridKTHook`` is among the hooks (the hook wires the segmentor's ``loss``, see
``transfer_wiring``), so the subclass that did this wiring itself was removed. Its name stays
registered so that a config written with it stops at the model build with the new form, rather
than with mmengine's "not in the model registry" and no hint.
"""
from __future__ import annotations

from mmseg.registry import MODELS

REMOVED = ("HybridEncoderDecoder was removed: use the stock type='EncoderDecoder' with "
           "backbone=dict(type='HybridBackbone', student=..., teacher=..., balance=...) and "
           "custom_hooks=[dict(type='HybridKTHook')]; the segmentor's `balance` moves into that "
           "backbone (its `pretrained` may stay: HybridBackbone hands it to the student).")


@MODELS.register_module()
class HybridEncoderDecoder:
    """Refuses to be built: the segmentor was removed, the message gives its replacement."""

    def __init__(self, **config: object) -> None:
        raise ValueError(REMOVED)
