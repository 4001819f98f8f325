"""Benchmark harness: inferstream against same-run baselines on the real local broker.

`python -m bench` from a checkout (bench/ is not installed); bench/README.md has the method.
"""
