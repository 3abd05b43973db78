"""JSON Schema of the policy language, for editors (yaml-language-server) and review tools.

policies/schema.json is generated from this; a test fails when the committed file is stale.
"""

from __future__ import annotations

import json
from typing import Any

from analyzer.policy.models import Policy

SCHEMA_ID = "https://canarist.dev/schemas/policy-v1.json"


def policy_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Canarist policy",
        **schema,
    }


def policy_schema_text() -> str:
    return json.dumps(policy_schema(), indent=2, sort_keys=True) + "\n"
