"""Benchmark harness: inferstream against same-run baselines on the real local broker.

`python -m bench` (or `inferstream bench`); the method is described in bench/README.md.
"""
