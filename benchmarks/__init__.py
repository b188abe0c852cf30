"""Benchmarks run with `make bench` (python -m benchmarks.run); results in results.md."""
