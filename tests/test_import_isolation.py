"""`import hybridkt_ext` must not import detectron2, mmseg or mmdet (they are optional adapters)."""
import subprocess
import sys

import pytest


def test_importing_the_package_imports_no_framework():
    code = ("import sys, hybridkt_ext, hybridkt_ext.for_classification; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'detectron2', 'mmseg', 'mmdet', 'mmcv', 'mmengine'}); print(bad); "
            "sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_mmdet_adapter_needs_no_mmseg():
    # An mmdet user installs the OpenMMLab layer and mmdet, not mmsegmentation.
    pytest.importorskip("mmdet.models", reason="MMDetection is not installed")
    code = ("import sys, hybridkt_ext.for_mmdet; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'mmseg' "
            "or m.startswith('hybridkt_ext.for_mmseg')); print(bad); "
            "from mmdet.registry import HOOKS; assert HOOKS.get('HybridKTHook') is not None; "
            "sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
