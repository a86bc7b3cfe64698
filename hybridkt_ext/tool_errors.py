"""How every tool reports a failure: one line naming the problem and the fix, exit status 1.

The project's errors (``HybridKTError``), and the OS and value errors that bad paths, options
and config values raise, already say what is wrong; a traceback through mmengine or detectron2
would bury that line at the bottom of fifty others. ``--debug`` shows the traceback instead.
Any other exception is a bug, and keeps its traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, TypeVar

from .core import HybridKTError

USER_ERRORS = (HybridKTError, OSError, ValueError, KeyError)

T = TypeVar("T")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of its one line")


def one_line(tool: str, err: BaseException) -> str:
    """``tool: ErrorType: message``; a KeyError's message is not quoted."""
    message = err.args[0] if isinstance(err, KeyError) and err.args else err
    return f"{tool}: {type(err).__name__}: {message}"


def run_tool(tool: str, body: Callable[[], T], debug: bool = False) -> T:
    """Runs ``body``; a user error exits with its one line (the traceback under ``debug``)."""
    if debug:
        return body()
    try:
        return body()
    except USER_ERRORS as err:
        sys.exit(one_line(tool, err))
