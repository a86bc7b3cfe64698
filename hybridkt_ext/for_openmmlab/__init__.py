"""The OpenMMLab layer: everything the mmseg and mmdet adapters share, needing mmengine and mmcv
but no downstream library (no mmseg, no mmdet).

``for_mmseg`` and ``for_mmdet`` are thin registrations of this layer in their library's
registries, so an mmdet user does not install mmsegmentation.
"""
try:
    import mmcv  # noqa: F401
    import mmengine  # noqa: F401
except ImportError as _err:  # one clear line instead of a traceback deep inside mmengine
    raise ImportError(
        "hybridkt_ext.for_openmmlab needs mmengine and mmcv: pip install 'hybridkt_ext[mmdet]' or "
        "'hybridkt_ext[mmseg]' (mmcv==2.1.0 built with ops, mmengine==0.10.7; see "
        f"tools/setup_env.sh). Import failed with: {_err}"
    ) from None
