"""Two-process hybrid training through mmengine's own launcher, on CPU with gloo.

``torchrun --nproc_per_node 2 tools/train_seg.py <config> --launcher pytorch`` trains the
reproducible synthetic config (frozen student BN, GroupNorm heads, no dropout, no flip; see
the config's comments for why) as 2 processes x batch 1; ``tools/train_seg.py`` trains it as
1 process x batch 2. With the same seeded InfiniteSampler both see the same image pairs at
every iteration (rank r takes the permutation's positions r, r+2, ...). A hook written by
this test records every rank's loss dict at every iteration.

What this proves: DDP wraps the model with find_unused_parameters=False and trains (the
frozen teacher is not a DDP parameter, every trainable one gets a gradient); alpha is
computed from rank-averaged losses, so it is bit-identical on both ranks although the ranks'
own losses differ; and the two set-ups compute the same losses, which after the first
iteration also checks that DDP's gradient averaging of alpha*(L1+L2)+L3 gives batch 2's
update.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mmseg.models", reason="MMSegmentation (with mmcv ops) is not installed")

from tests.conftest import REPO  # noqa: E402
TRAIN_SEG = REPO / "tools" / "train_seg.py"
REPRODUCIBLE_CONFIG = REPO / "configs" / "mmseg" / (
    "deeplabv3_r18w8-d8-frozenbn_hybrid-r18w16-d8_2xb1-400_synthetic-cityscapes-64x128-"
    "reproducible.py")
ITERS = 3
SYNTHETIC = dict(style="cityscapes", num_train=8, num_val=4, size=(64, 128), seed=0)

RECORDER_MODULE = "per_rank_loss_recorder"
RECORDER_SOURCE = textwrap.dedent('''
    """Writes each rank's wrapper facts and every iteration's loss dict to rank<k>.jsonl."""
    import json
    import os

    from mmengine.hooks import Hook
    from mmseg.registry import HOOKS


    @HOOKS.register_module(force=True)
    class PerRankLossRecorder(Hook):
        priority = 'LOWEST'

        def before_train(self, runner):
            model = runner.model
            self._write(runner, dict(wrapper=type(model).__name__, world_size=runner.world_size,
                                     find_unused_parameters=getattr(
                                         model, 'find_unused_parameters', None)))

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            row = {k: float(v) for k, v in outputs.items()}
            self._write(runner, dict(iter=runner.iter + 1, **row))

        @staticmethod
        def _write(runner, row):
            path = os.path.join(runner.work_dir, f'rank{runner.rank}.jsonl')
            with open(path, 'a') as f:
                f.write(json.dumps(row) + '\\n')
''')


def _write_config(tmp: Path, data_root: Path) -> Path:
    data = dict(data_root=str(data_root), synthetic=dict(num_train=SYNTHETIC["num_train"],
                                                         num_val=SYNTHETIC["num_val"]))
    config = tmp / "distributed_cfg.py"
    config.write_text(textwrap.dedent(f"""
        _base_ = {str(REPRODUCIBLE_CONFIG)!r}
        custom_imports = dict(imports=['hybridkt_ext.for_mmseg', {RECORDER_MODULE!r}],
                              allow_failed_imports=False)
        custom_hooks = [dict(type='HybridKTHook'), dict(type='PerRankLossRecorder')]
        train_dataloader = dict(dataset={data!r})
        val_dataloader = dict(dataset={data!r})
        test_dataloader = dict(dataset={data!r})
        train_cfg = dict(max_iters={ITERS}, val_interval=1000)
        default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))
    """))
    return config


def _run(args: list[str], modules: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(modules), str(REPO)]),
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=400)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    return done


def _rows(path: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    facts = next(r for r in lines if "wrapper" in r)
    return facts, [r for r in lines if "iter" in r]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Per-rank rows of the 2 x batch 1 run and rows of the 1 x batch 2 run."""
    from hybridkt_ext.datasets.synthetic_segmentation import generate_synthetic_segmentation

    tmp = tmp_path_factory.mktemp("mmseg_distributed")
    modules = tmp / "modules"
    modules.mkdir()
    (modules / f"{RECORDER_MODULE}.py").write_text(RECORDER_SOURCE)
    data_root = tmp / "data"
    # Generated once here rather than by two ranks at the same time.
    generate_synthetic_segmentation(data_root, layout="cityscapes", **SYNTHETIC)
    config = _write_config(tmp, data_root)
    two, one = tmp / "2x1", tmp / "1x2"
    _run(["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          str(TRAIN_SEG), str(config), "--launcher", "pytorch", "--work-dir", str(two)], modules)
    _run([str(TRAIN_SEG), str(config), "--work-dir", str(one),
          "--cfg-options", "train_dataloader.batch_size=2"], modules)
    return {"ranks": [_rows(two / f"rank{r}.jsonl") for r in (0, 1)],
            "single": _rows(one / "rank0.jsonl")}


def test_ddp_wraps_without_find_unused_parameters(runs):
    for rank, (facts, rows) in enumerate(runs["ranks"]):
        assert facts == dict(wrapper="MMDistributedDataParallel", world_size=2,
                             find_unused_parameters=False), f"rank {rank}: {facts}"
        # Without find_unused_parameters DDP fails at the second step if a trainable
        # parameter got no gradient in the first: training ran every step.
        assert [r["iter"] for r in rows] == list(range(1, ITERS + 1))
    facts, _ = runs["single"]
    assert facts["world_size"] == 1 and facts["wrapper"] != "MMDistributedDataParallel"


def test_alpha_is_identical_on_both_ranks_and_uses_rank_averaged_losses(runs):
    (_, rank0), (_, rank1) = runs["ranks"]
    for a, b in zip(rank0, rank1):
        assert a["hkt_alpha"] == b["hkt_alpha"], (a, b)  # bit-identical, not merely close
        mean = {k: (a[k] + b[k]) / 2 for k in ("hkt_L1", "hkt_L2", "hkt_L3")}
        averaged = 2 * mean["hkt_L3"] / (mean["hkt_L1"] + mean["hkt_L2"])
        assert a["hkt_alpha"] == pytest.approx(averaged, rel=1e-5)
    # The ranks saw different images (else the check above could not tell averaged from
    # rank-local losses), and rank-local losses would give another alpha.
    first0, first1 = rank0[0], rank1[0]
    assert first0["hkt_L3"] != first1["hkt_L3"]
    local = 2 * first0["hkt_L3"] / (first0["hkt_L1"] + first0["hkt_L2"])
    assert first0["hkt_alpha"] != pytest.approx(local, rel=1e-5)


def test_two_processes_batch_1_match_one_process_batch_2(runs):
    (_, rank0), (_, rank1) = runs["ranks"]
    _, single = runs["single"]
    assert len(single) == len(rank0) == ITERS
    worst = 0.0
    for a, b, s in zip(rank0, rank1, single):
        # Each rank's loss is the mean over its own image; batch 2's is the mean over both
        # (the heads average over all pixels, and every image has the same pixel count).
        for key in ("loss", "hkt_L1", "hkt_L2", "hkt_L3"):
            two = (a[key] + b[key]) / 2
            assert two == pytest.approx(s[key], rel=1e-4), (s["iter"], key, two, s[key])
            worst = max(worst, abs(two - s[key]) / abs(s[key]))
        assert a["hkt_alpha"] == pytest.approx(s["hkt_alpha"], rel=1e-5)
    print(f"max relative loss difference 2x1 vs 1x2 over {ITERS} iterations: {worst:.2e}")


def test_cpu_launch_names_the_fix_for_a_gpu_only_backend():
    import torch
    from mmengine.config import Config

    from hybridkt_ext.for_openmmlab.cpu_distributed import prepare_cpu_distributed

    if torch.cuda.is_available():
        pytest.skip("with CUDA, mmengine's own launcher set-up applies")
    cfg = Config.fromfile(str(REPRODUCIBLE_CONFIG))
    cfg.launcher = "pytorch"
    cfg.env_cfg.dist_cfg.backend = "nccl"
    with pytest.raises(ValueError, match="env_cfg.dist_cfg.backend=gloo"):
        prepare_cpu_distributed(cfg)
