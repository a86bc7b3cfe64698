#!/usr/bin/env python
"""Classification with hybrid forward: the paper's model-gap setting (Table 1, Fig. 5-6, 9).

The clone's wrapper of hybridkt_ext/cli/train_cls.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-train-cls``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.train_cls import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
