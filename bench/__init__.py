"""Benchmarks of the running system (not tests: nothing here asserts a time).
``python -m bench --help``; docs/performance.md."""
