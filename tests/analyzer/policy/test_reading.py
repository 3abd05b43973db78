"""A hostile or broken policy file is refused quickly, with its file and line, never a traceback.

The caps (analyzer/policy/reading.py says why): 256 KiB of UTF-8, 32 levels of nesting,
10,000 YAML nodes with every alias expanded, 50 metrics, 100 steps.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from analyzer.errors import PolicyError
from analyzer.policy import load_policy, load_policy_text
from analyzer.policy.judges import MannWhitneySpec
from tests.analyzer.policy.test_loader import VALID, problems_of

SHARED_JUDGE = """\
name: checkout
metrics:
  - name: latency
    kind: series
    query: avg(latency_seconds{ {{ selector }} })
    judge: &strict
      type: mann_whitney
      confidence: 0.99
  - name: memory
    kind: series
    query: avg(process_resident_memory_bytes{ {{ selector }} })
    judge: *strict
strategy:
  type: canary
  steps:
    - set_weight: 50
    - set_weight: 100
"""


def alias_bomb(levels: int) -> str:
    """The billion laughs: each level repeats the one before nine times (9**levels strings)."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    return VALID + "\n".join(lines) + "\n"


def refused(path: Path) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    return [problem.render("p.yaml") for problem in caught.value.problems]


def test_a_file_that_is_not_utf8_names_the_byte_its_line_and_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    text = VALID.replace("name: checkout", "name: checkout\ndescription: caf\u00e9")
    path.write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index(b"\xe9")
    assert refused(path) == [
        f"p.yaml:2: (document): byte 0xe9 at offset {offset} is not UTF-8; policies are UTF-8 text"
    ]


def test_a_utf16_file_is_told_to_be_saved_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_bytes(VALID.encode("utf-16"))
    (problem,) = refused(path)
    assert problem.startswith("p.yaml:1: (document): byte 0xff at offset 0 is not UTF-8")
    assert problem.endswith("(this file is UTF-16: save it as UTF-8)")


def test_a_file_over_256_kib_is_refused_at_the_line_that_crosses_the_limit(tmp_path: Path) -> None:
    comment = "# " + "x" * 97 + "\n"  # 100 bytes a line
    fits = VALID + comment * ((256 * 1024 - len(VALID)) // 100)
    path = tmp_path / "p.yaml"
    path.write_text(fits)
    assert load_policy(path).name == "checkout"  # a long commented policy is fine

    path.write_text(fits + comment)
    crossing = fits.count("\n") + 1
    message = "(document): the file is larger than 256 KiB (it crosses the limit on this line)"
    assert refused(path) == [f"p.yaml:{crossing}: {message}"]
    assert problems_of(fits + comment) == [f"p.yaml:{crossing}: {message}"]


def test_nesting_deeper_than_32_levels_is_refused_where_it_goes_too_deep() -> None:
    def nested(levels: int) -> str:  # `deep:` is level 2 below the document, each [ one more
        return VALID + "deep: " + "[" * (levels - 2) + "1" + "]" * (levels - 2) + "\n"

    within = problems_of(nested(32))
    assert within == [
        f"p.yaml:{VALID.count(chr(10)) + 1}: deep: unknown field 'deep'; the fields here are "
        "name, description, owner, args, analysis, metrics, strategy, traffic, alerts, hooks"
    ]
    (too_deep,) = problems_of(nested(33))
    assert too_deep.startswith(f"p.yaml:{VALID.count(chr(10)) + 1}: deep[0]")
    assert too_deep.endswith(": nested deeper than 32 levels")
    assert problems_of(nested(5000))[0].endswith(": nested deeper than 32 levels")


def test_an_alias_bomb_is_refused_at_once_and_with_little_memory() -> None:
    text = alias_bomb(7)  # 9**7 = 4.8 million strings; the loader once ran out of memory on it
    assert len(text) - len(VALID) < 600
    tracemalloc.start()
    started = time.perf_counter()
    try:
        found = problems_of(text)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 5.0
    assert peak < 20 * 1024 * 1024
    line_of_l4 = VALID.count("\n") + 5
    assert found == [
        f"p.yaml:{line_of_l4}: l4[0]: the document has more than 10000 YAML nodes here, "
        "counting each alias as the nodes it repeats; a policy needs a few hundred"
    ]


def test_an_alias_inside_the_value_it_names_is_refused() -> None:
    assert problems_of(VALID + "loop: &loop [1, *loop]\n") == [
        f"p.yaml:{VALID.count(chr(10)) + 1}: loop[1]: alias *loop is used inside the value it names"
    ]


def test_a_shared_anchor_loads_and_its_problems_are_located_where_they_are_written() -> None:
    latency, memory = load_policy_text(SHARED_JUDGE).metrics
    assert latency.judge == memory.judge == MannWhitneySpec(confidence=0.99)

    found = problems_of(SHARED_JUDGE.replace("confidence: 0.99", "confidence: 2"))
    assert [line.split(": must be")[0] for line in found] == [
        "p.yaml:8: metrics[0].judge.confidence",
        "p.yaml:8: metrics[1].judge.confidence",  # written once, at the anchor
    ]
    found = problems_of(SHARED_JUDGE.replace("judge: *strict", "judge: *lenient"))
    assert found == [
        "p.yaml:12: (document): YAML syntax at line 12, column 12: the alias *lenient is used "
        "before any &lenient anchor defines it; the line: `    judge: *lenient`"
    ]


def policy_with(metrics: int = 1, steps: int = 1) -> str:
    lines = ["name: many", "metrics:"]
    for number in range(metrics):
        lines += [f"  - name: m{number}", "    kind: series", "    query: up{ {{ selector }} }"]
    lines += ["strategy:", "  type: canary", "  steps:"]
    lines += [f"    - set_weight: {min(100, 1 + number)}" for number in range(steps - 1)]
    lines += ["    - set_weight: 100"]
    return "\n".join(lines) + "\n"


def test_at_most_50_metrics_and_100_steps() -> None:
    assert len(load_policy_text(policy_with(metrics=50, steps=100)).metrics) == 50

    first_over = 3 + 50 * 3  # the line of the 51st metric's `- name:`
    assert problems_of(policy_with(metrics=51)) == [
        f"p.yaml:{first_over}: metrics[50]: a policy has at most 50 metrics; this is number 51"
    ]
    found = problems_of(policy_with(steps=101))
    assert found == [
        "p.yaml:109: strategy.steps[100]: a policy has at most 100 steps; this is number 101"
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("owner: a\x07b", "p.yaml:{n}: (document): character U+0007 is not allowed in YAML"),
        ("owner: !!python/object:os.system x", "p.yaml:{n}: owner: cannot read this value:"),
        ("owner: !!binary 'zz'", "p.yaml:{n}: owner: cannot read this value: failed to decode"),
        ("owner: 2024-13-45", "p.yaml:{n}: owner: cannot read this value: month must be in"),
        ("? [a, b]\n: value", "p.yaml:{n}: (document): a key is a plain word, not a list"),
        ("owner: {<<: {a: 1}}", "p.yaml:{n}: owner: YAML merge keys (<<) are not supported"),
    ],
)
def test_yaml_that_once_crashed_the_loader_is_a_located_problem(line: str, expected: str) -> None:
    found = problems_of(VALID + line + "\n")
    assert found[0].startswith(expected.format(n=VALID.count("\n") + 1)), found
