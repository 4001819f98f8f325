"""Faust bindings: the worker process (lifecycle, signals, timers) hosting batch-native engines."""
