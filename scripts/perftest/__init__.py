"""Measuring a stage: cold and warm start benchmarks (scripts/performance_test.py), load runs."""
