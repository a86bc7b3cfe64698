#!/usr/bin/env python
"""Smoke-test an mmseg, mmdet or detectron2 config, plain and hybrid, on generated data.

``hybridkt-smoke`` run from the clone (hybridkt_ext/cli/smoke.py has the examples).
"""
from hybridkt_ext.cli.smoke import main

if __name__ == "__main__":
    main()
