"""Benchmarks behind docs/performance.md (run with `python -m bench.<name>`) and their handlers."""
