"""Writeback benchmark: what reaches the store per sysctl setting (`python -m bench.writeback`)."""
