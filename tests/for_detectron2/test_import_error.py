"""Importing the adapter without detectron2 fails with one clear line (runs without it)."""
import subprocess
import sys


def test_import_without_detectron2_says_what_to_install():
    code = ("import sys; sys.modules['detectron2'] = None\n"
            "try:\n    import hybridkt_ext.for_detectron2\n"
            "except ImportError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "needs detectron2" in out.stdout and "install" in out.stdout
    assert len(out.stdout.strip().splitlines()) == 1
