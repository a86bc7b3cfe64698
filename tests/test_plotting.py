"""Plotting inside a training process: no import of the experiments, the user's matplotlib
backend left as it was, no figure left in pyplot."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

# Run in a fresh interpreter: this one has matplotlib and the package imported already. SVG is
# a backend every matplotlib has and is not Agg, so a switch to Agg shows in get_backend().
DRAW = """
import json, sys
import matplotlib
before = matplotlib.get_backend()
from hybridkt_ext.plotting import PLOT_NAME, plot_alpha_and_path_losses
rows = [{"step": s, "hkt_alpha": 1.0 / s, "hkt_L1": 2.0, "hkt_L2": 1.0, "hkt_L3": 0.5}
        for s in (1, 2, 3)]
png = plot_alpha_and_path_losses({"hybrid": rows, "baseline": [{"step": 1, "hkt_L3": 0.7}]},
                                 sys.argv[1] + "/" + PLOT_NAME, title="t")
experiments = sorted(m for m in sys.modules if m.startswith("hybridkt_ext.reproduction"))
from hybridkt_ext.reproduction.figures import plot_alpha_per_run
plot_alpha_per_run({"hybrid": {0: rows, 1: rows}}, sys.argv[1] + "/seeds.png")
print(json.dumps({"before": before, "after": matplotlib.get_backend(), "png": str(png),
                  "experiments": experiments, "pyplot": "matplotlib.pyplot" in sys.modules}))
"""


def test_plotting_imports_no_experiment_and_keeps_the_processs_backend(tmp_path):
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run([sys.executable, "-c", DRAW, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["before"] == "svg" and seen["after"] == "svg"
    assert seen["experiments"] == []
    assert not seen["pyplot"]  # nothing in pyplot's global figure list, nothing to close
    for name in (seen["png"], tmp_path / "seeds.png"):
        with open(name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("adapter, framework", [("for_mmseg", "mmseg"),
                                                ("for_detectron2", "detectron2")])
def test_the_training_hooks_import_no_experiment(adapter, framework):
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    code = (f"import sys, hybridkt_ext.{adapter}; "
            "print(sorted(m for m in sys.modules if m.startswith('hybridkt_ext.reproduction')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == "[]"
