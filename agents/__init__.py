"""Faust bindings: the app, and one agent per job (scoring, drift) on the stream topics."""
