"""Developer tools: helpers for building what the tests need (not used by the services)."""
