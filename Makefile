# Two entry points, both installing what they need first (tools/setup_env.sh is idempotent).
PY := .venv/bin/python

.PHONY: setup demo demo-cls test

setup:
	bash tools/setup_env.sh

# The segmentation demo: GTA5-style teacher, Cityscapes-style student without/with hybrid forward.
# --overwrite: work_dirs/demo_seg is the demo's own folder, and `make demo` redoes the demo.
demo: setup
	$(PY) tools/demo_seg.py --overwrite

# The classification demo on scikit-learn's digits (the paper's model-gap setting).
# --overwrite: likewise for work_dirs/cls_demo.
demo-cls: setup
	$(PY) tools/train_cls.py --demo --overwrite

test: setup
	$(PY) -m pytest -q --durations=25 tests
