"""Models: pure data (requests, tasks, events) and the one converter from wire JSON; no I/O."""
