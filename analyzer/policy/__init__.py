"""The policy language: pydantic models, a YAML loader that names file and line, and its schema."""

from analyzer.policy.loader import load_policy, load_policy_text
from analyzer.policy.models import Analysis, Arg, Policy

__all__ = ["Analysis", "Arg", "Policy", "load_policy", "load_policy_text"]
