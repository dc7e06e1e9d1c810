"""filemem: QEMU/KVM guests whose memory lives in files on a fast backing store."""

from importlib import metadata

# pyproject.toml holds the one version string; the installed metadata carries it here.
__version__ = metadata.version("filemem")
