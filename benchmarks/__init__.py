"""Benchmarks: scripts that measure, print a table and write JSON (never timed tests)."""
