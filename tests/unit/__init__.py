"""Unit tests: pure code, no daemons."""
