"""docs/policy-cookbook.md stays true: every ```yaml block on it is a policy the language accepts.

Each block is loaded by the real loader, and all of them are run once through `canarist policy
validate`, the command the page tells its readers to use. A block that fails names its heading
and the line in the page, and each problem's line is the page's line, not the block's. Every
query, rendered as a rollout would render it, must also parse with Prometheus' own parser
(`promtool check rules`), where promtool is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from analyzer.analysis import resolve_args
from analyzer.errors import PolicyError
from analyzer.policy import load_policy_text
from analyzer.policy.promql import PromQLTemplate, Selector
from canarist.cli import app

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "policy-cookbook.md"
FENCE = re.compile(r"^(`{3,})(\S*)")
HEADING = re.compile(r"^#{1,6}\s+(.*\S)")


@dataclass(frozen=True)
class Block:
    heading: str
    first_line: int  # the page's line of the block's first line (after the fence)
    text: str

    def where(self) -> str:
        return f"{PAGE.relative_to(ROOT)}:{self.first_line} (under {self.heading!r})"


def yaml_blocks(markdown: str) -> list[Block]:
    """Every fenced block whose info string is yaml, with the heading it sits under."""
    blocks: list[Block] = []
    heading, fence, language, start = "(top of the page)", "", "", 0
    body: list[str] = []
    for number, line in enumerate(markdown.splitlines(), start=1):
        opened = FENCE.match(line)
        if not fence:
            if opened:
                fence, language, start, body = opened[1], opened[2], number + 1, []
            elif match := HEADING.match(line):
                heading = match[1]
            continue
        if line.strip() == fence:
            if language == "yaml":
                blocks.append(Block(heading, start, "\n".join(body) + "\n"))
            fence = ""
            continue
        body.append(line)
    assert not fence, f"a code fence opened at line {start - 1} is never closed"
    return blocks


BLOCKS = yaml_blocks(PAGE.read_text(encoding="utf-8"))


def test_the_page_has_its_recipes() -> None:
    # The task: p99, dry run, rolling ceilings, targeted, payments, and a few more.
    assert len(BLOCKS) >= 8, [block.where() for block in BLOCKS]


@pytest.mark.parametrize("block", BLOCKS, ids=[block.heading for block in BLOCKS])
def test_every_yaml_block_is_a_valid_policy(block: Block) -> None:
    problems: list[str] = []
    try:
        load_policy_text(block.text, block.where())
    except PolicyError as error:
        problems = [
            f"  line {block.first_line + problem.line - 1 if problem.line else '?'}: "
            f"{problem.dotted_path}: {problem.message}"
            for problem in error.problems
        ]
    if problems:
        pytest.fail(f"{block.where()} is not a valid policy:\n" + "\n".join(problems))


def test_every_policy_on_the_page_has_its_own_name() -> None:
    names = [load_policy_text(block.text, block.where()).name for block in BLOCKS]
    assert len(set(names)) == len(names), names


def test_canarist_policy_validate_accepts_every_block(tmp_path: Path) -> None:
    files = []
    for index, block in enumerate(BLOCKS):
        slug = re.sub(r"[^a-z0-9]+", "-", block.heading.lower()).strip("-")
        path = tmp_path / f"{index:02d}-{slug}.yaml"
        path.write_text(block.text, encoding="utf-8")
        files.append(str(path))

    result = CliRunner().invoke(app, ["policy", "validate", *files])

    assert result.exit_code == 0, result.output
    assert result.output.count(": ok (") == len(files), result.output


def test_a_broken_block_is_reported_at_its_heading_and_page_line() -> None:
    page = "# T\n\n## Broken recipe\n\ntext\n\n```yaml\nname: x\nmetrics: []\n```\n"
    [block] = yaml_blocks(page)
    assert (block.heading, block.first_line) == ("Broken recipe", 8)
    with pytest.raises(PolicyError) as caught:
        load_policy_text(block.text, block.where())
    assert any(problem.line == 2 for problem in caught.value.problems)  # page line 9


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) not installed")
def test_every_query_on_the_page_parses_as_promql(tmp_path: Path) -> None:
    selector = Selector.parse('app="checkout",version="v2"')
    rules = []
    for block in BLOCKS:
        policy = load_policy_text(block.text, block.where())
        args = resolve_args(policy, {})
        for metric in policy.metrics:
            for field, text in metric.templates().items():
                query = PromQLTemplate.parse(text).render(
                    selector=selector, interval=policy.analysis.interval, args=args
                )
                record = re.sub(r"[^a-zA-Z0-9_:]", "_", f"{policy.name}:{metric.name}:{field}")
                rules.append({"record": record, "expr": query})
    path = tmp_path / "cookbook-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "cookbook", "rules": rules}]}))

    checked = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout


def github_anchor(heading: str) -> str:
    """The id GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_link_within_the_page_reaches_a_heading() -> None:
    text = PAGE.read_text(encoding="utf-8")
    anchors = {github_anchor(match[1]) for match in map(HEADING.match, text.splitlines()) if match}
    linked = set(re.findall(r"\]\(#([^)]+)\)", text))

    assert "5-a-payments-api-1--5--25--100-strict-on-errors" in linked
    assert sorted(linked - anchors) == []
