"""tools/train_net.py as a user runs it: train a synthetic config, then --eval-only."""
import json
import os
import subprocess
import sys

from tests.for_detectron2.d2_helpers import CONFIGS, REPO, TINY

SETUPS = ("MR2_Reasonable", "MR2_Reasonable_small", "MR2_Reasonable_occ=heavy", "MR2_All")


def _train_net(*args, env):
    done = subprocess.run([sys.executable, str(REPO / "tools" / "train_net.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_train_four_iterations_then_evaluate_only(tmp_path):
    env = dict(os.environ, HYBRIDKT_DATA=str(tmp_path / "data"), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO))
    config = str(CONFIGS / "hybridkt-mobilenetv1-fpn-synthetic.yaml")
    out = tmp_path / "out"
    _train_net("--config-file", config, "SOLVER.MAX_ITER", "4", "OUTPUT_DIR", str(out), *TINY,
               env=env)
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    trained = [r for r in rows if "hkt_alpha" in r]
    assert trained and trained[-1]["iteration"] == 3
    assert all(v > 0 for r in trained for v in (r["hkt_alpha"], r["hkt_L1"], r["hkt_L2"]))

    log = _train_net("--config-file", config, "--eval-only", "MODEL.WEIGHTS",
                     str(out / "model_final.pth"), "OUTPUT_DIR", str(tmp_path / "eval"), *TINY,
                     env=env)
    header = next(line for line in log.splitlines() if "copypaste: MR2_" in line)
    assert header.split("copypaste: ")[1].split(",") == list(SETUPS)
    values = log.splitlines()[log.splitlines().index(header) + 1].split("copypaste: ")[1]
    assert all(0.0 <= float(v) <= 100.0 for v in values.split(","))
