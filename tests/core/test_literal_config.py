"""A config stored in a checkpoint is read as literals, never executed."""
from __future__ import annotations

import pytest

from hybridkt_ext.core.literal_config import UnreadableStoredConfigError, read_literal_config

# What mmengine's Config.pretty_text writes (shape of a real mmseg config's dump).
PRETTY_TEXT = """\
crop_size = (
    512,
    1024,
)
data_preprocessor = dict(
    bgr_to_rgb=True,
    mean=[
        123.675,
        116.28,
        103.53,
    ],
    pad_val=0,
    seg_pad_val=255,
    size=(
        512,
        1024,
    ),
    type='SegDataPreProcessor')
model = dict(
    backbone=dict(
        contract_dilation=True,
        depth=18,
        dilations=(
            1,
            1,
            2,
            4,
        ),
        norm_cfg=dict(requires_grad=True, type='SyncBN'),
        norm_eval=False,
        out_indices=(0, 1, 2, 3),
        style='pytorch',
        type='ResNetV1c'),
    test_cfg=dict(mode='whole'),
    train_cfg=dict(),
    type='EncoderDecoder')
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_block': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(begin=0, by_epoch=False, end=80000, eta_min=1e-4, power=0.9, type='PolyLR'),
]
load_from = None
resume = False
work_dir = './work_dirs/x'
margin = -1.5
"""


def test_an_mmengine_dump_reads_back_as_plain_values():
    cfg = read_literal_config(PRETTY_TEXT)
    assert cfg["crop_size"] == (512, 1024)
    assert cfg["model"]["backbone"]["dilations"] == (1, 1, 2, 4)
    assert cfg["model"]["backbone"]["norm_cfg"] == {"requires_grad": True, "type": "SyncBN"}
    assert cfg["model"]["train_cfg"] == {}
    assert cfg["data_preprocessor"]["mean"] == [123.675, 116.28, 103.53]
    assert cfg["optim_wrapper"]["paramwise_cfg"]["custom_keys"] == {
        "pos_block": {"decay_mult": 0.0}}
    assert cfg["param_scheduler"][0]["eta_min"] == 1e-4
    assert cfg["load_from"] is None and cfg["resume"] is False and cfg["margin"] == -1.5


@pytest.mark.parametrize("text, fragment", [
    ("_x = __import__('os').system('touch {marker}')\nmodel = dict()", "line 1: `__import__("),
    ("import os\nmodel = dict()", "line 1: `import os` is not an assignment"),
    ("model = dict(type=os.system)", "`os.system` is not a literal"),
    ("model = dict(**other)", "`dict(**other)` is not a literal"),
    ("a = [*range(3)]", "`[*range(3)]` is not a literal"),
    ("model = eval('1')", "`eval('1')` is not a literal"),
    ("model = {**x}", "`{**x}` is not a literal"),
    ("a = 2 ** 100000", "`2 ** 100000` is not a literal"),
    ("a = lambda: 0", "is not a literal"),
    ("a.b = 1", "`a.b = 1` is not an assignment of a literal to a name"),
    ("a = b = 1", "is not an assignment of a literal to a name"),
    ("def f():\n    pass", "is not an assignment"),
    ("model = dict(", "not Python (SyntaxError"),
    ("a = " + "[" * 100000 + "]" * 100000, ""),  # too deep for the parser or the walk
])
def test_anything_but_literals_is_refused_without_running_it(tmp_path, text, fragment):
    marker = tmp_path / "PWNED"
    with pytest.raises(UnreadableStoredConfigError) as info:
        read_literal_config(text.replace("{marker}", str(marker)))
    assert fragment in str(info.value)
    assert not marker.exists()
