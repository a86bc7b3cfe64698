"""hybridkt_ext: hybrid-forward knowledge transfer (Song et al., AAAI 2021).

Importing the package never imports detectron2 or mmseg; their adapters register themselves
when imported explicitly (``hybridkt_ext.for_mmseg``, ``hybridkt_ext.for_detectron2``).
"""
from .core import *  # noqa: F401,F403  (the public API is the core's __all__)
from .core import __all__

__version__ = "0.1.0"
