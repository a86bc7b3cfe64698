#!/usr/bin/env python
"""Train / evaluate a hybridkt detectron2 config (detectron2's project train_net conventions).

The clone's wrapper of hybridkt_ext/cli/train_net.py, whose docstring has the examples;
installed, the same tool is the command ``hybridkt-train-net``.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout

from hybridkt_ext.cli.train_net import main  # noqa: E402

if __name__ == "__main__":
    main()
