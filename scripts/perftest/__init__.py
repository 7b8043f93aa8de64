"""Cold and warm start benchmarks of a stage's Lambda functions (scripts/performance_test.py)."""
