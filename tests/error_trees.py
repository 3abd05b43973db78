"""Read the error tree drawn in a layer's ``errors.py`` docstring, and every error class defined.

The trees in analyzer/errors.py and workers/errors.py are what a person reads to know what to
catch: tests/analyzer/test_errors.py and tests/workers/test_worker_errors.py hold them to the
classes, so a drawing that goes stale fails a test.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

from analyzer.errors import CanaristError, PermanentError, TemporaryError

_BRANCH = re.compile(r"^(?P<indent>(?:│   |    )*)(?:├── |└── )(?P<name>[A-Z]\w*)(?P<rest>.*)$")
_ROOT = re.compile(r"^(?P<name>[A-Z]\w*)(?P<rest>.*)$")
_SAYS = re.compile(r"^\s+(?P<says>temporary|permanent):")


@dataclass(frozen=True)
class Drawn:
    """One class as drawn: its name, the class drawn above it, and what it says of retrying."""

    name: str
    parent: str | None
    says: str | None  # "temporary", "permanent" or None


def drawn_tree(module: ModuleType) -> list[Drawn]:
    """The classes drawn in the ``::`` block of ``module``'s docstring, top to bottom."""
    doc = module.__doc__ or ""
    block = doc.split("::\n", 1)[1].strip("\n").split("\n\n", 1)[0]
    drawn: list[Drawn] = []
    path: list[str] = []  # the names above the current line, by depth
    for line in block.splitlines():
        text = line.removeprefix("    ")
        branch = _BRANCH.match(text)
        root = None if branch else _ROOT.match(text)
        if branch is not None:
            depth = len(branch["indent"]) // 4 + 1
            name, rest = branch["name"], branch["rest"]
        elif root is not None:
            depth, name, rest = 0, root["name"], root["rest"]
        else:
            continue  # a description carried onto the next line
        del path[depth:]
        says = _SAYS.match(rest)
        drawn.append(Drawn(name, path[-1] if path else None, says["says"] if says else None))
        path.append(name)
    return drawn


def defined_errors(package: str) -> dict[str, type[CanaristError]]:
    """Every subclass of CanaristError defined in ``package``, by name (each module imported)."""
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, f"{package}."):
        importlib.import_module(info.name)
    found: dict[str, type[CanaristError]] = {}
    pending: list[type[CanaristError]] = [CanaristError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] == package:
            assert found.get(cls.__name__, cls) is cls, f"two errors named {cls.__name__}"
            found[cls.__name__] = cls
    return found


def public_errors(package: str) -> list[type[BaseException]]:
    """Every public exception class defined in ``package`` (imported by ``defined_errors``)."""
    defined_errors(package)
    found: list[type[BaseException]] = []
    pending: list[type[BaseException]] = [BaseException]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] == package and not cls.__name__.startswith("_"):
            found.append(cls)
    return found


def drawn_parent(cls: type[CanaristError]) -> type[CanaristError] | None:
    """The class a tree draws ``cls`` under: its first base in the tree other than
    TemporaryError and PermanentError (which the drawing says in words), else the root."""
    if cls is CanaristError:
        return None
    bases = [base for base in cls.__bases__ if issubclass(base, CanaristError)]
    tree = [base for base in bases if base not in (TemporaryError, PermanentError)]
    return tree[0] if tree else CanaristError


def misdrawn(module: ModuleType, package: str) -> list[str]:
    """What the drawing in ``module`` says that the classes of ``package`` do not, one line each:
    a class drawn twice or not at all, drawn under a class that is not its base, or said to be
    temporary or permanent when it is not (or not said to be when it is)."""
    drawn = drawn_tree(module)
    defined = defined_errors(package)
    known: dict[str, type[CanaristError]] = {"CanaristError": CanaristError, **defined}
    names = [each.name for each in drawn]
    twice = {name for name in names if names.count(name) > 1}
    wrong = [f"{name} is drawn {names.count(name)} times" for name in sorted(twice)]
    wrong += [f"{name} is not drawn" for name in sorted(set(defined) - set(names))]
    wrong += [f"{name} is drawn but not defined" for name in sorted(set(names) - set(known))]
    for each in drawn:
        cls = known.get(each.name)
        if cls is None:
            continue
        parent = drawn_parent(cls)
        if each.parent != (parent.__name__ if parent else None):
            wrong.append(f"{each.name} is drawn under {each.parent}, but its base is {parent}")
        if cls in (TemporaryError, PermanentError):
            continue
        temporary, permanent = issubclass(cls, TemporaryError), issubclass(cls, PermanentError)
        if temporary and permanent:
            wrong.append(f"{each.name} is both temporary and permanent")
        kind = "temporary" if temporary else "permanent" if permanent else None
        if each.says != kind:
            said, really = each.says or "neither", kind or "neither"
            wrong.append(f"{each.name} is drawn as {said}, but is {really}")
    return sorted(wrong)
