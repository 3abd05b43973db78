"""Benchmarks of Canarist's decisions: statistical power and false aborts (``benchmarks.power``).

Benchmarks are never timed tests: they print numbers for people to read and save them as JSON.
"""
