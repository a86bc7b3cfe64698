"""The detection reproduction's shortened schedules keep the configs' shape."""
from tests.for_detectron2.d2_helpers import CONFIGS, load_cfg

from hybridkt_ext.reproduction.detection_detectron2 import CONFIGS as RUN_CONFIGS  # noqa: E402
from hybridkt_ext.reproduction.detection_detectron2 import schedule as _schedule  # noqa: E402


def test_configs_schedule_is_used_as_is_and_shorter_ones_scale_the_lr_step():
    cfg = load_cfg(CONFIGS / RUN_CONFIGS["hybrid"])
    assert _schedule(None)[0] == [] and _schedule(cfg.SOLVER.MAX_ITER)[0] == []
    assert f"{cfg.SOLVER.MAX_ITER} iterations" in _schedule(None)[1]
    opts, described = _schedule(300)
    scaled = load_cfg(CONFIGS / RUN_CONFIGS["hybrid"], opts)
    fraction = cfg.SOLVER.STEPS[0] / cfg.SOLVER.MAX_ITER
    assert scaled.SOLVER.MAX_ITER == 300
    assert scaled.SOLVER.STEPS == (round(300 * fraction),)
    assert scaled.SOLVER.WARMUP_ITERS <= 30
    assert "300 iterations" in described and f"lr {cfg.SOLVER.BASE_LR:g}" in described
    for mode, name in RUN_CONFIGS.items():  # every mode the experiment runs exists
        assert (CONFIGS / name).is_file(), mode
