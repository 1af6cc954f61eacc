"""Clients: a protocol joined with the watching layer, and the resources users call."""
