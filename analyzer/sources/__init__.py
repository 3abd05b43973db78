"""Metric sources: where the analyzer reads time series from."""
