"""Scheduling benchmarks on a real standalone Placement: the host-state cache vs allocation
candidates (`python -m bench.scheduling.scale`) and multi-create bursts
(`python -m bench.scheduling.burst`)."""
