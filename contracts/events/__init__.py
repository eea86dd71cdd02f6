"""Payload schemas of every integration event, one module per topic."""
