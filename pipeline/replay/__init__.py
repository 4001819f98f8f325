"""Replay: re-run a range of a stream through a model version and compare with what was served.

`ranges.py` parses what the user asked for (times or offsets), `pipeline/kafka/ranges.py`
resolves it against the broker into per-partition offset ranges and reads them, `rescore.py`
runs the worker's own scoring handler on them in a sandbox, `served.py` finds what was served
for the same requests, and `report.py` compares the two.
"""
