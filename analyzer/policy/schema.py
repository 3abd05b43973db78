"""JSON Schema of the policy language, for editors (yaml-language-server) and review tools.

policies/schema.json is generated from this; a test fails when the committed file is stale.
"""

from __future__ import annotations

import json
from typing import Any

from analyzer.policy.models import Policy

SCHEMA_ID = "https://canarist.dev/schemas/policy-v1.json"


def policy_schema() -> dict[str, Any]:
    schema = _keyed_by_title(Policy.model_json_schema(mode="validation"))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Canarist policy",
        **schema,
    }


def policy_schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, sort_keys=True) + "\n"


def _keyed_by_title(schema: dict[str, Any]) -> dict[str, Any]:
    """Key each definition by its title, the policy's name for it (``Pause``), not by the Python
    class's (``PauseSpec``): the schema editors read does not change when a class is renamed."""
    definitions: dict[str, Any] = schema.get("$defs", {})
    renamed = {key: str(value.get("title", key)) for key, value in definitions.items()}
    if len(set(renamed.values())) != len(renamed):
        raise ValueError(f"two definitions of the policy schema share a title: {renamed}")
    refs = {f"#/$defs/{old}": f"#/$defs/{new}" for old, new in renamed.items()}

    def rekeyed(node: Any) -> Any:  # a reference: a "$ref", or a discriminator's mapping
        if isinstance(node, dict):
            return {key: rekeyed(value) for key, value in node.items()}
        if isinstance(node, list):
            return [rekeyed(item) for item in node]
        return refs.get(node, node) if isinstance(node, str) else node

    result: dict[str, Any] = rekeyed({k: v for k, v in schema.items() if k != "$defs"})
    if definitions:
        result["$defs"] = {renamed[key]: rekeyed(value) for key, value in definitions.items()}
    return result
