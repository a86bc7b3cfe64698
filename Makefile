# Two entry points, both installing what they need first (tools/setup_env.sh is idempotent).
PY := .venv/bin/python

.PHONY: setup demo test

setup:
	bash tools/setup_env.sh

demo: setup
	$(PY) tools/train_cls.py --demo

test: setup
	$(PY) -m pytest -q tests
