"""Evolink's unified task API (API.md A): submit, query, and the Files API for local images."""
