"""Drift detector benchmark: false-alarm run length, detection delay, throughput, baselines."""
