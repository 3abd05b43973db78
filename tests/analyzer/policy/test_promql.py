"""No value a job sends can change the structure of a policy's query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from analyzer.errors import SelectorError, TemplateError
from analyzer.policy.promql import Context, PromQLTemplate, Selector, scan_contexts

SELECTOR = Selector.parse('app="checkout",version="v2"')
MINUTE = timedelta(minutes=1)
TEMPLATE = PromQLTemplate.parse(
    'sum(rate(http_requests_total{ {{ selector }}, route="{{ route }}", '
    "team='{{ team }}' }[{{ interval }}])) > {{ limit }}"
)


def code_runs(text: str) -> list[str]:
    runs = scan_contexts(text)
    return [text[start:end] for start, end, context in runs if context is Context.CODE]


def decode(literal: str) -> str:
    return Selector.parse(f"x={literal}").matchers[0].value


def render(route: str = "/pay", team: str = "core", limit: str = "0.5") -> str:
    return TEMPLATE.render(
        selector=SELECTOR, interval=MINUTE, args={"route": route, "team": team, "limit": limit}
    )


def test_renders_selector_interval_and_args() -> None:
    assert render() == (
        'sum(rate(http_requests_total{ app="checkout",version="v2", route="/pay", '
        "team='core' }[1m])) > 0.5"
    )


@given(st.text())
def test_no_quoted_value_breaks_out_of_its_literal(value: str) -> None:
    try:
        rendered = render(route=value, team=value)
    except TemplateError:
        forbidden = [char for char in value if char not in "\n\t\r" and ord(char) < 0x20]
        assert forbidden or "\x7f" in value
        return
    assert code_runs(rendered) == code_runs(render())
    literals = [
        rendered[start:end]
        for start, end, context in scan_contexts(rendered)
        if context in (Context.DOUBLE_QUOTED, Context.SINGLE_QUOTED)
    ]
    assert [decode(literal) for literal in literals[-2:]] == [value, value]


@given(st.text())
def test_unquoted_values_are_numbers_or_durations_only(value: str) -> None:
    try:
        rendered = render(limit=value)
    except TemplateError:
        return
    assert rendered.endswith(f"> {value}")
    assert code_runs(rendered)[:-1] == code_runs(render())[:-1]
    assert all(char.isalnum() or char in ".-+" for char in value)


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), st.text()))
def test_selectors_round_trip_whatever_their_values(labels: dict[str, str]) -> None:
    if not labels:
        return
    try:
        selector = Selector.from_labels(labels)
        text = selector.render()
    except TemplateError:
        return
    assert Selector.parse(text) == selector
    assert {matcher.label: matcher.value for matcher in Selector.parse(text).matchers} == labels


@given(st.text(max_size=60))
def test_parsing_any_text_either_fails_cleanly_or_round_trips(text: str) -> None:
    try:
        selector = Selector.parse(text)
    except SelectorError:
        return
    try:
        rendered = selector.render()
    except TemplateError:
        return
    assert Selector.parse(rendered) == selector


@pytest.mark.parametrize(
    "text",
    [
        'app="checkout",version="v2"',
        '{app="checkout", version=~"v2|v3"}',
        "app='checkout',code!~\"5..\"",
    ],
)
def test_selector_syntax_accepted(text: str) -> None:
    assert len(Selector.parse(text).matchers) == 2


@pytest.mark.parametrize(
    "text",
    ["", "app", 'app="x" version="y"', "app=x", '1app="x"', 'app="x', 'app=="x"', 'app="\\q"'],
)
def test_selector_syntax_rejected(text: str) -> None:
    with pytest.raises(SelectorError):
        Selector.parse(text)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ('up{job="{{ selector }}"}', "must stand outside string literals"),
        ("up{ {{ selector }} } # {{ route }}", "inside a comment"),
        ("up{ {{ selector }}, a=`{{ route }}` }", "inside a `raw` string"),
        ('up{ {{ selector }}, a="x }', "unterminated string literal"),
        ("up{ {{ sel-ector }} }", "malformed placeholder"),
    ],
)
def test_malformed_templates_are_rejected(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        PromQLTemplate.parse(template)


def test_missing_arg_value_is_an_error() -> None:
    with pytest.raises(TemplateError, match="no value given for"):
        TEMPLATE.render(selector=SELECTOR, interval=MINUTE, args={"route": "/"})


def test_triple_braces_hold_a_selector() -> None:
    template = PromQLTemplate.parse("up{{{selector}}}")
    assert template.render(selector=SELECTOR, interval=MINUTE) == 'up{app="checkout",version="v2"}'


@given(st.text(max_size=60))
@example('app="a\u0001b"')
def test_a_selector_that_parses_always_renders(text: str) -> None:
    """A job's selector is checked once, at submit: parsing must refuse whatever rendering
    would refuse later (control characters), so a parsed selector never fails a look."""
    try:
        selector = Selector.parse(text)
    except SelectorError:
        return
    assert Selector.parse(selector.render()) == selector


def test_a_control_character_in_a_selector_is_a_selector_error_quoted_short() -> None:
    with pytest.raises(SelectorError, match="control character 0x01") as refused:
        Selector.parse('app="a\u0001b' + "x" * 10_000 + '"')
    assert len(str(refused.value)) < 200


def test_a_template_is_parsed_once_and_a_broken_one_is_refused_every_time() -> None:
    text = "sum(rate(requests_total{ {{ selector }} }[{{ interval }}]))"
    assert PromQLTemplate.parse(text) is PromQLTemplate.parse(text)
    for _ in range(2):
        with pytest.raises(TemplateError, match="malformed placeholder"):
            PromQLTemplate.parse("sum(x{ {{ selector } })")
