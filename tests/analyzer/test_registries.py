"""The one registry helper: names sorted, an unknown one refused with every known name, never a
fallback; a seam's own error subclass is what it raises."""

from __future__ import annotations

import pytest

from analyzer.errors import CanaristError, UnknownNameError
from analyzer.registry import Registry, imported


class UnknownColourError(UnknownNameError):
    """A seam's own subclass, as UnknownPlatformError is the platforms'."""


COLOURS = Registry("colour", {"red": 1, "blue": 2, "green": 3})


def test_names_are_sorted_and_each_stands_for_its_value() -> None:
    assert COLOURS.names == ("blue", "green", "red")
    assert list(COLOURS) == ["blue", "green", "red"] and len(COLOURS) == 3
    assert (COLOURS["red"], COLOURS.lookup("blue")) == (1, 2)
    assert "green" in COLOURS and "Green" not in COLOURS


def test_an_unknown_name_is_refused_naming_the_kind_the_name_and_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as raised:
        COLOURS["purple"]
    assert str(raised.value) == "unknown colour 'purple'; known: blue, green, red"
    assert (raised.value.kind, raised.value.name, raised.value.known) == (
        "colour", "purple", ("blue", "green", "red")
    )  # fmt: skip
    assert isinstance(raised.value, CanaristError) and isinstance(raised.value, LookupError)


def test_where_says_where_the_unknown_name_was_written() -> None:
    with pytest.raises(UnknownNameError, match=r"^wall 'hall' has unknown colour 'Red'; known: "):
        COLOURS.lookup("Red", where="wall 'hall'")


def test_a_registry_raises_its_seams_error() -> None:
    paints = Registry("paint", {"matt": 1}, UnknownColourError)
    with pytest.raises(UnknownColourError, match="unknown paint 'gloss'; known: matt"):
        paints["gloss"]


def test_a_registry_cannot_be_changed_through_what_it_was_built_from() -> None:
    entries = {"red": 1}
    colours = Registry("colour", entries)
    entries["blue"] = 2
    assert colours.names == ("red",)


def test_imported_resolves_a_module_and_attribute_string() -> None:
    assert imported("analyzer.registry:Registry") is Registry
    with pytest.raises(AttributeError):
        imported("analyzer.registry:NoSuchThing")
