"""Boot through the API vs `virsh create` (`python -m bench.api_boot_overhead`)."""
