"""Placement client benchmarks: claim throughput (`python -m bench.placement.claim_throughput`)
and the agent's sync cost (`python -m bench.placement.sync`), embedded vs standalone."""
