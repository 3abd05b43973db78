"""policies/schema.json is what editors validate against: current, and accepting our policies."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from analyzer.policy import Policy
from analyzer.policy.base import PolicyModel
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


def titled_models(model: type[PolicyModel]) -> list[type[PolicyModel]]:
    """Every policy model whose class is named otherwise than its title (``PauseSpec``)."""
    found = [model] if model.model_config.get("title", model.__name__) != model.__name__ else []
    return found + [titled for sub in model.__subclasses__() for titled in titled_models(sub)]


def test_the_schema_says_the_policy_s_names_not_the_classes() -> None:
    schema, renamed = policy_schema(), titled_models(PolicyModel)
    text = json.dumps(schema)

    assert {"PauseSpec", "SequentialSpec", "TrafficSpec"} <= {m.__name__ for m in renamed}
    assert [m.__name__ for m in renamed if m.__name__ in text] == []
    assert all(schema["$defs"][str(m.model_config["title"])] for m in renamed)
    assert Policy.model_json_schema()["$defs"].keys() != schema["$defs"].keys()  # pydantic's own
