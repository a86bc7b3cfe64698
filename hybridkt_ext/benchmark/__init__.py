"""The training-cost benchmark (``hybridkt-benchmark``, ``tools/benchmark.py``) and what only it
needs: the naive three-forward reference (``naive_paths``) and the exact count of the bytes
saved for backward (``activation_memory``). The core never imports this package."""
