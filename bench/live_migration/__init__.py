"""Live migration benchmarks: the driver (`python -m bench.live_migration`) and the API
(`python -m bench.live_migration.api`), each against `virsh migrate`."""
