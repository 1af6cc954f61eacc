"""Watching: the tracker (one scheduler per client), its poll policy, streams and fan-out."""
