"""detectron2's own model-zoo YAMLs may run their eval tags; no other file may run code."""
from __future__ import annotations

import pytest

import tests.for_detectron2.d2_helpers  # noqa: F401  (skips the module without detectron2)
from detectron2 import model_zoo  # noqa: E402

from hybridkt_ext.for_detectron2.config import load_hybridkt_config  # noqa: E402

RETINANET = "COCO-Detection/retinanet_R_50_FPN_1x.yaml"  # _BASE_: Base-RetinaNet.yaml (eval tag)


def test_a_stock_retinanet_config_loads_with_its_computed_anchor_sizes(tmp_path):
    leaf = tmp_path / "mine.yaml"
    leaf.write_text(f"_BASE_: {model_zoo.get_config_file(RETINANET)}\nSOLVER:\n  MAX_ITER: 7\n")
    for path in (model_zoo.get_config_file(RETINANET), str(leaf)):
        cfg = load_hybridkt_config(path, [])
        sizes = cfg.MODEL.ANCHOR_GENERATOR.SIZES
        assert [s[0] for s in sizes] == [32, 64, 128, 256, 512]
        assert sizes[0][1] == pytest.approx(32 * 2 ** (1 / 3))
    assert cfg.SOLVER.MAX_ITER == 7


def test_a_code_tag_outside_the_model_zoo_still_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    base = tmp_path / "base.yaml"
    base.write_text(f'_BASE_: {model_zoo.get_config_file(RETINANET)}\n'
                    f'MODEL:\n  META_ARCHITECTURE: !!python/object/apply:os.system '
                    f'["touch {marker}"]\n')
    leaf = tmp_path / "leaf.yaml"
    leaf.write_text("_BASE_: base.yaml\n")
    with pytest.raises(ValueError, match="not a valid YAML config: .*base.yaml.*python/object"):
        load_hybridkt_config(str(leaf), [])
    assert not marker.exists()
