"""Simulated agents long-polling one filemem-api (`python -m bench.control_plane`)."""
