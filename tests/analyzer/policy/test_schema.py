"""policies/schema.json is what editors validate against: current, and accepting our policies."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from analyzer.policy.schema import policy_schema, policy_schema_text

ROOT = Path(__file__).parents[3]


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "policies" / "schema.json").read_text(encoding="utf-8")
    assert committed == policy_schema_text(), "stale: run `make schema` and commit the result"


@pytest.mark.parametrize("path", sorted((ROOT / "policies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policies_validate_against_the_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text(encoding="utf-8")), policy_schema())


def test_schema_rejects_an_unknown_field() -> None:
    document = yaml.safe_load((ROOT / "policies" / "default-canary.yaml").read_text())
    document["metrics"][0]["tolerence"] = 0.1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, json.loads(policy_schema_text()))
