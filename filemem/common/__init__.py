"""Shared vocabulary: the one home of facts every layer uses (guests, resources, versions).

Nothing here does I/O or imports another filemem package but filemem.exceptions, so every
package may import it without creating a cycle.
"""
