#!/usr/bin/env python3
"""Benchmark cold and warm starts of a stage's Lambda functions; see docs/performance.md.

.venv/bin/python scripts/performance_test.py full --local
.venv/bin/python scripts/performance_test.py cold --stack vulnstats-dev --profile dev
.venv/bin/python scripts/performance_test.py sweep --function my-fn --memory-sizes 512,1024
"""

from __future__ import annotations

from perftest.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
