"""Judges: pure statistical tests that compare a canary with its baseline."""
