"""Benchmarks (never timed tests): each writes JSON and a PNG plot and prints a one-line summary."""
