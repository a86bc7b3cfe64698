"""Test (and evaluate) a segmentor checkpoint with mmseg's IoUMetric (mmseg's tools/test.py CLI).

With a hybrid config the student is evaluated alone, through its plain config: neither the
teacher nor its file is needed. The checkpoint may be a hybrid training checkpoint (mapped to
the student's keys) or an exported student (hybridkt-export-seg-student). The tool itself is
hybridkt_ext/for_openmmlab/testing_tool.py (shared with hybridkt-test-det); ``--out`` and
``--show-dir`` are never the config, the checkpoint or inside the test data folders.
"""
import hybridkt_ext.for_mmseg  # noqa: F401  (registers HybridBackbone & co. in mmseg)
from hybridkt_ext.for_openmmlab import testing_tool


def main(argv: list[str] | None = None) -> dict:
    return testing_tool.main("test_seg", "Test (and eval) a segmentor", argv)


if __name__ == "__main__":
    main()
