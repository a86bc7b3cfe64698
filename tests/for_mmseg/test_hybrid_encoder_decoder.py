"""The removed segmentor name: a config written with it stops with the new form in one line."""
from __future__ import annotations

import pytest

pytest.importorskip("mmseg.models", reason="MMSegmentation is not installed")

from .conftest import HYBRID_CONFIG  # noqa: E402

# The form of the earlier configs: the segmentor subclass, `balance` beside the backbone.
OLD_FORM = f"""
_base_ = [{str(HYBRID_CONFIG)!r}]
model = dict(type='HybridEncoderDecoder', balance=dict(mode='fixed', fixed_alpha=0.5))
"""


def test_a_config_naming_the_removed_segmentor_is_refused_with_the_new_form(tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    path = tmp_path / "old_form.py"
    path.write_text(OLD_FORM)
    cfg = Config.fromfile(str(path))
    cfg.work_dir = str(tmp_path / "work")
    cfg.visualizer.name = f"vis_{id(tmp_path)}"  # named singletons: one per test
    with pytest.raises(ValueError) as info:
        Runner.from_cfg(cfg)  # builds the model, as tools/train_seg.py does
    message = str(info.value)
    assert "\n" not in message
    for new_form in ("HybridEncoderDecoder was removed", "type='EncoderDecoder'",
                     "backbone=dict(type='HybridBackbone', student=..., teacher=..., balance=...)",
                     "custom_hooks=[dict(type='HybridKTHook')]", "`balance` moves into",
                     "HybridBackbone hands it to the student"):
        assert new_form in message
