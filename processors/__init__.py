"""Processors: each a pure core (what to emit) and a thin shell (consume, call, produce, commit)."""
