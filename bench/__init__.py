"""Benchmarks: each module prints one Markdown section of the performance report."""
