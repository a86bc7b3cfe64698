"""One framework's table of stage splitters, and a one-line refusal for what it cannot split.

Hybrid forward switches networks between stages, so a backbone must be one chain: each stage
consuming the previous stage's single output. A ``SplitterTable`` holds, for one framework (the
mmseg adapter, the mmdet adapter), the splitters of its chain-structured backbone classes in the
order they are tried, the backbones it refuses with the reason, and the splitters users
register for their own classes (tried first). A type it does not know may fall through to
another framework's table (mmdet configs name ``mmseg.MixVisionTransformer``).

Classes are named by module path and class name and looked up in ``sys.modules`` only: an
instance of a class implies its module is imported, so the table never imports a library
(mmpretrain, mmseg) for a model that is not one of its classes.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from torch import nn

from hybridkt_ext.core import StagedBackbone, UnsupportedBackboneError

# model -> (its stages, for each feature the plain backbone returns the stage producing it)
Splitter = Callable[[nn.Module], "tuple[StagedBackbone, tuple[int, ...]]"]


@dataclass(frozen=True)
class SplitterEntry:
    """A backbone class (its subclasses included) and the function cutting it into stages.

    Attributes:
        module: where the class is importable from: the module defining it or a package above
            that module (``'mmseg.models.backbones'``), so that an instance implies it is imported.
        name: the class name in ``module``.
        splitter: ``model -> (StagedBackbone, out_stages)`` for a built instance.
        scope: the registry scope configs prefix the type with when the class is another
            package's (``'mmpretrain'`` for ``mmpretrain.ConvNeXt``), '' for the framework's own.
    """

    module: str
    name: str
    splitter: Splitter
    scope: str = ""

    @property
    def label(self) -> str:
        """The type as a config names it ('ResNet', 'mmpretrain.ConvNeXt')."""
        return f"{self.scope}.{self.name}" if self.scope else self.name

    def resolve(self) -> type | None:
        """The class, or None while its module is not imported (no instance can exist then)."""
        module = sys.modules.get(self.module)
        return getattr(module, self.name, None) if module is not None else None


@dataclass(frozen=True)
class Fallback:
    """Another framework's table, asked for models of that framework's package only.

    Attributes:
        package: the top-level package the other table splits (``'mmseg'``); it is asked only
            for a model with a class of that package among its bases, so it is imported only then.
        table: ``'module:attribute'`` of that SplitterTable.
        listed_by: where users read its types, for messages
            (``'hybridkt_ext.for_mmseg.supported_types()'``).
    """

    package: str
    table: str
    listed_by: str

    def covers(self, cls: type) -> bool:
        """Whether ``cls`` or one of its bases is a class of ``package``."""
        return any(c.__module__.split(".")[0] == self.package for c in cls.__mro__)

    def load(self) -> SplitterTable:
        module, _, attribute = self.table.partition(":")
        return getattr(importlib.import_module(module), attribute)


class SplitterTable:
    """Which backbones of one framework hybrid forward splits, and why the others are refused.

    ``stages(model)`` tries, in order: the user's registrations (newest first, so a user may
    refine a built-in type), the refusals (a ``DetectoRS_ResNet`` is a ``ResNet``: it is refused
    before the ResNet entry matches), the entries (the first whose class ``model`` is an
    instance of), then the fallback table.

    Args:
        framework: the package name, in messages ('mmseg', 'mmdet').
        entries: the built-in splitters, tried in order (a subclass entry before its base's).
        not_a_chain: type name -> why it is not one chain of stages (a clause after "it").
        register_with: the public name of ``register`` for this framework, in messages
            ('hybridkt_ext.for_mmseg.register_stage_splitter').
        subclasses: names of the framework's subclasses of entry types, listed in messages so
            users find theirs ('ResNetV1c').
        fallback: the table asked for another package's types this one does not know.
    """

    def __init__(self, framework: str, entries: Sequence[SplitterEntry],
                 not_a_chain: Mapping[str, str], register_with: str,
                 subclasses: Sequence[str] = (), fallback: Fallback | None = None) -> None:
        self.framework = framework
        self.entries = tuple(entries)
        self.not_a_chain = not_a_chain
        self.register_with = register_with
        self.subclasses = tuple(subclasses)
        self.fallback = fallback
        self._registered: list[tuple[type, Splitter]] = []

    def register(self, cls: type) -> Callable[[Splitter], Splitter]:
        """Decorator: ``splitter(model) -> (StagedBackbone, out_stages)`` for ``cls`` (and its
        subclasses), tried before every built-in entry.

        Raises:
            TypeError: ``cls`` is not a class, or the decorated object is not callable.
        """
        if not isinstance(cls, type):
            raise TypeError(f"{self.register_with} takes the backbone class, as in "
                            f"@{self.register_with}(MyBackbone); got {cls!r}.")

        def add(splitter: Splitter) -> Splitter:
            if not callable(splitter):
                raise TypeError(f"{self.register_with}({cls.__name__}) decorates a function "
                                f"model -> (StagedBackbone, out_stages); got {splitter!r}.")
            self._registered.insert(0, (cls, splitter))
            return splitter

        return add

    def supported_types(self) -> list[str]:
        """The types this table splits, as configs name them (subclasses and registered ones
        included; the fallback's types are the fallback's ``listed_by``)."""
        names = [e.label for e in self.entries] + list(self.subclasses) + [
            cls.__name__ for cls, _ in self._registered]
        return list(dict.fromkeys(names))  # a registration refining an entry is listed once

    def refuse_if_not_a_chain(self, kind: object) -> None:
        """Raises before anything is built when ``kind`` (a type name, scoped or not, or a
        class) is a refused backbone, unless a user registered a splitter for it.

        Raises:
            UnsupportedBackboneError: with the reason and the types that work.
        """
        if isinstance(kind, type):
            if self._registered_for(kind) is None:
                self._refuse([c.__name__ for c in kind.__mro__])
            return
        scope, _, name = str(kind).rpartition(".")  # 'mmseg.HRNet' -> ('mmseg', 'HRNet')
        if any(cls.__name__ == name for cls, _ in self._registered):
            return
        if self.fallback is not None and scope == self.fallback.package:
            try:  # the other package's own reasons; absent, its registry will say so
                other = self.fallback.load()
            except ImportError:
                other = None
            if other is not None:
                other.refuse_if_not_a_chain(name)
                return
        self._refuse([name])

    def find(self, model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]] | None:
        """``stages(model)``, or None when neither this table nor its fallback knows the type.

        Raises:
            UnsupportedBackboneError: the type is refused (the message says why).
        """
        splitter = self._registered_for(type(model))
        if splitter is None:
            self._refuse([c.__name__ for c in type(model).__mro__])
            splitter = next((e.splitter for e in self.entries
                             if (cls := e.resolve()) is not None and isinstance(model, cls)), None)
        if splitter is not None:
            return splitter(model)
        if self.fallback is not None and self.fallback.covers(type(model)):
            return self.fallback.load().find(model)
        return None

    def stages(self, model: nn.Module) -> tuple[StagedBackbone, tuple[int, ...]]:
        """The stages of a built backbone, and which stages it returns.

        Returns:
            The staged backbone, and for each feature the plain backbone returns (in order)
            the index of the stage that produces it.

        Raises:
            UnsupportedBackboneError: the backbone is not one chain of stages (the message says
                why) or is of a type no splitter knows (the message lists those that work and
                how to register one).
        """
        found = self.find(model)
        if found is None:
            kind = type(model)
            raise UnsupportedBackboneError(
                f"no stage splitter for {kind.__module__}.{kind.__name__}. {self.framework} "
                f"backbones that work: {self._works()}. For another chain-structured "
                "backbone, declare its stages with hybridkt_ext.core.cut_into_stages and "
                f"register the function with {self.register_with}(BackboneClass).")
        return found

    def _registered_for(self, cls: type) -> Splitter | None:
        return next((s for base, s in self._registered if issubclass(cls, base)), None)

    def _refuse(self, names: Sequence[str]) -> None:
        name = next((n for n in names if n in self.not_a_chain), None)
        if name is not None:
            raise UnsupportedBackboneError(
                f"{name} cannot take part in hybrid forward: {self.not_a_chain[name]}, so it is "
                "not one chain of stages and no stage boundary carries its whole state. Use a "
                f"chain-structured backbone as student or teacher: {self._works()}.")

    def _works(self) -> str:
        works = ", ".join(self.supported_types())
        if self.fallback is None:
            return works
        return f"{works}; and {self.fallback.package}.<type> for each type of " \
               f"{self.fallback.listed_by}"
