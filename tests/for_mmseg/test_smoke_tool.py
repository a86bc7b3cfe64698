"""tools/smoke.py on stock mmseg configs the project does not ship (mmseg's own Runner)."""
from __future__ import annotations

from tests.smoke_tool_runs import check_passed, run_smoke

PSPNET = "mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py"


def test_a_stock_config_converts_trains_and_exports(tmp_path):
    done = run_smoke(tmp_path, PSPNET, "--teacher", "timm.resnet18", "--iters", "2",
                     "--size", "64", "64")
    out = check_passed(done, 2)
    assert "pretrained open-mmlab://resnet18_v1c dropped (no downloads)" in out


def test_a_plain_config_without_a_teacher_says_how_to_name_one(tmp_path):
    done = run_smoke(tmp_path, PSPNET)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("hybridkt-smoke: SmokeConfigError:")
    assert "--teacher torchvision.resnet18" in done.stderr
