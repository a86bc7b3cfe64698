"""``test_det.py --out``: the detections dumped as mmdet's own ``tools/test.py --out`` does."""
from __future__ import annotations

from mmengine.config import Config, ConfigDict


def dump_detections(cfg: Config, out: str) -> None:
    """Adds mmdet's ``DumpDetResults`` to the test evaluators, writing ``out`` (a .pkl file).

    Raises:
        ValueError: ``out`` is not a ``.pkl``/``.pickle`` file name.
    """
    if not out.endswith((".pkl", ".pickle")):
        raise ValueError(f"--out {out}: the detections are dumped with pickle; give a .pkl file.")
    dump = ConfigDict(type="DumpDetResults", out_file_path=out)
    evaluators = cfg.test_evaluator
    cfg.test_evaluator = [*evaluators, dump] if isinstance(evaluators, list) \
        else [evaluators, dump]
