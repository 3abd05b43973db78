"""The example policies at demo scale: every duration divided, nothing else changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from analyzer.errors import PolicyError
from analyzer.policy import load_policy
from canarist.demo import scenario

POLICIES = Path(__file__).resolve().parents[3] / "policies"


@pytest.mark.parametrize("name", sorted(p.stem for p in POLICIES.glob("*.yaml")))
def test_every_shipped_policy_scales_and_still_loads(name: str, tmp_path: Path) -> None:
    original = load_policy(POLICIES / f"{name}.yaml")
    scaled = load_policy(scenario.scaled_policy(POLICIES / f"{name}.yaml", tmp_path, 20))

    assert scaled.metrics == original.metrics  # queries, judges and tolerances untouched
    assert scaled.analysis.alpha == original.analysis.alpha
    interval = original.analysis.interval.total_seconds()
    assert scaled.analysis.interval.total_seconds() == max(3, interval / 20)
    assert type(scaled.strategy) is type(original.strategy)


def test_durations_are_divided_wherever_they_are_written() -> None:
    document = {
        "analysis": {"interval": "1m", "begin_after": "30s"},
        "strategy": {
            "steps": [{"set_weight": 5}, {"analyze": {"duration": "10m"}}, {"pause": None}],
            "batches": [{"percent": 50, "analyze": "5m"}],
            "scale_down_delay": "45s",
        },
        "metrics": [{"name": "interval-like", "query": "rate(x[5m])"}],
    }
    scaled = scenario.scale_durations(document, 30)
    assert scaled["analysis"] == {"interval": "3s", "begin_after": "1s"}
    assert scaled["strategy"]["steps"] == [
        {"set_weight": 5},
        {"analyze": {"duration": "20s"}},
        {"pause": None},
    ]
    assert scaled["strategy"]["batches"] == [{"percent": 50, "analyze": "10s"}]
    assert scaled["strategy"]["scale_down_delay"] == "2s"
    assert scaled["metrics"] == document["metrics"]  # PromQL ranges are templated, not scaled


def test_a_broken_policy_is_refused_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "in" / "broken.yaml"
    broken.parent.mkdir()
    broken.write_text(yaml.safe_dump({"name": "broken", "analysis": {"interval": "1m"}}))
    with pytest.raises(PolicyError, match=r"broken\.yaml"):
        scenario.scaled_policy(broken, tmp_path / "out", 20)


def test_the_releases_are_one_healthy_and_one_bad() -> None:
    assert [release.expected for release in scenario.RELEASES] == ["promoted", "aborted"]
    for release in scenario.RELEASES:
        assert (POLICIES / f"{release.policy}.yaml").is_file()
        assert "{port}" in release.command() and release.version in release.command()
