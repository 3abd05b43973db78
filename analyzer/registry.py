"""``Registry``: the one way a name a person writes picks an implementation, and refuses others.

Policies, jobs and settings name implementations: a judge type, a strategy type, a platform, a
traffic router, an alert route's type. Each seam keeps its names in a ``Registry``; a name it
does not hold raises ``UnknownNameError`` (analyzer/errors.py) naming the kind, the name and
every known one, so a typo is never run as some other implementation nobody chose. A seam whose
errors belong to a tree of their own passes its subclass of ``UnknownNameError`` (an unknown
platform is also a ``PlatformError``, which a task treats as permanent).

What a registry holds is the seam's business: classes, factories that import a heavy dependency
when first called, or ``"module:attribute"`` strings that ``imported`` resolves on first use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib import import_module
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from analyzer.errors import UnknownNameError

Name = TypeVar("Name", bound=str)
Value = TypeVar("Value")


class Registry(Generic[Name, Value]):
    """Names of one ``kind`` and what each stands for; read-only once built."""

    def __init__(
        self,
        kind: str,
        entries: Mapping[Name, Value],
        error: type[UnknownNameError] = UnknownNameError,
    ) -> None:
        self.kind = kind
        self._entries: Mapping[Name, Value] = MappingProxyType(dict(entries))
        self._error = error

    @property
    def names(self) -> tuple[Name, ...]:
        """Every registered name, sorted."""
        return tuple(sorted(self._entries))

    def lookup(self, name: str, *, where: str = "") -> Value:
        """What ``name`` stands for; the registry's error if nothing does (``where``, when
        given, says where the name was written: ``alert route 'oncall'``)."""
        try:
            return self._entries[name]  # type: ignore[index]  # a str that is not a Name is unknown
        except KeyError:
            raise self._error(self.kind, name, self.names, where) from None

    def __getitem__(self, name: str) -> Value:
        return self.lookup(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Name]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self._entries)


def imported(target: str) -> Any:
    """The object a ``"module:attribute"`` string names, importing its module if need be."""
    module_name, _, attribute = target.partition(":")
    return getattr(import_module(module_name), attribute)
