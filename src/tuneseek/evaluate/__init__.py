"""Metrics shared by the command line, the benchmarks and the tests."""
