"""Density benchmark: guests beyond RAM (`python -m bench.density`); its cases, probes, report."""
