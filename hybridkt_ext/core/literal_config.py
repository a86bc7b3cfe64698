"""Reading a config stored inside a checkpoint without running it.

mmengine configs are Python files, and mmengine stores the training config's text in every
checkpoint (``meta['cfg']``). ``Config.fromstring`` would *execute* that text, and a teacher
checkpoint is a file someone else wrote: a ``meta['cfg']`` of
``_x = __import__('os').system(...)`` would run during training. The weights-only reader does
not stop it, because the text is only a string until something executes it.

What mmengine writes there (``Config.pretty_text``) is plain literals: ``name = value`` lines
whose values are numbers, strings, booleans, ``None`` and nested ``dict(...)``, lists, tuples
and ``{...}``. This reader accepts exactly that, by walking Python's syntax tree, and refuses
anything else (a name, an attribute, any other call, an import) without evaluating any of it.
"""
from __future__ import annotations

import ast
from typing import Any

from .errors import HybridKTError

__all__ = ["UnreadableStoredConfigError", "read_literal_config"]

# The only calls the stored text may make: the containers pretty_text writes.
_CONTAINERS = {"dict": dict, "list": list, "tuple": tuple, "set": set}


class UnreadableStoredConfigError(HybridKTError, ValueError):
    """The stored config is not plain literals (so it was not read, and nothing of it ran)."""


def _where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')}"


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) \
            and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) in (int, float, complex):
        value = node.operand.value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)) \
            and not any(isinstance(e, ast.Starred) for e in node.elts):
        items = [_literal(e) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:  # a None key is `**other`
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id in _CONTAINERS \
            and all(k.arg is not None for k in node.keywords) \
            and not any(isinstance(a, ast.Starred) for a in node.args):
        args = [_literal(a) for a in node.args]
        kwargs = {k.arg: _literal(k.value) for k in node.keywords}
        try:
            return _CONTAINERS[node.func.id](*args, **kwargs)
        except (TypeError, ValueError) as err:  # e.g. dict(1, 2): still nothing of the file's
            raise UnreadableStoredConfigError(f"{_where(node)}: {err}") from None
    raise UnreadableStoredConfigError(
        f"{_where(node)}: `{ast.unparse(node)[:60]}` is not a literal")


def read_literal_config(text: str) -> dict[str, Any]:
    """The ``name = literal`` assignments of a stored config text, never executing it.

    Args:
        text: a config's Python text, as mmengine stores it in ``meta['cfg']``.

    Returns:
        ``{name: value}`` of plain Python values (``dict(...)`` becomes a ``dict``).

    Raises:
        UnreadableStoredConfigError: the text is not Python, or holds anything but assignments
            of literals (the message names the line); nothing of it was evaluated.
    """
    try:
        tree = ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        raise UnreadableStoredConfigError(f"not Python ({type(err).__name__}: {err})") from None
    config: dict[str, Any] = {}
    try:
        for statement in tree.body:
            if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
                continue  # a docstring or a bare string
            if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)):
                raise UnreadableStoredConfigError(
                    f"{_where(statement)}: `{ast.unparse(statement)[:60]}` is not an "
                    "assignment of a literal to a name")
            config[statement.targets[0].id] = _literal(statement.value)
    except RecursionError:
        raise UnreadableStoredConfigError("nested too deeply to be a config") from None
    return config
