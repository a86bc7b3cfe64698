#!/usr/bin/env python
"""Train / evaluate a hybridkt detectron2 config (detectron2's project train_net conventions).

``hybridkt-train-net`` run from the clone (hybridkt_ext/cli/train_net.py has the examples); the
set-up installs the package editable, so this imports the checkout's code.
"""
from hybridkt_ext.cli.train_net import main

if __name__ == "__main__":
    main()
