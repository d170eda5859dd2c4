"""Validation of an indexed run: counts, the exact check, vector geometry, queries, probes and the report."""
