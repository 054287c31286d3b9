"""Benchmarks: our figures and, measured in the same run, the baselines they are held to."""
