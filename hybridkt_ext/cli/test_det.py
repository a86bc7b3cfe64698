"""Test (and evaluate) a detector checkpoint (mmdet's tools/test.py CLI).

With a hybrid config the student is evaluated alone, through its plain config: neither the
teacher nor its file is needed. The checkpoint may be a hybrid training checkpoint or an
exported student. On CityPersons the metric is MR^-2 (CityPersonsMetric); ``--out x.pkl``
dumps the detections as mmdet's test.py does (never onto the config, the checkpoint or into
the test data folders). The tool itself is hybridkt_ext/for_openmmlab/testing_tool.py (shared with
hybridkt-test-seg).
"""
import hybridkt_ext.for_mmdet  # noqa: F401  (registers HybridBackbone & co. in mmdet)
from hybridkt_ext.for_mmdet.predictions import dump_detections
from hybridkt_ext.for_openmmlab import testing_tool


def main(argv: list[str] | None = None) -> dict:
    return testing_tool.main("test_det", "Test (and eval) a detector", argv,
                             save_predictions=dump_detections)


if __name__ == "__main__":
    main()
