"""Benchmarks: each compares one of our paths with a bare baseline measured in the same run (see BENCHMARKS.md)."""
