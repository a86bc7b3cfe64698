"""Small-scale reproduction of the paper's experiments (Tables 1-4, Figs. 5-9).

Each experiment runs the project's own training code and configs over several seeds and
returns a ``ResultTable`` (mean and standard deviation over seeds per row); ``tables``
writes them as Markdown and JSON, ``figures`` draws the figures. ``tools/reproduce.py`` is the
command line. Importing this package imports neither mmseg nor detectron2.
"""
from .tables import ResultTable, mean_std, write_tables

__all__ = ["ResultTable", "mean_std", "write_tables"]
