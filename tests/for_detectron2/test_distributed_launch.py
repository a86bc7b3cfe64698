"""Two training processes through detectron2's own ``launch`` (gloo on CPU, NCCL on GPUs).

Each rank records what it saw; the parent checks that alpha was the same on both ranks (it is
computed from losses averaged over ranks), that DDP synchronised the student, that the teacher
stayed frozen and outside DDP's buckets, and that no ``find_unused_parameters`` was needed.
"""
import hashlib
import json
from datetime import timedelta
from pathlib import Path

import torch

from tests.for_detectron2.d2_helpers import CONFIGS, TINY, load_cfg, train_net_module
from detectron2.engine import launch  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

from hybridkt_ext.for_detectron2 import HybridKTHook  # noqa: E402
from hybridkt_ext.for_detectron2.citypersons import (  # noqa: E402
    SYNTHETIC_SIZES, SYNTHETIC_STATISTICS, synthetic_root,
)
from hybridkt_ext.datasets.synthetic_citypersons import ensure_synthetic_citypersons  # noqa
from hybridkt_ext.core import teacher_fingerprint  # noqa: E402
from hybridkt_ext.for_detectron2.hooks import find_teacher, unwrap_model  # noqa: E402


def _parameter_digest(model: torch.nn.Module) -> str:
    """Digest of the trainable parameters (BN running stats differ per rank by design)."""
    digest = hashlib.blake2b(digest_size=16)
    for name, param in model.named_parameters():
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _train_two_iterations(config: str, opts: list, out_dir: str) -> None:
    """Runs in each launched process."""
    torch.set_num_threads(1)  # two processes on a small CI machine
    trainer = train_net_module().Trainer(load_cfg(Path(config), opts))
    hook = next(h for h in trainer._hooks if isinstance(h, HybridKTHook))
    model = trainer.model
    teacher = find_teacher(model)
    teacher_before = teacher_fingerprint(teacher)
    trainer.train()
    plain = unwrap_model(model)
    record = {
        "world_size": comm.get_world_size(),
        "ddp": isinstance(model, DistributedDataParallel),
        "find_unused_parameters": getattr(model, "find_unused_parameters", None),
        # Parameter tensors DDP all-reduces: the trainable ones only, so never the teacher's.
        "ddp_parameter_tensors": model._get_ddp_logging_data().get("num_parameter_tensors"),
        "trainable_parameter_tensors": sum(p.requires_grad for p in plain.parameters()),
        "teacher_trainable": [n for n, p in teacher.named_parameters() if p.requires_grad],
        "teacher_unchanged": teacher_fingerprint(teacher) == teacher_before,
        "alpha": [(row["step"], row["hkt_alpha"]) for row in hook.rows],
        "student_digest": _parameter_digest(plain),
    }
    path = Path(out_dir) / f"rank{comm.get_rank()}.json"
    path.write_text(json.dumps(record))


def test_two_processes_with_detectron2_launch(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("HYBRIDKT_DATA", str(data))  # the spawned processes inherit it
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # Generated once here, not raced for by both ranks.
    ensure_synthetic_citypersons(synthetic_root("_mini"), *SYNTHETIC_SIZES["_mini"],
                                 statistics=SYNTHETIC_STATISTICS)
    config = CONFIGS / "hybridkt-mobilenetv1-fpn-synthetic.yaml"
    opts = TINY + ["SOLVER.MAX_ITER", "2", "OUTPUT_DIR", str(tmp_path / "out")]
    launch(_train_two_iterations, 2, dist_url="auto", args=(str(config), opts, str(tmp_path)),
           timeout=timedelta(minutes=5))

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rank in ranks:
        assert rank["world_size"] == 2 and rank["ddp"]
        assert rank["find_unused_parameters"] is False
        assert rank["ddp_parameter_tensors"] == rank["trainable_parameter_tensors"]
        assert rank["teacher_trainable"] == [] and rank["teacher_unchanged"]
    assert [step for step, _ in ranks[0]["alpha"]] == [0, 1]
    assert ranks[0]["alpha"] == ranks[1]["alpha"]  # bit-identical floats
    assert ranks[0]["student_digest"] == ranks[1]["student_digest"]
    # The evaluator gathered both ranks' detections; the main process wrote MR^-2.
    rows = [json.loads(line) for line in (tmp_path / "out/metrics.json").read_text().splitlines()]
    assert any("citypersons/MR2_Reasonable" in row for row in rows)
    logged = [row["hkt_alpha"] for row in rows if "hkt_alpha" in row]  # written at the end
    assert logged and logged[-1] == ranks[0]["alpha"][-1][1]
