"""The removed meta-architecture name: a config naming it stops with the YAML to write."""
import pytest

from tests.for_detectron2.d2_helpers import SYNTHETIC_CONFIGS, TINY, load_cfg, train_net_module


def test_a_config_naming_the_removed_meta_architecture_is_refused_with_the_new_form(tmp_path):
    config = next(p for p in SYNTHETIC_CONFIGS if p.name == "hybridkt-r18-fpn-synthetic.yaml")
    # The line of the earlier Base-HybridKT-RCNN-FPN.yaml.
    cfg = load_cfg(config, TINY + ["MODEL.META_ARCHITECTURE", "HybridRCNN",
                                   "OUTPUT_DIR", str(tmp_path)])
    with pytest.raises(ValueError) as info:
        train_net_module().Trainer(cfg)  # builds the model, as tools/train_net.py does
    message = str(info.value)
    assert "\n" not in message
    for new_form in ('"HybridRCNN" was removed', 'META_ARCHITECTURE: "GeneralizedRCNN"',
                     'BACKBONE.NAME: "build_hybridkt_fpn_backbone"', "MODEL.HYBRIDKT",
                     "HybridKTTrainer (tools/train_net.py)"):
        assert new_form in message
