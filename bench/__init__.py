"""Benchmarks: each script measures a ratio against the plain library doing the same work, in the same run.

Timing never goes into tests; these scripts print their tables and replace their own sections of docs/benchmarks.md (bench/report.py).
"""
