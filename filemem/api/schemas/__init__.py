"""Request schemas (pydantic): strict, bounded, unknown fields refused."""
