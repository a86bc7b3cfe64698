"""Multi-process mmengine training on machines without CUDA (gloo, one process per core).

Used by tools/train_seg.py and tools/test_seg.py before the Runner is built; it changes
nothing on a CUDA machine or with another launcher.
"""
from __future__ import annotations

import datetime

import torch
import torch.distributed as dist
from mmengine.config import Config


def prepare_cpu_distributed(cfg: Config) -> None:
    """Lets ``--launcher pytorch`` run on a machine without CUDA (gloo, one process per core).

    mmengine 0.10.7 cannot do it alone: ``init_dist`` calls ``torch.cuda.set_device`` for the
    pytorch launcher, and the default DDP wrapper passes ``device_ids=[LOCAL_RANK]``, which DDP
    refuses for CPU modules. So, without CUDA, the process group is initialised here from
    ``env_cfg.dist_cfg`` (the Runner then skips its own ``init_dist``) and DDP is built with
    ``device_ids=None``. With CUDA, or another launcher, nothing changes.
    """
    if cfg.launcher != "pytorch" or torch.cuda.is_available():
        return
    dist_cfg = dict(cfg.get("env_cfg", {}).get("dist_cfg", {}) or {})
    backend = dist_cfg.pop("backend", "nccl")
    if backend != "gloo":
        raise ValueError(f"env_cfg.dist_cfg.backend={backend!r} needs GPUs, and this machine has "
                         "no CUDA device. Train on CPU with --cfg-options "
                         "env_cfg.dist_cfg.backend=gloo.")
    if cfg.get("sync_bn") or "SyncBN" in repr(cfg.get("model")):
        raise ValueError("the config uses SyncBatchNorm (sync_bn or norm_cfg type 'SyncBN'), "
                         "which torch runs on GPUs only; on CPU set norm_cfg=dict(type='BN', "
                         "...) and remove sync_bn (per-process BN), or freeze the norms.")
    if not dist.is_initialized():
        if dist_cfg.get("timeout") is not None:  # seconds in mmengine configs
            dist_cfg["timeout"] = datetime.timedelta(seconds=dist_cfg["timeout"])
        dist.init_process_group(backend="gloo", **dist_cfg)
    wrapper = cfg.get("model_wrapper_cfg") or dict(
        type="MMDistributedDataParallel", broadcast_buffers=False,
        find_unused_parameters=cfg.get("find_unused_parameters", False))
    wrapper.setdefault("device_ids", None)  # None: a CPU module; the Runner's default is GPU ids
    cfg.model_wrapper_cfg = wrapper
