"""Read a rendered report as a person (its text) and as a browser would parse it (its elements).

The tests look at what a reader sees, so they parse the page with the standard library's HTML
parser rather than matching markup: ``Page.text`` is the visible text with entities decoded, and
``Page.elements`` every start tag with its attributes, the text inside it and the ids of the
elements around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

_VOID = frozenset({"meta", "br", "img", "input", "link", "hr", "source", "wbr", "area", "col"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    inside: tuple[str, ...] = ()  # the ids of the elements it is nested in
    text: list[str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def joined(self) -> str:
        return " ".join(" ".join(self.text).split())


class Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self._texts: list[str] = []
        self._in_style = False
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        ids = tuple(str(e.attrs["id"]) for e in self._open if e.attrs.get("id"))
        element = Element(tag, dict(attrs), ids)
        self.elements.append(element)
        self._in_style = tag == "style"
        if tag not in _VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        if self._in_style:
            return
        self._texts.append(data)
        for element in self._open:
            element.text.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self._texts).split())

    def by_id(self, element_id: str) -> Element:
        found = [e for e in self.elements if e.attrs.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def all(self, tag: str, css_class: str | None = None) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and (css_class is None or css_class in e.classes)
        ]

    def within(self, element_id: str, tag: str, css_class: str | None = None) -> list[Element]:
        """Elements of ``tag`` inside the element with ``element_id``, in document order."""
        return [e for e in self.all(tag, css_class) if element_id in e.inside]
