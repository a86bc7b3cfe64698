"""`import hybridkt_ext` must not import detectron2, mmseg or mmdet (they are optional adapters)."""
import subprocess
import sys


def test_importing_the_package_imports_no_framework():
    code = ("import sys, hybridkt_ext, hybridkt_ext.for_classification; "
            "bad = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'detectron2', 'mmseg', 'mmdet', 'mmcv', 'mmengine'}); print(bad); "
            "sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
