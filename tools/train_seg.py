#!/usr/bin/env python
"""Train an mmseg segmentor, hybrid-forward configs included (mmseg's tools/train.py CLI).

The clone's wrapper of hybridkt_ext/cli/train_seg.py, whose docstring has the examples; installed,
the same tool is the command ``hybridkt-train-seg``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.train_seg import main  # noqa: E402

if __name__ == "__main__":
    main()
